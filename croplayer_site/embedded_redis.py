"""The embedded default's private ``redis-server``: one per var folder, on a unix socket.

When ``REDIS_URL`` is unset, settings point Celery (broker and results) and the Channels layer
at ``<CROPLAYER_VAR_DIR>/redis.sock`` (``redis+socket://`` for kombu, ``unix://`` for
redis-py): the same transport code as production, with no TCP port to collide with and no
message file that a worker could read half written (kombu's file-system transport did, and
the worker died with ``JSONDecodeError``). ``make demo`` starts the server with
``python -m croplayer_site.embedded_redis serve``; the test suite starts its own the same way
(``tests/conftest.py``). Nothing is persisted: a round's state lives in the database, and a
restarted worker's reconciler re-queues what a lost message would have done.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from croplayer_site.processes import process_stop

SOCKET_NAME = "redis.sock"


def socket_path(var_dir: Path) -> Path:
    return Path(var_dir).resolve() / SOCKET_NAME


def broker_url(sock: Path) -> str:
    """kombu and Celery's result backend spell a unix socket ``redis+socket:///path``."""
    return f"redis+socket://{sock}"


def redis_py_url(url: str) -> str:
    """The same server as a redis-py URL (channels_redis, liveness): ``unix:///path``."""
    for prefix in ("redis+socket://", "socket://"):
        if url.startswith(prefix):
            return "unix://" + url[len(prefix):]
    return url


def celery_url(url: str) -> str:
    """The same server as a kombu URL: ``unix:///path`` becomes ``redis+socket:///path``."""
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://"):]
    return url


def ping(sock: Path, timeout: float = 1.0) -> bool:
    """True when a redis server answers PING on ``sock``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def server_args(sock: Path) -> list[str]:
    return [
        "redis-server",
        "--port", "0",  # no TCP: only this machine's users with access to var/ reach it
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(sock.parent),
        "--save", "",
        "--appendonly", "no",
        "--pidfile", str(sock.with_suffix(".pid")),
        "--logfile", "",
    ]


def start(
    sock: Path, *, log: Path | None = None, wait_s: float = 20.0
) -> subprocess.Popen[bytes] | None:
    """Start a private server on ``sock`` unless one answers already (returns None then)."""
    if ping(sock):
        return None
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)  # left by a server that was killed
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(server_args(sock), stdout=out, stderr=subprocess.STDOUT)
    except FileNotFoundError as e:
        raise RuntimeError(
            "redis-server is not installed (Debian: apt-get install redis-server); "
            "or set REDIS_URL to a running Redis"
        ) from e
    deadline = time.monotonic() + wait_s
    while not ping(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"redis-server did not start on {sock}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    process_stop(proc, timeout=10)


def main(argv: list[str]) -> int:
    """``serve`` runs the server in the foreground (exec) on the var folder's socket;
    ``ping`` exits 0 when it answers."""
    var_dir = Path(os.environ.get("CROPLAYER_VAR_DIR", "var"))
    if not var_dir.is_absolute():
        var_dir = Path(__file__).resolve().parent.parent / var_dir
    sock = socket_path(var_dir)
    if argv[:1] == ["ping"]:
        return 0 if ping(sock) else 1
    if argv[:1] == ["serve"]:
        if ping(sock):
            print(f"a redis server already answers on {sock}", file=sys.stderr)
            return 1
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        os.execvp("redis-server", server_args(sock))
    print("usage: python -m croplayer_site.embedded_redis serve|ping", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
