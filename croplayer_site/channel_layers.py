"""A Channels layer backed by one SQLite file, for the embedded (no-server) profile.

The in-memory layer only reaches consumers in the same process; this one lets a Celery worker
(another process) send to websocket consumers served by the ASGI server, with nothing to run
but the file system. It polls, so it suits a handful of users; real use takes Redis.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import string
import time
from pathlib import Path
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    expires REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS message_channel ON message (channel, id);
CREATE TABLE IF NOT EXISTS membership (
    grp TEXT NOT NULL,
    channel TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (grp, channel)
);
"""


class SQLiteChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]

    def __init__(
        self,
        path: str,
        expiry: int = 60,
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: Any = None,
        poll_interval: float = 0.05,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.path = Path(path)
        self.group_expiry = group_expiry
        self.poll_interval = poll_interval
        self._ready = False

    # -- storage -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        if not self._ready:
            conn.executescript(_SCHEMA)
            self._ready = True
        return conn

    def _run(self, fn: Any, *args: Any) -> Any:
        conn = self._connect()
        try:
            return fn(conn, *args)
        finally:
            conn.close()

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self._run, fn, *args)

    # -- channel API ---------------------------------------------------------------------
    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        body = json.dumps(message)
        await self._call(self._insert, [channel], body)

    def _insert(self, conn: sqlite3.Connection, channels: list[str], body: str) -> None:
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM message WHERE expires < ?", (now,))
            for channel in channels:
                (count,) = conn.execute(
                    "SELECT COUNT(*) FROM message WHERE channel = ?", (channel,)
                ).fetchone()
                if count >= self.get_capacity(channel):
                    if len(channels) == 1:
                        raise ChannelFull(channel)
                    continue  # group sends drop for a full member, as channels_redis does
                conn.execute(
                    "INSERT INTO message (channel, expires, body) VALUES (?, ?, ?)",
                    (channel, now + self.expiry, body),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _pop(self, conn: sqlite3.Connection, channel: str) -> str | None:
        row = conn.execute(
            "SELECT id, body FROM message WHERE channel = ? AND expires >= ? ORDER BY id LIMIT 1",
            (channel, time.time()),
        ).fetchone()
        if row is None:
            return None
        # Only the reader whose DELETE removed the row owns the message.
        if conn.execute("DELETE FROM message WHERE id = ?", (row[0],)).rowcount != 1:
            return None
        return str(row[1])

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        delay = self.poll_interval
        while True:
            body = await self._call(self._pop, channel)
            if body is not None:
                message: dict[str, Any] = json.loads(body)
                return message
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def new_channel(self, prefix: str = "specific") -> str:
        suffix = "".join(random.choices(string.ascii_letters, k=12))
        return f"{prefix}.sqlite!{suffix}"

    # -- groups --------------------------------------------------------------------------
    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._call(self._group_add, group, channel)

    def _group_add(self, conn: sqlite3.Connection, group: str, channel: str) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO membership (grp, channel, expires) VALUES (?, ?, ?)",
            (group, channel, time.time() + self.group_expiry),
        )

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        await self._call(
            lambda c, g, ch: c.execute(
                "DELETE FROM membership WHERE grp = ? AND channel = ?", (g, ch)
            ),
            group,
            channel,
        )

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.require_valid_group_name(group)
        body = json.dumps(message)
        await self._call(self._group_send, group, body)

    def _group_send(self, conn: sqlite3.Connection, group: str, body: str) -> None:
        members = [
            r[0]
            for r in conn.execute(
                "SELECT channel FROM membership WHERE grp = ? AND expires >= ?",
                (group, time.time()),
            )
        ]
        if members:
            self._insert(conn, members, body)

    async def flush(self) -> None:
        await self._call(lambda c: c.executescript("DELETE FROM message; DELETE FROM membership;"))

    async def close(self) -> None:
        return None
