"""The PostgreSQL connection pool: on under daphne (croplayer_site/asgi.py), where each request
runs in a thread of its own, so request after request reuses a few connections instead of
opening a PostgreSQL backend each; never on the embedded SQLite default."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.conftest import ROOT

SETTINGS = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({"pool": db.get("OPTIONS", {}).get("pool"), "age": db.get("CONN_MAX_AGE")}))
"""


def _run(code: str, env: dict[str, str], setup: bool = True) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DB_POOL_SIZE", "DB_CONN_MAX_AGE")
    }
    return subprocess.run(
        [sys.executable, "-c", ("import django; django.setup()\n" if setup else "") + code],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env={**base, "DJANGO_SETTINGS_MODULE": "croplayer_site.settings", **env},
        timeout=120,
    )


def _settings(env: dict[str, str]) -> dict:
    r = _run(SETTINGS, env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


PG = "postgis://u@127.0.0.1:5432/nowhere"  # settings only: nothing connects


def test_a_pool_only_when_asked_for_and_only_on_postgresql():
    assert _settings({"DATABASE_URL": PG}) == {"pool": None, "age": 60}
    assert _settings({"DATABASE_URL": PG, "DB_POOL_SIZE": "5"}) == {
        "pool": {"min_size": 2, "max_size": 5, "timeout": 20},
        "age": 0,  # Django's pool refuses persistent connections
    }
    assert _settings({"DB_POOL_SIZE": "5"})["pool"] is None  # SQLite: one file, no server
    r = _run(SETTINGS, {"DATABASE_URL": PG, "DB_POOL_SIZE": "-1"})
    assert r.returncode != 0 and "DB_POOL_SIZE" in r.stderr


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a pool of PostgreSQL connections")
def test_under_daphne_request_threads_share_pooled_connections():
    """As under daphne: twenty requests one after another, each in a new thread that closes its
    connection at the end (CONN_MAX_AGE 0). Without the pool each opens a backend of its own;
    with it they take turns on at most DB_POOL_SIZE backends. (The pool hands its connections
    out in turn and may grow while the first request waits, so three requests can meet three
    backends: the bound is the pool's size, not "fewer than the requests".)"""
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]
    r = _run(
        """
import json
import threading
import croplayer_site.asgi  # noqa: F401  (its defaults, as daphne loads it)
from django.db import connection
pids = []
def request():
    from django.db import connection
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pids.append(cur.fetchone()[0])
    connection.close()
for _ in range(20):
    t = threading.Thread(target=request)
    t.start()
    t.join()
from django.conf import settings
size = settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
print(json.dumps({"pooled": connection.pool is not None, "pids": pids, "size": size}))
connection.close_pool()
""",
        {"DATABASE_URL": url},
        setup=False,  # the settings are read as daphne reads them: through croplayer_site.asgi
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["pooled"] is True
    assert len(out["pids"]) == 20 and len(set(out["pids"])) <= out["size"] < 20
