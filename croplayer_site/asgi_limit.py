"""At most N HTTP requests inside Django at once per server process; the rest wait their turn
in the event loop.

Under ASGI every synchronous view runs in a thread of its own, so fifty annotators saving at
once meant fifty Python threads in one process. With SQLite that is a convoy: the thread that
holds the write lock must win the GIL back after every query, behind every other thread, so
each write transaction lasted seconds and the writers queued behind it ran out of SQLite's busy
timeout (503 "database busy", bench/bench_annotators.py). With PostgreSQL each of those threads
opened a connection of its own. A waiting request costs nothing in the event loop; websockets
are not counted (they are long-lived and mostly idle), nor is a streamed response once its
first chunk is out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class HttpConcurrencyLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in ``app`` at a time (0: no limit)."""

    def __init__(self, app: App, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None  # made in the server's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        semaphore = self._semaphore
        await semaphore.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                semaphore.release()

        async def send_counted(message: MutableMapping[str, Any]) -> None:
            # A streamed response (an export download) leaves the count at its first chunk: a
            # few slow downloads must not hold every slot for minutes.
            if message["type"] == "http.response.body" and message.get("more_body"):
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            release()
