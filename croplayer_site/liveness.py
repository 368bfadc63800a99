"""Worker liveness: each Celery worker writes a heartbeat key to Redis; pages read them.

A worker's main process beats every ``BEAT_EVERY_S`` from a thread (started on
``worker_ready``), so a worker busy with a long training task still counts as alive, and a
worker whose process died (the old file broker's ``Unrecoverable error``, a kill, an OOM)
drops out within ``TTL_S``: its key expires. The key names the queues the worker consumes,
so a round can say which queue has nobody on it. Redis (the broker) holds the keys, so the
web process needs nothing else; ``/healthz`` and the rounds page read :func:`workers_alive`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

PREFIX = "croplayer:worker:"
BEAT_EVERY_S = 5.0
TTL_S = 20


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(
        settings.REDIS_PY_URL, socket_timeout=2, socket_connect_timeout=2
    )


def heartbeat_write(*, hostname: str, queues: list[str], client: Any = None) -> None:
    """Record that ``hostname`` is alive now (expires after ``TTL_S``)."""
    value = {"hostname": hostname, "queues": sorted(queues), "pid": os.getpid(), "at": time.time()}
    (client or _redis()).set(PREFIX + hostname, json.dumps(value), ex=TTL_S)


def heartbeat_clear(*, hostname: str) -> None:
    try:
        _redis().delete(PREFIX + hostname)
    except Exception:  # shutting down: the key expires anyway
        log.debug("could not clear the heartbeat of %s", hostname, exc_info=True)


def workers_alive() -> dict[str, Any]:
    """``{"ok": broker reachable, "workers": [{hostname, queues, age_s}], "queues": [...],
    "error": reason}``; never raises."""
    try:
        client = _redis()
        keys = sorted(client.scan_iter(match=PREFIX + "*", count=100))
        raw = client.mget(keys) if keys else []
    except Exception as e:
        return {"ok": False, "workers": [], "queues": [],
                "error": f"{type(e).__name__}: {e}"}
    now = time.time()
    workers = []
    for value in raw:
        if not value:
            continue
        try:
            w = json.loads(value)
        except ValueError:
            continue
        workers.append({"hostname": w.get("hostname", ""), "queues": w.get("queues", []),
                        "age_s": round(max(0.0, now - float(w.get("at", now))), 1)})
    queues = sorted({q for w in workers for q in w["queues"]})
    return {"ok": True, "workers": workers, "queues": queues, "error": ""}


class _Beat(threading.Thread):
    def __init__(self, hostname: str, queues: list[str]) -> None:
        super().__init__(daemon=True, name="croplayer-liveness")
        self.hostname, self.queues = hostname, queues
        self.done = threading.Event()

    def run(self) -> None:
        client = None
        while True:
            try:
                client = client or _redis()
                heartbeat_write(hostname=self.hostname, queues=self.queues, client=client)
            except Exception:  # Redis away for a moment: try again next beat
                client = None
                log.warning("worker heartbeat not written", exc_info=True)
            if self.done.wait(BEAT_EVERY_S):
                return


_beat: _Beat | None = None


def beat_start(*, hostname: str, queues: list[str]) -> None:
    """Start the heartbeat thread of this worker process (once)."""
    global _beat
    if _beat is None:
        _beat = _Beat(hostname, queues)
        _beat.start()


def beat_stop() -> None:
    global _beat
    if _beat is not None:
        _beat.done.set()
        heartbeat_clear(hostname=_beat.hostname)
        _beat = None
