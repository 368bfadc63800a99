"""Shared fixtures: real data (skipped when absent), the four users, a real Celery worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CROPLAYER_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real imagery, boundaries, statistics, DEM), or skip with a reason."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set CROPLAYER_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def users(db):
    """annotator, lead, admin (each in their group) and an outsider with no role."""
    from django.contrib.auth.models import User

    from croplayer_site.roles import roles_ensure

    groups = roles_ensure()
    out = {}
    for name in ("annotator", "lead", "admin", "outsider"):
        u = User.objects.create_user(name, password=f"{name}-pw-123!")
        if name in groups:
            u.groups.add(groups[name])
        if name == "admin":
            u.is_staff = True
            u.save()
        out[name] = u
    return out


@pytest.fixture
def celery_worker_proc(transactional_db, settings) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` process on the test database and the configured broker."""
    from django.db import connection

    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    db_name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["CROPLAYER_SQLITE_PATH"] = str(db_name)
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_TEST_NAME"] = db_name
        base = env["DATABASE_URL"].rsplit("/", 1)[0]
        env["DATABASE_URL"] = f"{base}/{db_name}"
    # Stale messages from an earlier run would name rows this database never had.
    from croplayer_site.celery import app

    app.control.purge()
    log = Path(settings.VAR_DIR) / f"worker-{os.getpid()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "croplayer_site",
                "worker",
                "-Q",
                "cpu,gpu",
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while b"ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
