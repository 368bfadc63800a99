"""The ASGI request limit: at most N HTTP requests in Django at once, websockets uncounted."""

from __future__ import annotations

import asyncio
from typing import Any

from croplayer_site.asgi_limit import HttpConcurrencyLimit


def _run(limit: int, scopes: list[str]) -> int:
    inside = peak = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0.01)
        inside -= 1

    async def main() -> None:
        limited = HttpConcurrencyLimit(app, limit)
        await asyncio.gather(*(limited({"type": t}, None, None) for t in scopes))

    asyncio.run(main())
    return peak


def test_http_requests_wait_beyond_the_limit() -> None:
    assert _run(3, ["http"] * 20) == 3


def test_zero_means_no_limit_and_websockets_are_not_counted() -> None:
    assert _run(0, ["http"] * 20) == 20
    assert _run(2, ["websocket"] * 10) == 10
