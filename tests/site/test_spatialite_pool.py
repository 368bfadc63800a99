"""The embedded default's connections under daphne (croplayer_site/spatialite): each request runs
in a thread of its own and closes its connection at the end; with a pool the next request's
thread takes that connection (SpatiaLite loaded, WAL open) instead of opening one, and the
SpatiaLite library is looked up once per process, not once per thread."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db.utils import ConnectionHandler

from croplayer_site.spatialite import base
from tests.site.test_db_pool import _settings

ALIAS = "default"  # a handler of the test's own: not the suite's connections


def _in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a new thread, as daphne runs each request's view; its result or exception."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.fixture
def handler(tmp_path: Path, django_db_blocker: Any) -> Any:
    """Connections to a database file of this test's own; a wrapper per thread, as Django's."""
    name = str(tmp_path / "pool.sqlite3")

    def make(pool_size: int) -> ConnectionHandler:
        return ConnectionHandler({ALIAS: {
            "ENGINE": "croplayer_site.spatialite", "NAME": name,
            "OPTIONS": {"pool_size": pool_size, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL;"},
        }})  # fmt: skip

    with django_db_blocker.unblock():
        yield make
    base.connection_pool(name, 1).close_all()


def _request(handler: ConnectionHandler, sql: str = "") -> sqlite3.Connection:
    """One request: a query (SpatiaLite's own function: the extension is loaded), then the
    connection closed as at the end of a request; the raw connection it used."""

    def run() -> sqlite3.Connection:
        conn = handler[ALIAS]
        with conn.cursor() as cur:
            cur.execute("SELECT spatialite_version()")
            assert cur.fetchone()[0]
            if sql:
                cur.execute(sql)
        raw = conn.connection
        conn.close()
        return raw

    return _in_thread(run)


def test_the_next_request_takes_the_connection_the_last_one_closed(handler):
    pooled = handler(2)
    first = _request(pooled, "CREATE TABLE t (x integer)")
    assert _request(pooled, "INSERT INTO t VALUES (1)") is first
    assert _request(pooled) is first
    # Without a pool (Celery workers, commands, the test suite) every request opens its own.
    plain = handler(0)
    assert _request(plain) is not _request(plain)


def test_a_connection_closed_in_a_transaction_is_rolled_back_before_it_is_kept(handler):
    pooled = handler(2)
    _request(pooled, "CREATE TABLE t (x integer)")

    def left_open() -> sqlite3.Connection:
        conn = pooled[ALIAS]
        conn.ensure_connection()
        conn.connection.execute("BEGIN IMMEDIATE")
        conn.connection.execute("INSERT INTO t VALUES (1)")
        raw = conn.connection
        conn.close()
        return raw

    raw = _in_thread(left_open)

    def count() -> tuple[sqlite3.Connection, int, bool]:
        conn = pooled[ALIAS]
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM t")
            n = cur.fetchone()[0]
        out = (conn.connection, n, conn.connection.in_transaction)
        conn.close()
        return out

    again, n, in_transaction = _in_thread(count)
    assert again is raw  # kept, and the other request's insert gone with its transaction
    assert n == 0 and not in_transaction


def test_the_pool_keeps_at_most_its_size_and_closes_the_rest(handler):
    pooled = handler(1)

    def two_at_once() -> tuple[sqlite3.Connection, sqlite3.Connection]:
        a, b = ConnectionHandler(pooled.settings)[ALIAS], pooled[ALIAS]
        a.ensure_connection()
        b.ensure_connection()
        raws = (a.connection, b.connection)
        a.close()
        b.close()
        return raws

    kept, closed = _in_thread(two_at_once)
    with pytest.raises(sqlite3.ProgrammingError):  # "Cannot operate on a closed database."
        closed.execute("SELECT 1")
    assert kept.execute("SELECT 1").fetchone() == (1,)
    assert _request(pooled) is kept


def test_the_spatialite_library_is_looked_up_once_per_process(handler, monkeypatch):
    """Django's backend runs find_library (an ``ldconfig -p`` subprocess) in every new wrapper:
    under daphne, one per request."""
    calls = []
    real = base.find_library

    def counted(name: str) -> str | None:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(base, "find_library", counted)
    base.spatialite_library.cache_clear()
    pooled = handler(2)
    for _ in range(3):
        _request(pooled)
    assert calls == ["spatialite"]


def test_the_pool_size_comes_from_db_pool_size():
    """croplayer_site/asgi.py sets DB_POOL_SIZE for daphne; elsewhere it is 0 (no pool)."""
    code = """
import json
from django.conf import settings
print(json.dumps(settings.DATABASES["default"]["OPTIONS"].get("pool_size")))
"""
    from tests.site.test_db_pool import _run

    for env, size in (({}, 0), ({"DB_POOL_SIZE": "5"}, 5)):
        r = _run(code, env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().splitlines()[-1] == str(size)
    assert _settings({"DB_POOL_SIZE": "5"})["pool"] is None  # Django's psycopg pool: PostgreSQL
