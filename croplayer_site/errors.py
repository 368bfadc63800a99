"""What a request that fails gets back.

- People get the site's own pages (``templates/40x.html``, ``500.html``): the navigation stays,
  the text is in their language, and nothing lists the site's URL patterns or settings.
- The API (``/api/...``, or a client that asks for JSON only) gets JSON with a ``detail``, as
  DRF's own errors have, also for an address no route matches.
- A database too busy to take a write (SQLite's "database is locked" after its timeout; a
  PostgreSQL deadlock, lock timeout or serialization failure) is 503 with ``Retry-After`` and
  ``code: database_busy``, never 500: the transaction was rolled back and the same request can
  simply be sent again (the workspace's outbox does so on any 5xx).

``DatabaseBusyMiddleware`` answers for exceptions a view raises; ``server_error`` (handler500)
does it for those raised elsewhere (a middleware saving the session, say).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.utils.translation import gettext

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
DATABASE_BUSY = "database_busy"
RETRY_AFTER_SECONDS = 2
# SQLite's messages for SQLITE_BUSY / SQLITE_LOCKED once its busy timeout has run out.
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
_POSTGRES_BUSY = {"40001", "40P01", "55P03"}


def wants_json(request: HttpRequest) -> bool:
    """An API address, or a client that accepts JSON and not HTML."""
    if request.path.startswith(API_PREFIX):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def database_busy(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the database refusing because of other writers (not a broken query)."""
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) in _POSTGRES_BUSY:
        return True
    message = str(exc).lower()
    return any(text in message for text in _SQLITE_BUSY)


def _render(
    request: HttpRequest, template: str, status: int, context: dict[str, object] | None = None
) -> HttpResponse:
    """The page with the request's context (user, navigation, language); if that itself fails
    (the database gone, say), the same template without it rather than a second error."""
    try:
        body = loader.render_to_string(template, context, request)
    except Exception:
        logger.exception("rendering %s with the request's context failed", template)
        body = loader.render_to_string(template, context)
    return HttpResponse(body, status=status)


def busy_response(request: HttpRequest) -> HttpResponse:
    """503 + Retry-After: the database was too busy with other writes to take this one."""
    detail = gettext(
        "The database is busy with other changes, so this one was not saved. "
        "Send it again in a moment."
    )
    logger.warning("database busy: %s %s answered 503", request.method, request.path)
    if wants_json(request):
        response: HttpResponse = JsonResponse(
            {"detail": detail, "code": DATABASE_BUSY}, status=503
        )
    else:
        response = _render(request, "503.html", 503, {"detail": detail})
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseBusyMiddleware:
    """Turns a view's "database is locked" (and PostgreSQL's lock refusals) into 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if database_busy(exception):
            return busy_response(request)
        return None


# --- handler400/403/404/500 (croplayer_site.urls) ----------------------------------------------


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"detail": gettext("Bad request.")}, status=400)
    return _render(request, "400.html", 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    # The reasons the views give are plain sentences meant for the user ("only leads and
    # admins manage the work of a campaign").
    reason = exception.args[0] if exception.args and isinstance(exception.args[0], str) else ""
    if wants_json(request):
        detail = reason or gettext("You do not have permission to perform this action.")
        return JsonResponse({"detail": detail}, status=403)
    return _render(request, "403.html", 403, {"reason": reason})


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    # No reason shown: "not found" and "not yours" must look the same (see README, "Who sees
    # which campaign"), and a resolver's reason lists the URL patterns.
    if wants_json(request):
        return JsonResponse({"detail": gettext("Not found.")}, status=404)
    return _render(request, "404.html", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Called while the exception is being handled (django.core.handlers.exception).
    if database_busy(sys.exc_info()[1]):
        return busy_response(request)
    if wants_json(request):
        return JsonResponse({"detail": gettext("Server error; it has been logged.")}, status=500)
    return _render(request, "500.html", 500)
