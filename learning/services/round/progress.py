"""What a round reports while it runs: its log, heartbeat, lease, timings, checkpoint and the
progress event its watchers receive.

Every write here is a conditional or atomic update, so that two workers or a task delivered
twice never lose a line or take a lease that is still held.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.db.models import Q, Value
from django.db.models.functions import Concat, Right
from django.utils import timezone

from croplayer_site.jobs import job_broadcast, job_kind
from learning.models import ACTIVE_ROUND_STATES, FINAL_ROUND_STATES, Round

log = logging.getLogger(__name__)
LOG_KEEP_CHARS = 200_000


def log_line(message: str) -> str:
    return f"{timezone.now().strftime('%Y-%m-%d %H:%M:%S')} {message}\n"


def round_log(*, rnd: Round | int, message: str) -> None:
    """Append a timestamped line to the round's log (an atomic append, safe across workers);
    the log keeps its last ``LOG_KEEP_CHARS`` characters (every broadcast reads it)."""
    pk = rnd if isinstance(rnd, int) else rnd.pk
    Round.objects.filter(pk=pk).update(
        log=Right(Concat("log", Value(log_line(message))), LOG_KEEP_CHARS)
    )
    log.info("round %s: %s", pk, message)


def round_heartbeat(*, round_id: int, **fields: Any) -> bool:
    """Touch the heartbeat (and set ``fields``) unless the round is no longer active."""
    return bool(
        Round.objects.filter(pk=round_id, state__in=ACTIVE_ROUND_STATES).update(
            heartbeat_at=timezone.now(), **fields
        )
    )


def lease_claim(*, round_id: int, state: str, stale_after_s: float) -> str | None:
    """Take the single-flight lease of a stage; None while another live task holds it."""
    token = uuid.uuid4().hex
    stale = timezone.now() - dt.timedelta(seconds=stale_after_s)
    changed = (
        Round.objects.filter(pk=round_id, state=state)
        .filter(Q(lease="") | Q(heartbeat_at__lt=stale) | Q(heartbeat_at=None))
        .update(lease=token, heartbeat_at=timezone.now())
    )
    return token if changed else None


def lease_release(*, round_id: int, token: str) -> None:
    Round.objects.filter(pk=round_id, lease=token).update(lease="")


def lease_heartbeat(*, round_id: int, token: str, **fields: Any) -> bool:
    """Heartbeat while holding the lease; False when the round ended or the lease was lost."""
    return bool(
        Round.objects.filter(pk=round_id, lease=token, state__in=ACTIVE_ROUND_STATES).update(
            heartbeat_at=timezone.now(), **fields
        )
    )


def round_timing_add(*, round_id: int, stage: str, seconds: float) -> None:
    """Add seconds to a stage's timing (read-modify-write under a row lock)."""
    with transaction.atomic():
        rnd = Round.objects.select_for_update().get(pk=round_id)
        timings = dict(rnd.timings)
        timings[stage] = round(float(timings.get(stage, 0.0)) + seconds, 3)
        Round.objects.filter(pk=round_id).update(timings=timings)


def checkpoint_set(*, round_id: int, **values: Any) -> dict[str, Any]:
    """Merge ``values`` into the round's checkpoint (under a row lock)."""
    with transaction.atomic():
        rnd = Round.objects.select_for_update().get(pk=round_id)
        ck = dict(rnd.checkpoint or {})
        ck.update(values)
        Round.objects.filter(pk=round_id).update(checkpoint=ck)
    return ck


def round_event(*, rnd: Round) -> dict[str, Any]:
    """The progress event h3b's page and the API show: stage, percent, elapsed, ETA, log."""
    now = timezone.now()
    elapsed = (now - rnd.started_at).total_seconds() if rnd.started_at else 0.0
    end = rnd.finished_at or now
    if rnd.started_at and rnd.finished_at:
        elapsed = (end - rnd.started_at).total_seconds()
    percent = (100.0 * rnd.stage_done / rnd.stage_total) if rnd.stage_total else 0.0
    stage_started = (rnd.checkpoint or {}).get("stage_started")
    eta = None
    if rnd.is_active and stage_started and 0 < rnd.stage_done < rnd.stage_total:
        spent = now.timestamp() - float(stage_started)
        eta = round(spent / rnd.stage_done * (rnd.stage_total - rnd.stage_done), 1)
    return {
        "type": "job.progress",
        "job": f"round-{rnd.pk}",
        "round": rnd.pk,
        "number": rnd.number,
        "state": rnd.state,
        "status": rnd.state,
        "stage_done": rnd.stage_done,
        "stage_total": rnd.stage_total,
        "percent": round(percent, 1),
        "elapsed_s": round(elapsed, 1),
        "eta_s": eta,
        "heartbeat_at": rnd.heartbeat_at.isoformat() if rnd.heartbeat_at else None,
        "failure_reason": rnd.failure_reason,
        "log_tail": rnd.log.splitlines()[-10:],
        "final": rnd.state in FINAL_ROUND_STATES,
    }


def round_broadcast(*, rnd: Round) -> dict[str, Any]:
    """Send the round's progress to its Channels group, which ``ws/rounds/<id>/`` watchers join
    (``croplayer_site.jobs``: a broken channel layer is logged, never raised)."""
    return job_broadcast(kind=job_kind("round"), row=rnd, event=round_event(rnd=rnd))


class Heartbeat(threading.Thread):
    """Beats the round's lease while a long step runs; reports training progress; notices a
    cancel (or a lost lease) and sets ``stop`` so the training loop can end at the next step."""

    def __init__(self, *, round_id: int, token: str, every: float) -> None:
        super().__init__(daemon=True, name=f"round-{round_id}-heartbeat")
        self.round_id, self.token, self.every = round_id, token, every
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.progress: Callable[[], int | None] = lambda: None

    def run(self) -> None:
        try:
            while not self.finished.wait(self.every):
                done = self.progress()
                fields = {} if done is None else {"stage_done": done}
                if not lease_heartbeat(round_id=self.round_id, token=self.token, **fields):
                    self.stop.set()
                    return
                round_broadcast(rnd=Round.objects.get(pk=self.round_id))
        except Exception:  # a DB hiccup must not kill the worker; the reconciler takes over
            log.exception("heartbeat of round %s failed", self.round_id)
        finally:
            connection.close()

    def end(self) -> None:
        self.finished.set()
        self.join(timeout=30)
