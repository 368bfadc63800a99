"""Settings for croplayer, read from the environment (see README "Configuration").

Profiles (``CROPLAYER_PROFILE``):
- ``demo`` (default): SQLite + SpatiaLite and, unless ``REDIS_URL`` is set, a private
  redis-server on a unix socket in the var folder (started by ``make demo`` and the test
  suite), so a laptop runs everything with no system service; an insecure secret key is allowed.
- ``production``: needs ``SECRET_KEY`` (or ``SECRET_KEY_FILE``), ``ALLOWED_HOSTS``,
  ``DATABASE_URL`` and ``REDIS_URL``; secure cookies, HSTS, SSL redirect.
Whatever the profile, ``DATABASE_URL`` (postgis://...) selects PostGIS and ``REDIS_URL`` selects
Redis for the Celery broker, Celery results and the Channels layer.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from croplayer_site import embedded_redis
from croplayer_site.env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_int,
    env_list,
    env_opt,
    env_secret,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
PROFILE = env_str("CROPLAYER_PROFILE", "demo")
if PROFILE not in {"demo", "production"}:
    raise ImproperlyConfiguredEnv(f"CROPLAYER_PROFILE must be demo or production, got {PROFILE!r}")
PRODUCTION = PROFILE == "production"

# Relative paths are taken from the project folder, whatever the working directory.
VAR_DIR = BASE_DIR / env_str("CROPLAYER_VAR_DIR", "var")
DATA_DIR = VAR_DIR / env_str("CROPLAYER_DATA_DIR", "data")
VAR_DIR.mkdir(parents=True, exist_ok=True)

_secret = env_secret("SECRET_KEY")
if _secret is None:
    if PRODUCTION:
        raise ImproperlyConfiguredEnv("SECRET_KEY (or SECRET_KEY_FILE) is required in production")
    _secret = "demo-only-insecure-key-" + "x" * 40  # the demo profile is never exposed
SECRET_KEY = _secret
# Off unless asked for (DEBUG=1), in the demo too: Django's debug pages list every URL pattern
# and setting to whoever opens a wrong address.
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "leaflet",
    "channels",
    "mapping",
    "annotation",
    "learning",
    "learning.product",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /static/ (WhiteNoise), unless SERVE_STATIC=0 leaves it to a web server in front.
    "croplayer_site.static_files.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "croplayer_site.middleware.ChangeAuthorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A view's "database is locked" becomes 503 + Retry-After, not 500.
    "croplayer_site.errors.DatabaseBusyMiddleware",
]

ROOT_URLCONF = "croplayer_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "croplayer_site.wsgi.application"
ASGI_APPLICATION = "croplayer_site.asgi.application"

# --- Database --------------------------------------------------------------------------------
DATABASE_URL = env_opt("DATABASE_URL")
# Connections kept per process: under daphne every request runs in a thread of its own, so a
# connection kept per thread is never used again, and one opened per request costs a PostgreSQL
# backend, or on SQLite the SpatiaLite library's loading and the WAL's checkpoint at its closing
# (croplayer_site/spatialite/base.py). croplayer_site/asgi.py turns it on; 0 (the default:
# Celery workers, management commands) keeps DB_CONN_MAX_AGE's connection per thread.
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 0)
if DB_POOL_SIZE < 0:
    raise ImproperlyConfiguredEnv("DB_POOL_SIZE must be 0 (no pool) or more")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
    if _db["ENGINE"] not in {
        "django.db.backends.postgresql",
        "django.contrib.gis.db.backends.postgis",
    }:
        raise ImproperlyConfiguredEnv("DATABASE_URL must be a postgres:// or postgis:// URL")
    _db["ENGINE"] = "django.contrib.gis.db.backends.postgis"
    _db["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME", f"test_{_db['NAME']}")}
    # A pool of connections per process (Django's psycopg pool), see DB_POOL_SIZE above.
    if DB_POOL_SIZE:
        _db["CONN_MAX_AGE"] = 0  # a pooled connection goes back to the pool after each request
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DB_POOL_SIZE),
            "max_size": DB_POOL_SIZE,
            "timeout": env_int("DB_POOL_TIMEOUT", 20),  # seconds a request waits for one
        }
    DATABASES = {"default": _db}
else:
    _sqlite = VAR_DIR / env_str("CROPLAYER_SQLITE_PATH", "db.sqlite3")
    DATABASES = {
        "default": {
            # Django's SpatiaLite backend, with a pool of connections (DB_POOL_SIZE).
            "ENGINE": "croplayer_site.spatialite",
            "NAME": str(_sqlite),
            # A file, not ":memory:", so a Celery worker in another process sees test data.
            "TEST": {"NAME": str(_sqlite.with_name(f"test_{_sqlite.name}"))},
            # Simultaneous writers wait their turn instead of failing "database is locked":
            # - IMMEDIATE: a transaction takes the write lock when it begins. A default
            #   (DEFERRED) one reads first and then asks for the lock, and SQLite refuses that
            #   upgrade at once, without waiting, if another writer committed meanwhile.
            # - timeout: how long a writer waits for the lock (SQLite's busy timeout); past it
            #   the request gets 503 + Retry-After (croplayer_site.errors), never 500.
            # - WAL: readers never wait for the writer, nor the writer for readers.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": env_int("SQLITE_TIMEOUT", 30),
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "pool_size": DB_POOL_SIZE,
            },
        }
    }
SPATIALITE_LIBRARY_PATH = env_str("SPATIALITE_LIBRARY_PATH", "mod_spatialite")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# HTTP requests inside Django at once per server process (croplayer_site/asgi_limit.py); the
# rest wait in the event loop. 0: no limit.
ASGI_MAX_REQUESTS = env_int("ASGI_MAX_REQUESTS", 8)

# --- Redis, Celery, Channels -----------------------------------------------------------------
REDIS_URL = env_opt("REDIS_URL")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False  # never: work runs in a worker process, not in the request
CELERY_TASK_DEFAULT_QUEUE = "cpu"
# Models on the gpu queue, everything else (imagery, features) on cpu; start workers per queue.
CELERY_TASK_ROUTES = {"learning.gpu.*": {"queue": "gpu"}, "*": {"queue": "cpu"}}
# Resume learning rounds whose worker died, fail overdue ones (also self-scheduled per round).
CELERY_BEAT_SCHEDULE = {
    "learning-rounds-reconcile": {"task": "learning.cpu.rounds_reconcile", "schedule": 60.0},
    # Exports and comparisons whose worker died are failed, lost queued ones sent again.
    "product-jobs-reconcile": {"task": "product.jobs_reconcile", "schedule": 300.0},
}
# Unset: a private redis-server on a unix socket in the var folder (croplayer_site/
# embedded_redis.py; `make demo` and the test suite start it), the same transport as
# production. kombu's file-system broker is gone: it could hand a worker a half-written message.
EMBEDDED_REDIS_SOCKET = None if REDIS_URL else embedded_redis.socket_path(VAR_DIR)
if EMBEDDED_REDIS_SOCKET is not None:
    REDIS_URL = embedded_redis.broker_url(EMBEDDED_REDIS_SOCKET)
CELERY_BROKER_URL = embedded_redis.celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
# Longer than the longest task, so a slow training task is not delivered twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY", 43200)}
# Where workers write their liveness (croplayer_site/liveness.py): the same server.
REDIS_PY_URL = embedded_redis.redis_py_url(REDIS_URL)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # No socket timeout (redis-py 8 defaults to 5 s). With one, redis-py sends every
        # command through asyncio.wait_for, and on Python < 3.12 (Debian 12: 3.11) wait_for
        # swallows a cancellation that lands as the send completes (CPython gh-86296): a
        # cancelled receive -- every websocket that closes -- then polls BZPOPMIN forever, its
        # consumer never ends, and an event loop waiting for it at shutdown hangs (CI did,
        # tests/site/test_channels.py has the regression test). Reads need none either: the
        # layer's BZPOPMIN returns every 5 s, and TCP keepalive (on by default) notices a dead
        # server. Connecting is still bounded.
        "CONFIG": {
            "hosts": [
                {"address": REDIS_PY_URL, "socket_timeout": None, "socket_connect_timeout": 10}
            ]
        },
    }
}

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
# The app serves /static/ itself with DEBUG off (croplayer_site/static_files.py, WhiteNoise):
# the demo and tests straight from the static folders, production (SERVE_STATIC=1; by default a
# web server in front serves STATIC_ROOT) only what `collectstatic` put in STATIC_ROOT.
SERVE_STATIC = env_bool("SERVE_STATIC", not PRODUCTION)
WHITENOISE_USE_FINDERS = not PRODUCTION
if SERVE_STATIC and not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing folder
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_DIR

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "croplayer_site.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "croplayer API",
    "DESCRIPTION": "Blocks, imagery, samples and learning rounds for 2 m cropland mapping.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LEAFLET_CONFIG = {
    "DEFAULT_CENTER": (35.0, 105.0),
    "DEFAULT_ZOOM": 4,
    "MIN_ZOOM": 3,
    "MAX_ZOOM": 19,
    "TILES": [],  # no external basemap: the app serves its own block imagery
    "ATTRIBUTION_PREFIX": "croplayer",
}

# --- Imagery ---------------------------------------------------------------------------------
# Hosts an XYZ template may point at; a source config can only narrow this list.
IMAGERY_ALLOWED_HOSTS = env_list(
    "IMAGERY_ALLOWED_HOSTS",
    [
        "api.mapbox.com",
        "mt0.google.com",
        "mt1.google.com",
        "mt2.google.com",
        "mt3.google.com",
        "khms0.google.com",
        "khms1.google.com",
    ],
)
IMAGERY_ALLOW_LOOPBACK_HTTP = env_bool("IMAGERY_ALLOW_LOOPBACK_HTTP", not PRODUCTION)
IMAGERY_TILE_CACHE_DIR = Path(env_str("IMAGERY_TILE_CACHE_DIR", str(VAR_DIR / "tile-cache")))
# Base map under the overview and integration maps: an XYZ template the browser loads tiles from
# (never scripts). Unset: none (tests, offline sites); scripts/demo.sh sets OpenStreetMap's.
BASEMAP_URL = env_str("BASEMAP_URL", "")
BASEMAP_ATTRIBUTION = env_str(
    "BASEMAP_ATTRIBUTION",
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
    if "openstreetmap.org" in BASEMAP_URL
    else "",
)
BASEMAP_MAX_ZOOM = env_int("BASEMAP_MAX_ZOOM", 19)

# --- Security (production) -------------------------------------------------------------------
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PRODUCTION else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Debian 12's GDAL is 3.6, which cannot block file/network access while parsing spatial
# references (gis.W001). croplayer never passes user-supplied SRS text to GDAL through
# GeoDjango: uploads are read with pyogrio and only EPSG:4326 geometries are stored.
SILENCED_SYSTEM_CHECKS = ["gis.W001"]
