"""The suite's one root of shared fixtures: the fast password hasher, real data (skipped when
absent), the four users and a logged-in client for any of them, a real Celery worker, daphne,
Chromium. Factories of the common objects are in ``tests/factories.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHARED_DATA = Path(os.environ.get("CROPLAYER_SHARED_DATA", ROOT.parent / "shared" / "data"))


_embedded_redis = None


def pytest_sessionstart(session: pytest.Session) -> None:
    """With no ``REDIS_URL`` the suite runs on the embedded default: its own private
    redis-server on a unix socket in ``CROPLAYER_VAR_DIR`` (as ``make demo``), started here and
    stopped at the end; workers and servers the tests start find it through the same setting."""
    global _embedded_redis
    from django.conf import settings

    from croplayer_site import embedded_redis

    sock = getattr(settings, "EMBEDDED_REDIS_SOCKET", None)
    if sock is not None:
        _embedded_redis = embedded_redis.start(sock, log=sock.with_suffix(".log"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from croplayer_site import embedded_redis

    embedded_redis.stop(_embedded_redis)


def pytest_configure(config: pytest.Config) -> None:
    # A finished run never waits on stray threads (tests/exit_guard.py).
    from tests.exit_guard import NAME, ExitGuard

    if not config.pluginmanager.is_blocked(NAME):
        config.pluginmanager.register(ExitGuard(), NAME)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test that drives Chromium is a browser test, marked or not: CI runs those once per run
    # (in the PostGIS step), not once per database.
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


FAST_HASHER = "django.contrib.auth.hashers.MD5PasswordHasher"


@pytest.fixture(autouse=True)
def fast_password_hashing(request: pytest.FixtureRequest) -> None:
    """Every test hashes passwords with MD5: the default hasher is slow on purpose, and the four
    ``users`` are made in most tests. The daphne of ``asgi_server`` reads
    ``tests.server_settings``, which lists the same hasher, so a browser test's login form
    checks these hashes."""
    request.getfixturevalue("settings").PASSWORD_HASHERS = [FAST_HASHER]


@pytest.fixture(autouse=True)
def _language_reset() -> Iterator[None]:
    """A request in Chinese leaves Chinese active in the thread (LocaleMiddleware activates,
    nothing deactivates): the next test would read its strings in Chinese."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real imagery, boundaries, statistics, DEM), or skip with a reason."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set CROPLAYER_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def data_dir(tmp_path: Path, settings) -> Path:
    """``DATA_DIR`` of the test's own (imagery, models, imported products)."""
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


@pytest.fixture
def users(db):
    """annotator, lead, admin (each in their group) and an outsider with no role; each one's
    password is ``tests.factories.password_of(name)``."""
    from tests.factories import role_users_make

    return role_users_make()


@pytest.fixture
def login(request: pytest.FixtureRequest):
    """``login(who, **client_options)``: a new test ``Client`` logged in (``force_login``) as
    ``who``: a name of ``users`` ("annotator", "lead", "admin", "outsider"; asking for one
    makes the four), any ``User``, or "anonymous" (nobody). ``client_options`` go to the Client
    (``enforce_csrf_checks``, ``raise_request_exception``); ``api=True`` makes it DRF's
    ``APIClient`` (``format="json"``)."""
    from django.test import Client
    from rest_framework.test import APIClient

    def log_in(who="anonymous", *, api: bool = False, **client_options) -> Client:
        c = (APIClient if api else Client)(**client_options)
        if isinstance(who, str):
            if who == "anonymous":
                return c
            who = request.getfixturevalue("users")[who]
        c.force_login(who)
        return c

    return log_in


@pytest.fixture
def session_cookie(login):
    """``session_cookie(who)``: ``"sessionid=…"``, a new session of ``who`` (as for ``login``)
    for requests that do not go through the test client (raw sockets, daphne, websockets)."""

    def cookie(who) -> str:
        return f"sessionid={login(who).cookies['sessionid'].value}"

    return cookie


def page_login(page, base: str, who: str) -> None:
    """Logs a Chromium page in through the site's login form as the ``users`` name ``who``; the
    page ends on the home page."""
    from tests.factories import password_of

    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", password_of(who))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _subprocess_env() -> dict[str, str]:
    """The environment for a server or worker process that must use the test database."""
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
    return env


def _start(
    args: list[str], log: Path, ready: Callable[[], bool], what: str, **env: str
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            args, cwd=ROOT, env={**_subprocess_env(), **env}, stdout=fh, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def celery_worker_start(settings, *, queues: str = "cpu,gpu", name: str = "") -> tuple[
    subprocess.Popen[bytes], Path
]:
    """Start a real ``celery worker`` process on ``queues``; returns it and its log file."""
    log = Path(settings.VAR_DIR) / f"worker-{os.getpid()}{name}.log"
    log.unlink(missing_ok=True)
    proc = _start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "croplayer_site",
            "worker",
            "-Q",
            queues,
            "--pool",
            "solo",
            "--hostname",
            f"test{name or ''}-{os.getpid()}@%h",
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        log,
        lambda: log.exists() and b"ready." in log.read_bytes(),
        f"celery worker ({queues})",
    )
    return proc, log


def _purge() -> None:
    # Stale messages from an earlier run would name rows this database never had.
    from croplayer_site.celery import app

    app.control.purge()


@pytest.fixture
def celery_worker_proc(transactional_db, settings) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` process on the test database and the configured broker."""
    _purge()
    proc, _log = celery_worker_start(settings)
    yield proc
    _stop(proc)


@pytest.fixture
def split_workers(transactional_db, settings) -> Iterator[dict[str, Path]]:
    """Two real workers as a team would run them: one on the ``gpu`` queue (models), one on
    ``cpu`` (features, bookkeeping); yields their log files by queue."""
    _purge()
    gpu, gpu_log = celery_worker_start(settings, queues="gpu", name="-gpu")
    try:
        cpu, cpu_log = celery_worker_start(settings, queues="cpu", name="-cpu")
    except BaseException:
        _stop(gpu)
        raise
    yield {"gpu": gpu_log, "cpu": cpu_log}
    _stop(cpu)
    _stop(gpu)


@pytest.fixture
def asgi_server(transactional_db, settings) -> Iterator[str]:
    """The real ASGI app under daphne on a free loopback port; yields its base URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(settings.VAR_DIR) / f"daphne-{os.getpid()}.log"

    def ready() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    proc = _start(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "croplayer_site.asgi:application",
        ],
        log,
        ready,
        "daphne",
        DJANGO_SETTINGS_MODULE="tests.server_settings",
    )
    yield f"http://127.0.0.1:{port}"
    _stop(proc)


@pytest.fixture
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download)."""
    pw_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous, so Django's async-safety guard is lifted for browser tests.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with pw_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()
