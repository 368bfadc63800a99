"""A real XYZ tile server on 127.0.0.1 for tests and benchmarks, with switchable failure modes.

Tiles are served at ``/tiles/{z}/{x}/{y}.png`` from a ``tile_fn(z, x, y) -> RGB array | None``
(None -> 404). :func:`real_imagery_tiles` lays real LoveDA/GID images out over a tile range.
Failure modes per tile (``server.modes[(z, x, y)]``) or for every tile (``server.modes["*"]``):

  "404", "204"            legitimately absent
  "500", "503", "403"     that status, every time
  "500-then-ok", "429-then-ok"   first request fails, later ones succeed (retries)
  "slow"                  sleep ``server.slow_s`` before answering (timeouts)
  "html"                  200 with text/html
  "corrupt"               200 image/png with garbage bytes
  "redirect-other"        302 to ``server.other_base`` (another host)
  "redirect-same"         302 to the same server's ``/moved/...`` path (served normally)
Every request is counted (``server.requests[path]``, ``server.total``), and the peak number of
requests in flight is kept in ``server.max_in_flight`` (``server.delay_s`` slows every tile).
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

TileFn = Callable[[int, int, int], "np.ndarray | None"]


def tile_colour(x: int, y: int) -> tuple[int, int, int]:
    """A colour of its own for tile column ``x`` and row ``y``: a mosaic that puts a tile in the
    wrong place shows it."""
    return ((x * 37) % 256, (y * 59) % 256, (x * 11 + y * 7) % 256)


def encode(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


class TileServer:
    def __init__(self, tile_fn: TileFn, *, fmt: str = "PNG", token: str | None = None) -> None:
        self.tile_fn = tile_fn
        self.fmt = fmt
        self.token = token
        self.modes: dict[object, str] = {}
        self.slow_s = 2.0
        self.delay_s = 0.0
        self.other_base = "http://localhost:9/"
        self.requests: Counter[str] = Counter()
        self.total = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen_queries: list[str] = []
        self._lock = threading.Lock()
        self._failed_once: set[str] = set()
        self._encoded: dict[tuple[int, int, int], bytes | None] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def template(self, ext: str = "png", *, token: bool = False) -> str:
        return f"{self.base}/tiles/{{z}}/{{x}}/{{y}}.{ext}" + (
            "?access_token={token}" if token else ""
        )

    def __enter__(self) -> TileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.total = 0
            self.max_in_flight = 0

    def tile_bytes(self, z: int, x: int, y: int) -> bytes | None:
        key = (z, x, y)
        if key not in self._encoded:
            rgb = self.tile_fn(z, x, y)
            self._encoded[key] = None if rgb is None else encode(rgb, self.fmt)
        return self._encoded[key]

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        with self._lock:
            self.requests[parts.path] += 1
            self.total += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.seen_queries.append(parts.query)
        try:
            self._answer(h, parts.path, parts.query)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes = b"",
        ctype: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        if ctype:
            h.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body:
            h.wfile.write(body)

    def _answer(self, h: BaseHTTPRequestHandler, path: str, query: str) -> None:
        segs = path.strip("/").split("/")
        moved = segs[:1] == ["moved"]
        if moved:
            segs = segs[1:]
        if len(segs) != 4 or segs[0] != "tiles":
            return self._send(h, 400, b"bad path", "text/plain")
        try:
            z, x, y = int(segs[1]), int(segs[2]), int(segs[3].split(".")[0])
        except ValueError:
            return self._send(h, 400, b"bad path", "text/plain")
        if self.token is not None and parse_qs(query).get("access_token") != [self.token]:
            return self._send(h, 401, b"bad token", "text/plain")
        if self.delay_s:
            time.sleep(self.delay_s)
        mode = "" if moved else self.modes.get((z, x, y), self.modes.get("*", ""))
        ctype = "image/png" if self.fmt == "PNG" else "image/jpeg"
        if mode in ("404", "204", "500", "503", "403"):
            return self._send(h, int(mode), b"" if mode == "204" else b"no", "text/plain")
        if mode.endswith("-then-ok"):
            with self._lock:
                first = path not in self._failed_once
                self._failed_once.add(path)
            if first:
                return self._send(
                    h,
                    int(mode[:3]),
                    b"busy",
                    "text/plain",
                    {"Retry-After": "0"} if mode.startswith("429") else None,
                )
        if mode == "slow":
            time.sleep(self.slow_s)
        if mode == "html":
            return self._send(h, 200, b"<html>login</html>", "text/html; charset=utf-8")
        if mode == "corrupt":
            return self._send(h, 200, b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "image/png")
        if mode == "redirect-other":
            return self._send(h, 302, b"", None, {"Location": self.other_base + path.lstrip("/")})
        if mode == "redirect-same":
            return self._send(
                h, 302, b"", None, {"Location": "/moved" + path + (f"?{query}" if query else "")}
            )
        body = self.tile_bytes(z, x, y)
        if body is None:
            return self._send(h, 404, b"no tile", "text/plain")
        try:
            self._send(h, 200, body, ctype)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)


def real_imagery_tiles(
    real_dir: Path, *, x0: int, y0: int, nx: int, ny: int, zoom: int = 16, factor: int = 4
) -> TileFn:
    """Tiles cut from real images: LoveDA 1024² scenes downsampled ``factor``× into 256² cells
    laid out over tiles (x0..x0+nx-1, y0..y0+ny-1); outside the range -> absent."""
    files = sorted((real_dir / "loveda" / "images").glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no LoveDA images under {real_dir}")
    per_img = (1024 // factor) // 256  # tiles per image side
    cache: dict[int, np.ndarray] = {}

    def image(k: int) -> np.ndarray:
        if k not in cache:
            im = Image.open(files[k % len(files)]).convert("RGB")
            side = 1024 // factor
            cache[k] = np.asarray(im.resize((side, side), Image.Resampling.BOX))
        return cache[k]

    def fn(z: int, x: int, y: int) -> np.ndarray | None:
        if z != zoom or not (x0 <= x < x0 + nx and y0 <= y < y0 + ny):
            return None
        i, j = y - y0, x - x0
        k = (i // per_img) * ((nx + per_img - 1) // per_img) + j // per_img
        img = image(k)
        r, c = (i % per_img) * 256, (j % per_img) * 256
        return np.ascontiguousarray(img[r : r + 256, c : c + 256])

    return fn
