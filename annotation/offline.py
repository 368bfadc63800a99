"""The workspace's service worker script, served from /annotate/ so that its scope covers the
block pages (a worker may only control pages under the folder of its own URL)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

# What the workspace page loads besides itself and its data (templates/base.html and
# templates/annotation/workspace.html): cached on install, so a reload offline finds them.
WORKSPACE_ASSETS = (
    "croplayer/site.css",
    "leaflet/leaflet.css",
    "leaflet/leaflet.js",
    "vendor/leaflet-geoman/leaflet-geoman.css",
    "vendor/leaflet-geoman/leaflet-geoman.min.js",
    "vendor/polygon-clipping/polygon-clipping.umd.min.js",
    "annotation/workspace.css",
    "annotation/panel.css",
    "annotation/workspace.js",
    "annotation/workspace/config.js",
    "annotation/workspace/drawing.js",
    "annotation/workspace/geometry.js",
    "annotation/workspace/keyboard.js",
    "annotation/workspace/map.js",
    "annotation/workspace/prediction.js",
    "annotation/workspace/sample.js",
    "annotation/workspace/store.js",
    "annotation/workspace/sync.js",
    "annotation/panel.js",
)


def _js(value: object) -> str:
    """A value written into the script: JSON is JavaScript, and these are our own URLs."""
    return mark_safe(json.dumps(value))


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """No login needed: the script holds no data, and the browser checks it for updates whether
    or not anyone is logged in. Never cached by HTTP, so a new version is picked up at once."""
    context = {
        "precache": _js([static(path) for path in WORKSPACE_ASSETS]),
        "static_prefix": _js(static("")),
        "login_path": _js(reverse("login")),
    }
    response = render(
        request, "annotation/service_worker.js", context, content_type="text/javascript"
    )
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/annotate/"
    return response
