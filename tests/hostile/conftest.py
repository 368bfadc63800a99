"""Fixtures of the hostile-input suite: a loopback listener that must see no connection, a
canary file whose bytes must never come back, and a small campaign to import into."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from learning.product.models import CroplandProduct
from mapping.models import Campaign
from tests.factories import one_block_campaign_make

CANARY_BYTES = b"CANARY-7f3a9c-SERVER-SECRET-"


class Listener:
    """A TCP socket on 127.0.0.1 that a hostile file's /vsicurl/ URL points at. A thread
    accepts, counts and closes every connection at once (so an unguarded GDAL fails fast
    instead of waiting for an answer)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._count += 1
            conn.close()

    def url(self, name: str = "x.tif") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def connections(self, timeout: float = 1.0) -> int:
        """How many connections arrived (waits ``timeout`` for a late one)."""
        time.sleep(timeout)
        return self._count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    try:
        yield lis
    finally:
        lis.close()


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A server file outside any upload; a raw-band VRT would read it byte by byte."""
    path = tmp_path / "server-secret.bin"
    path.write_bytes(CANARY_BYTES * 64)
    return path


def leaks(text: str) -> list[str]:
    """What an error text shows that it must not: canary bytes or server paths."""
    found = []
    if "CANARY" in text or "67, 65, 78, 65, 82" in text or "67 65 78 65 82" in text:
        found.append("canary bytes")
    for marker in ("/tmp/", "pytest-of-", "croplayer-open-", "croplayer-import-", "/vsi"):
        if marker in text:
            found.append(f"server path ({marker})")
    return found


def products_stored(data_dir: Path) -> tuple[int, list[Path]]:
    """How many products are recorded, and the files under the data folder's reference products:
    a refused import must change neither."""
    folder = data_dir / "reference_products"
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    return CroplandProduct.objects.count(), files


@pytest.fixture
def campaign(db, data_dir: Path, users) -> Campaign:
    """Campaign "hostile": one province (Jiangsu's corner, 0.3° x 0.3°) and one block."""
    return one_block_campaign_make(slug="hostile", name="Hostile", lead=users["lead"])
