"""WSGI entry point (HTTP only; use the ASGI app for websockets)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
application = get_wsgi_application()
