"""DRF's error replies, plus a machine-readable ``code`` where a browser must tell a session
that ended (log in again: keep the queued work) from a refusal of the work itself.

A body Django refuses to read (over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, too many fields) is 413 and
JSON nested beyond the parser's depth is 400, both with a reason, instead of an HTML page.
"""

from __future__ import annotations

import traceback
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.utils.translation import gettext
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

NOT_AUTHENTICATED = "not_authenticated"
CSRF_FAILED = "csrf_failed"
TOO_LARGE = "too_large"
TOO_DEEP = "too_deep"


def _raised_by_json(exc: BaseException) -> bool:
    """Whether the exception came out of parsing JSON (not some other code's recursion)."""
    return any(
        frame.f_code.co_filename.endswith(("json/decoder.py", "json/__init__.py", "parsers.py"))
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def _refusal(exc: Exception) -> Response | None:
    """Refusals Django raises while reading a body, as JSON the workspace can show (Django
    itself would answer an HTML 400 page and log a traceback)."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        detail = gettext(
            "The request is too large: at most %(mb)s MB of form or JSON data "
            "(files have their own limit)."
        ) % {"mb": f"{limit / 2**20:.1f}"}
        return Response({"detail": detail, "code": TOO_LARGE}, status=413)
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        detail = gettext("The request has too many form fields or files.")
        return Response({"detail": detail, "code": TOO_LARGE}, status=413)
    if isinstance(exc, RecursionError) and _raised_by_json(exc):
        # Python's JSON parser gives up on nesting deeper than its recursion limit, before
        # anything of the request was used (polygon coordinates 5,000 levels deep, say).
        detail = gettext("The JSON is nested too deeply.")
        return Response({"detail": detail, "code": TOO_DEEP}, status=400)
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    refused = _refusal(exc)
    if refused is not None:
        return refused
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(response.data, dict):
        return response
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.data["code"] = NOT_AUTHENTICATED
    elif isinstance(exc, exceptions.PermissionDenied) and str(exc.detail).startswith(
        "CSRF Failed"
    ):  # rest_framework.authentication.SessionAuthentication.enforce_csrf
        response.data["code"] = CSRF_FAILED
    return response
