"""Fixtures of the hostile-input suite: a loopback listener that must see no connection, a
canary file whose bytes must never come back, and a small campaign to import into."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon

from mapping.models import AdminLevel, AdminUnit, Block, Campaign
from mapping.services.members import campaign_members_add

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


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def data_dir(tmp_path: Path, settings) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def campaign(db, data_dir: Path, users) -> Campaign:
    """Campaign "hostile": one province (Jiangsu's corner, 0.3° x 0.3°) and one block."""
    c = Campaign.objects.create(slug="hostile", name="Hostile", region="China", year=2020, zoom=12)
    campaign_members_add(campaign=c, users=[users["lead"]])
    unit = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=320000, name_zh="江苏省", name_en="Jiangsu",
        geometry=MultiPolygon(Polygon.from_bbox((118.9, 31.9, 119.2, 32.2)), srid=4326))
    c.provinces.set([unit])
    Block.objects.create(campaign=c, row=2440, col=5980, province=unit,
                         geometry=Polygon.from_bbox((119.0, 32.0, 119.05, 32.05)))
    return c
