"""Static files served by the app itself, with DEBUG off: WhiteNoise indexes the files when the
app starts, serves nothing outside the static folders, and sends cache headers.

The demo and the tests serve straight from the static folders of the project and the apps
(``WHITENOISE_USE_FINDERS``); production, when it serves them at all (``SERVE_STATIC=1``), only
what ``collectstatic`` put in ``STATIC_ROOT``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseFileResponse, WhiteNoiseMiddleware

# What WhiteNoise's index depends on (whitenoise.middleware.WhiteNoiseMiddleware.__init__, and
# the finders: the apps and STATICFILES_DIRS).
_SETTINGS_READ = (
    "DEBUG",
    "STATIC_URL",
    "STATIC_ROOT",
    "STATICFILES_DIRS",
    "STATICFILES_FINDERS",
    "INSTALLED_APPS",
    "FORCE_SCRIPT_NAME",
    "WHITENOISE_AUTOREFRESH",
    "WHITENOISE_MAX_AGE",
    "WHITENOISE_ALLOW_ALL_ORIGINS",
    "WHITENOISE_CHARSET",
    "WHITENOISE_MIMETYPES",
    "WHITENOISE_ADD_HEADERS_FUNCTION",
    "WHITENOISE_INDEX_FILE",
    "WHITENOISE_IMMUTABLE_FILE_TEST",
    "WHITENOISE_USE_FINDERS",
    "WHITENOISE_STATIC_PREFIX",
    "WHITENOISE_ROOT",
)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's middleware, its files also streamed as ASGI wants them (daphne).

    WhiteNoise answers with a file read synchronously; under ASGI Django would read it anyway,
    after a warning that it must. As Django's own ``ASGIStaticFilesHandler`` does, the file is
    read in a worker thread and handed over as an asynchronous iterator (static files are
    small: CSS, scripts, icons).
    """

    # The index of the files (some 250 of them, ~60 ms to build) per configuration: Django's
    # test client loads the middleware again for every client, and it is the same index.
    _built: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.SERVE_STATIC:
            raise MiddlewareNotUsed("SERVE_STATIC is off: a web server in front serves /static/")
        key = repr([getattr(settings, name, None) for name in _SETTINGS_READ])
        built = self._built.get(key)
        if built is None:
            super().__init__(get_response)
            self._built[key] = built = dict(vars(self))
        vars(self).update(built)
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = super().__call__(request)
        if (
            isinstance(request, ASGIRequest)
            and isinstance(response, WhiteNoiseFileResponse)
            and not response.is_async
        ):
            chunks = response.streaming_content

            async def stream() -> AsyncIterator[bytes]:
                for part in await sync_to_async(list)(chunks):
                    yield part

            response.streaming_content = stream()
        return response
