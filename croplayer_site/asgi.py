"""ASGI entry point: Django for HTTP, Channels consumers for websockets (same-origin only)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
# Under ASGI every request runs its view in a thread of its own, so a persistent database
# connection is never used again: each lingered until collected, and fifty annotators filled
# PostgreSQL's 100 connections ("too many clients", bench/bench_annotators.py), and on SQLite
# each opening and closing cost more than the request's queries (croplayer_site/spatialite). The
# request threads share a pool of DB_POOL_SIZE connections per process instead (more than the
# requests let into Django at once, ASGI_MAX_REQUESTS, 8 by default; websocket consumers use it
# too); DB_POOL_SIZE=0 opens one per request. DB_CONN_MAX_AGE still decides for Celery workers
# and management commands.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")
os.environ.setdefault("DB_POOL_SIZE", "12")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from croplayer_site.asgi_limit import HttpConcurrencyLimit  # noqa: E402
from croplayer_site.routing import websocket_urlpatterns  # noqa: E402

# /static/ is served by a middleware (croplayer_site/static_files.py), the same with WSGI.
application = ProtocolTypeRouter(
    {
        "http": HttpConcurrencyLimit(django_asgi_app, settings.ASGI_MAX_REQUESTS),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
