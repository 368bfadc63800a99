"""With DEBUG off (the default, the demo included): error pages are the site's own, with its
navigation and in the reader's language, never Django's debug page listing the URL patterns;
the API answers its errors in JSON; static files are served by the app itself."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from django.db import OperationalError
from django.test import RequestFactory
from django.urls import path

from croplayer_site import errors
from croplayer_site import urls as site_urls
from mapping.models import Campaign

# What Django's debug 404 page shows (and a resolver's reason would).
DEBUG_PAGE_MARKS = ("URLconf", "urlpatterns", "api/schema/", "Django tried these URL patterns")


def _boom(request):
    raise RuntimeError("a bug in a view")


def _locked(request):
    raise OperationalError("database is locked")


# This module is also the URLconf of the 500 tests: the site's URLs plus two failing views.
urlpatterns = [
    path("boom/", _boom),
    path("api/boom/", _boom),
    path("locked/", _locked),
    *site_urls.urlpatterns,
]
handler404 = site_urls.handler404
handler500 = site_urls.handler500


@pytest.fixture
def annotator(users, settings, login):
    settings.DEBUG = False  # pytest-django's default too; stated because it is the point
    c = login("annotator", raise_request_exception=False)
    return c


def _has_nav(html: str, username: str) -> bool:
    return '<nav>' in html and f"<span>{username}</span>" in html and 'id="error-page"' in html


def _no_debug(html: str) -> bool:
    return not any(mark in html for mark in DEBUG_PAGE_MARKS)


@pytest.mark.parametrize(
    ("language", "title"), [("en", "Page not found"), ("zh-hans", "找不到页面")]
)
def test_404_page_keeps_the_navigation_and_lists_no_urls(annotator, language, title):
    r = annotator.get("/no/such/page/", headers={"Accept-Language": language})
    html = r.content.decode()
    assert r.status_code == 404 and r["Content-Type"].startswith("text/html")
    assert _has_nav(html, "annotator") and title in html
    assert _no_debug(html)


def test_a_lead_page_of_a_campaign_that_does_not_exist_is_the_404_page(annotator):
    r = annotator.get("/campaigns/nope/assign/")
    html = r.content.decode()
    assert r.status_code == 404 and _has_nav(html, "annotator") and _no_debug(html)


@pytest.mark.parametrize(
    ("language", "title", "reason"),
    [
        ("en", "Not allowed", "only leads and admins manage the work of a campaign"),
        ("zh-hans", "不允许", "只有组长和管理员能管理项目的任务"),
    ],
)
def test_403_page_keeps_the_navigation_and_says_why(annotator, language, title, reason):
    Campaign.objects.create(slug="demo", name="Demo", region="Hubei", year=2020)
    r = annotator.get("/campaigns/demo/assign/", headers={"Accept-Language": language})
    html = r.content.decode()
    assert r.status_code == 403
    assert _has_nav(html, "annotator") and title in html and _no_debug(html)
    assert reason in html


def test_api_errors_stay_json(annotator):
    r = annotator.get("/api/no-such-endpoint/")
    assert r.status_code == 404 and r["Content-Type"] == "application/json"
    assert r.json() == {"detail": "Not found."}
    # A DRF view's own refusal is JSON as before.
    Campaign.objects.create(slug="demo", name="Demo", region="Hubei", year=2020)
    r = annotator.post("/api/campaigns/demo/assignments/", {}, content_type="application/json")
    assert r.status_code == 403  # the gate's Django PermissionDenied, with its reason
    assert r.json() == {"detail": "only leads and admins manage the work of a campaign"}
    r = annotator.post("/api/campaigns/nope/assignments/", {}, content_type="application/json")
    assert r.status_code == 404 and r.json() == {"detail": "no campaign 'nope'"}


@pytest.mark.urls(__name__)
def test_500_page_renders_with_the_navigation_and_no_traceback(annotator):
    r = annotator.get("/boom/")
    html = r.content.decode()
    assert r.status_code == 500
    assert _has_nav(html, "annotator") and "Server error" in html
    assert "a bug in a view" not in html and "Traceback" not in html
    r = annotator.get("/api/boom/")
    assert r.status_code == 500 and r["Content-Type"] == "application/json"
    assert "a bug in a view" not in r.content.decode()


@pytest.mark.urls(__name__)
def test_database_locked_is_503_for_pages_too(annotator):
    r = annotator.get("/locked/")
    assert r.status_code == 503 and r["Retry-After"] == "2"
    assert _has_nav(r.content.decode(), "annotator")


def test_handler500_turns_database_locked_raised_outside_a_view_into_503(db):
    """A middleware's write (the session, say) is past DatabaseBusyMiddleware: handler500
    itself sees the exception being handled."""
    request = RequestFactory().post("/api/blocks/1/labels/")
    try:
        raise OperationalError("database is locked")
    except OperationalError:
        r = errors.server_error(request)
    assert r.status_code == 503 and r["Retry-After"] == "2"
    try:
        raise OperationalError("no such table: x")  # a real fault stays a 500
    except OperationalError:
        assert errors.server_error(request).status_code == 500


def test_static_files_are_served_with_debug_off(client, settings):
    settings.DEBUG = False
    r = client.get("/static/croplayer/site.css")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/css")
    assert b".topbar" in b"".join(r.streaming_content)
    assert "max-age" in r["Cache-Control"]
    assert client.get("/static/leaflet/leaflet.js").status_code == 200  # an app's static file
    assert client.get("/static/croplayer/no-such.css").status_code == 404


@pytest.fixture
def no_debug_env(monkeypatch):
    """The server starts as `make demo` starts it: no DEBUG in its environment."""
    monkeypatch.delenv("DEBUG", raising=False)


def _get(url: str, cookie: str = "") -> tuple[int, dict, str]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_the_served_app_has_debug_off_serves_static_and_its_own_404(
    no_debug_env, users, asgi_server, session_cookie
):
    """The real ASGI app under daphne, configured as the demo runs it."""
    status, headers, body = _get(f"{asgi_server}/static/croplayer/site.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and ".topbar" in body
    assert _get(f"{asgi_server}/static/leaflet/leaflet.js")[0] == 200

    cookie = session_cookie("annotator")
    for page in ("/campaigns/nope/assign/", "/no/such/page/"):
        status, _, html = _get(asgi_server + page, cookie)
        assert status == 404 and _has_nav(html, "annotator") and _no_debug(html), html[:2000]
    status, headers, body = _get(f"{asgi_server}/api/no-such-endpoint/", cookie)
    assert status == 404 and headers["Content-Type"] == "application/json", body


def test_a_form_without_its_csrf_token_gets_the_sites_403_page(users, login):
    c = login("annotator", enforce_csrf_checks=True)
    r = c.post("/i18n/setlang/", {"language": "zh-hans"})
    html = r.content.decode()
    assert r.status_code == 403 and 'id="error-page"' in html and "security token" in html
