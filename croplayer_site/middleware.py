"""A change queued in a browser carries who made it; sent under another person's session it is
refused (409, ``code: other_user``) and kept by the page, not filed under the wrong name."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext

# The workspace's outbox sends it (URL-encoded: header values are Latin-1, names may be Chinese).
AUTHOR_HEADER = "X-Croplayer-User"
OTHER_USER = "other_user"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class ChangeAuthorMiddleware:
    """Someone else logged in in the same browser (another tab) while a page still held the
    first person's unsent changes: those changes are theirs, so they wait until they are logged
    in again. A request without the header, or from nobody logged in (DRF answers that), passes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.headers.get(AUTHOR_HEADER)
        user = request.user
        if raw and request.method not in SAFE_METHODS and user.is_authenticated:
            author = unquote(raw)
            if author != user.get_username():
                detail = gettext(
                    "this change was made by %(author)s, but you are logged in as %(user)s: "
                    "log in as %(author)s to send it"
                ) % {"author": author, "user": user.get_username()}
                return JsonResponse({"detail": detail, "code": OTHER_USER}, status=409)
        return self.get_response(request)
