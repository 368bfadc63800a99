"""DRF's error replies, plus a machine-readable ``code`` where a browser must tell a session
that ended (log in again: keep the queued work) from a refusal of the work itself."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

NOT_AUTHENTICATED = "not_authenticated"
CSRF_FAILED = "csrf_failed"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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
