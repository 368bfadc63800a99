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


def test_a_streamed_response_leaves_the_count_at_its_first_chunk() -> None:
    inside = peak = 0

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        inside -= 1  # streaming on, outside the count
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def sink(message: Any) -> None:
        return None

    async def main() -> float:
        limited = HttpConcurrencyLimit(stream, 1)
        t0 = asyncio.get_running_loop().time()
        await asyncio.gather(*(limited({"type": "http"}, None, sink) for _ in range(5)))
        return asyncio.get_running_loop().time() - t0

    elapsed = asyncio.run(main())
    assert peak == 1
    assert elapsed < 0.2  # five 50 ms streams side by side, not one after another (0.25 s)
