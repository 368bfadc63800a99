"""Django's SpatiaLite backend with its connections kept and reused within a process.

Under ASGI every request runs in a thread of its own, so Django opened a SQLite connection per
request and closed it afterwards (PostgreSQL has Django's psycopg pool for the same reason,
``croplayer_site/asgi.py``). On the embedded default each of those cost, on the request's path:

- the wrapper: Django's SpatiaLite backend looks the library up with
  ``ctypes.util.find_library`` in every new wrapper (one per thread), which runs
  ``ldconfig -p`` in a subprocess;
- the opening: loading mod_spatialite, and the PRAGMAs, which wait for the database's lock;
- the closing: when the last open connection to a WAL database closes, SQLite checkpoints the
  WAL into the database and deletes it (the next opening creates it again), under the lock.

Fifty annotators on one daphne process spent more time there than in their queries
(``bench/bench_annotators.py``). With ``OPTIONS["pool_size"]`` > 0 (``DB_POOL_SIZE``, set by
``croplayer_site/asgi.py``) a closed connection goes back to a per-process pool and the next
request's thread takes it instead of opening one; ``find_library`` runs once per process.
A connection is only pooled outside a transaction (an open one is rolled back first), so a
request never inherits another's work; Django re-applies the autocommit state on each take.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from ctypes.util import find_library
from typing import Any

from django.conf import settings
from django.contrib.gis.db.backends.spatialite.base import (
    DatabaseWrapper as SpatiaLiteDatabaseWrapper,
)
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper


@functools.cache
def spatialite_library() -> str | None:
    """``find_library("spatialite")``, once per process (it runs a subprocess)."""
    return find_library("spatialite")


class ConnectionPool:
    """At most ``size`` idle SQLite connections of one database file, newest first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def take(self) -> sqlite3.Connection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give(self, conn: sqlite3.Connection) -> bool:
        """Keep ``conn`` for the next taker; False (and not kept) when the pool is full."""
        with self._lock:
            if len(self._idle) >= self.size:
                return False
            self._idle.append(conn)
            return True

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __len__(self) -> int:
        return len(self._idle)


_POOLS: dict[str, ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


def connection_pool(database: str, size: int) -> ConnectionPool:
    """The process's pool of ``database`` (a file path), made on first use."""
    with _POOLS_LOCK:
        pool = _POOLS.get(database)
        if pool is None:
            pool = _POOLS[database] = ConnectionPool(size)
        return pool


class DatabaseWrapper(SpatiaLiteDatabaseWrapper):
    def __init__(self, settings_dict: dict[str, Any], alias: str = "default") -> None:
        # The parent's library list, with find_library's answer kept (see the module's doc).
        self.lib_spatialite_paths = [
            name
            for name in (
                getattr(settings, "SPATIALITE_LIBRARY_PATH", None),
                "mod_spatialite.so",
                "mod_spatialite",
                spatialite_library(),
            )
            if name is not None
        ]
        SQLiteDatabaseWrapper.__init__(self, settings_dict, alias)

    @property
    def pool(self) -> ConnectionPool | None:
        size = int(self.settings_dict["OPTIONS"].get("pool_size", 0))
        if size <= 0 or self.is_in_memory_db():
            return None
        return connection_pool(str(self.settings_dict["NAME"]), size)

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params.pop("pool_size", None)  # ours, not sqlite3.connect's
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        pool = self.pool
        conn = pool.take() if pool is not None else None
        if conn is None:
            conn = super().get_new_connection(conn_params)
        return conn

    def _close(self) -> None:
        conn, pool = self.connection, self.pool
        # Inside an atomic block Django keeps the closed connection to fail the block's next
        # query: that one must really close.
        if conn is not None and pool is not None and not self.in_atomic_block:
            try:
                if conn.in_transaction:
                    conn.rollback()
            except sqlite3.Error:
                pass  # closed below
            else:
                if pool.give(conn):
                    return
        super()._close()
