"""Background jobs whose row is their state machine: one protocol for every app.

A job is a row with a state field, a ``campaign``, ``heartbeat_at`` and a Channels group
``job.<kind>-<pk>``. Each app describes its kinds with a ``JobKind`` and registers them from
its ``AppConfig.ready()``; this module never imports an app (it sits below all of them), so
whatever is app-specific (who may watch, the event's extra keys, a snapshot, what to do with a
stale row) is a callable on the kind.

What it offers:
- the registry: ``job_kind_register``, ``job_kind``, ``job_kinds``;
- the watcher gate: ``job_get_for_watcher`` (deny by default) and ``job_visible``;
- the row protocol: ``job_claim``, ``job_heartbeat``, ``job_finish``, ``job_fail``
  (all conditional on the state they leave);
- progress: ``job_event``, ``job_broadcast`` (advisory: channel errors are logged),
  ``JobProgress`` (a throttled progress writer) and ``Heartbeat`` (a thread);
- ``jobs_reconcile`` (and ``job_stale_reason``): requeue lost queued rows and settle stale
  running ones, per kind that sets ``stale_after_s``.

Background work without a job row (the integration run, the demo player) is not a kind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import OperationalError, connection, transaction
from django.db.models import Model, Q
from django.http import Http404
from django.utils import timezone

log = logging.getLogger(__name__)

JOBS_ROUTE = "jobs"  # ws/jobs/<kind>-<pk>/


def _no_extra(row: Model) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class JobKind:
    """One kind of job, described by the app that owns its model.

    ``visible(user=, row=)`` decides who may watch a row (role and campaign); ``event(row)``
    gives the keys a progress event carries besides ``job`` and ``status``; ``snapshot(row)``,
    when set, is sent on connect and merged into every relayed event (rounds). ``stale_after_s``
    ``None`` leaves the kind out of ``jobs_reconcile``; ``on_stale(row=, cutoff=)`` replaces the
    default settling of a stale running row (``job_fail`` and a broadcast) and returns whether
    it changed the row; ``requeue(pk)`` sends a queued row's task again. ``reconcile()``, when
    set, replaces the whole of ``jobs_reconcile``'s work for the kind: rounds, whose staleness
    and time limit are per row and whose stale rows resume rather than fail.
    """

    name: str
    model: type[Model]
    visible: Callable[..., bool]
    routes: frozenset[str] = frozenset({JOBS_ROUTE})
    state_field: str = "status"
    queued: str = "queued"
    running: str = "running"
    done: str = "done"
    failed: str = "failed"
    event: Callable[[Model], dict[str, Any]] = _no_extra
    snapshot: Callable[[Model], dict[str, Any]] | None = None
    stale_after_s: float | None = None
    stale_reason: str = "start the job again"
    on_stale: Callable[..., bool] | None = None
    requeue: Callable[[int], None] | None = None
    reconcile: Callable[[], dict[str, Any]] | None = None

    def group(self, pk: int) -> str:
        return f"job.{self.name}-{pk}"


class JobKindError(Exception):
    """A kind registered twice, or a name no app registered."""


_REGISTRY: dict[str, JobKind] = {}


def job_kind_register(kind: JobKind) -> JobKind:
    """Add ``kind`` to the registry; another kind with the same name raises (the same kind
    again is a no-op: an app registry set up twice)."""
    if "-" in kind.name or not kind.name.isalnum():
        raise JobKindError(f"a job kind's name is letters and digits: {kind.name!r}")
    if _REGISTRY.get(kind.name, kind) is not kind:
        raise JobKindError(f"job kind {kind.name!r} is registered already")
    _REGISTRY[kind.name] = kind
    return kind


def job_kind_unregister(name: str) -> None:
    """Remove a kind (tests with fake kinds)."""
    _REGISTRY.pop(name, None)


def job_kind(name: str) -> JobKind:
    """The registered kind ``name``; ``JobKindError`` for a name nobody registered."""
    try:
        return _REGISTRY[name]
    except KeyError as e:
        raise JobKindError(f"no job kind {name!r}") from e


def job_kinds() -> list[JobKind]:
    return list(_REGISTRY.values())


# --- who may watch ---------------------------------------------------------------------------


def job_get_for_watcher(*, user: Any, name: str, pk: int, route: str = JOBS_ROUTE) -> Model:
    """The row ``user`` may watch on ``route``; ``Http404`` otherwise, whatever the reason:
    an unknown kind, a kind not served on this route, a missing row, or ``kind.visible`` saying
    no. A missing row is refused too: a subscription made in advance would hear whatever a
    future row with that id broadcasts."""
    kind = _REGISTRY.get(name)
    if kind is None or route not in kind.routes or user is None or not user.is_authenticated:
        raise Http404("no such job")
    try:
        row = kind.model._default_manager.get(pk=pk)
    except kind.model.DoesNotExist as e:
        raise Http404("no such job") from e
    if not kind.visible(user=user, row=row):
        raise Http404("no such job")
    return row


def job_parse(job: str) -> tuple[str, int] | None:
    """``"<kind>-<pk>"`` as ``(kind, pk)``; ``None`` for anything else, a pk with a leading
    zero too ("fetch-007": the worker sends to ``job.fetch-7``, not that group)."""
    name, _, pk = job.partition("-")
    if not name or not (pk.isascii() and pk.isdigit()) or len(pk) > 18 or pk != str(int(pk)):
        return None
    return name, int(pk)


def job_visible(*, user: Any, job: str, route: str = JOBS_ROUTE) -> bool:
    """Whether ``user`` may watch ``job`` (``<kind>-<pk>``) on ``route``: deny by default."""
    parsed = job_parse(job)
    if parsed is None:
        return False
    try:
        job_get_for_watcher(user=user, name=parsed[0], pk=parsed[1], route=route)
    except Http404:
        return False
    return True


# --- the row protocol ------------------------------------------------------------------------


def _rows(kind: JobKind, pk: int, state: str | Iterable[str]) -> Any:
    states = [state] if isinstance(state, str) else list(state)
    return kind.model._default_manager.filter(pk=pk, **{f"{kind.state_field}__in": states})


def job_claim(*, kind: JobKind, pk: int, **fields: Any) -> bool:
    """Queued to running (with ``started_at`` and ``heartbeat_at``), only if still queued: a
    second delivery of the task, or a cancelled job, claims nothing."""
    now = timezone.now()
    values = {kind.state_field: kind.running, "started_at": now, "heartbeat_at": now, **fields}
    return bool(_rows(kind, pk, kind.queued).update(**values))


def job_heartbeat(*, kind: JobKind, pk: int, **fields: Any) -> bool:
    """Freshen ``heartbeat_at`` (and ``fields``) while the job runs; ``False``: it no longer
    does (finished, failed by the reconciler, cancelled), so the worker may stop."""
    return bool(_rows(kind, pk, kind.running).update(heartbeat_at=timezone.now(), **fields))


def job_finish(*, kind: JobKind, pk: int, **fields: Any) -> bool:
    """Running to done, only if still running: a job the reconciler failed stays failed."""
    now = timezone.now()
    values = {kind.state_field: kind.done, "finished_at": now, "heartbeat_at": now, **fields}
    return bool(_rows(kind, pk, kind.running).update(**values))


def job_fail(
    *, kind: JobKind, pk: int, reason: str, where: Q | None = None, **fields: Any
) -> bool:
    """Running to failed with ``reason`` (and ``finished_at``), only if still running (and
    ``where`` holds)."""
    rows = _rows(kind, pk, kind.running)
    if where is not None:
        rows = rows.filter(where)
    values = {
        kind.state_field: kind.failed,
        "failure_reason": reason[:4000],
        "finished_at": timezone.now(),
        **fields,
    }
    return bool(rows.update(**values))


# --- progress --------------------------------------------------------------------------------


def job_event(
    *, kind: JobKind, row: Model, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``job.progress`` event of ``row``: its job name, state and the kind's own keys
    (``kind.event(row)``, or ``extra`` when the caller has computed them already)."""
    return {
        "type": "job.progress",
        "job": f"{kind.name}-{row.pk}",
        "status": getattr(row, kind.state_field),
        **(kind.event(row) if extra is None else extra),
    }


def job_send(*, group: str, event: dict[str, Any]) -> None:
    """``group_send`` that never raises: progress is advisory, and a full or unreachable
    channel layer must not fail the job."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:
        log.warning("could not broadcast progress to %s", group, exc_info=True)


def job_broadcast(
    *, kind: JobKind, row: Model, event: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send ``row``'s event (``job_event`` unless given) to its group; returns the event."""
    if event is None:
        event = job_event(kind=kind, row=row)
    job_send(group=kind.group(row.pk), event=event)
    return event


@dataclass
class JobProgress:
    """Write progress (``fields`` plus ``heartbeat_at``) and broadcast it, at most once every
    ``every_s`` unless forced or complete (``done >= total``).

    A write SQLite refuses with "locked" is skipped: a job that streams its rows holds a read
    snapshot, which cannot become a write once another writer committed (WAL's
    SQLITE_BUSY_SNAPSHOT; the busy timeout does not apply). Progress is advisory; the next call
    tries again and the heartbeat keeps the job alive.
    """

    kind: JobKind
    row: Model
    every_s: float = 1.0
    last: float = field(default=float("-inf"))

    def __call__(self, *, force: bool = False, **fields: Any) -> bool:
        """Returns whether it wrote and broadcast."""
        now = time.monotonic()
        complete = fields.get("done", 0) >= fields.get("total", 1)
        if not force and not complete and now - self.last < self.every_s:
            return False
        try:
            self.kind.model._default_manager.filter(pk=self.row.pk).update(
                heartbeat_at=timezone.now(), **fields
            )
        except OperationalError as e:
            if connection.vendor != "sqlite" or "locked" not in str(e):
                raise
            log.info("%s-%s: progress %s not written (%s)", self.kind.name, self.row.pk, fields, e)
            return False
        self.last = now
        for name, value in fields.items():
            setattr(self.row, name, value)
        job_broadcast(kind=self.kind, row=self.row)
        return True


class Heartbeat(threading.Thread):
    """Keeps a running job's heartbeat fresh while a long quiet step runs, so the reconciler
    only settles jobs whose worker is gone. Stops by itself once the job no longer runs; closes
    its own database connection."""

    def __init__(self, *, kind: JobKind, pk: int, every_s: float = 60.0) -> None:
        super().__init__(daemon=True, name=f"{kind.name}-{pk}-heartbeat")
        self.kind, self.pk, self.every_s = kind, pk, every_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.every_s):
                if not job_heartbeat(kind=self.kind, pk=self.pk):
                    break
        finally:
            connection.close()

    def end(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)


# --- reconcile -------------------------------------------------------------------------------


def job_stale_reason(*, kind: JobKind, row: Model) -> str:
    """The failure reason of a job whose worker went quiet."""
    return (
        f"the worker stopped reporting (no heartbeat since "
        f"{row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); {kind.stale_reason}"  # type: ignore[attr-defined]
    )


def _settle_stale(*, kind: JobKind, row: Model, cutoff: datetime) -> bool:
    changed = job_fail(
        kind=kind,
        pk=row.pk,
        reason=job_stale_reason(kind=kind, row=row),
        where=Q(heartbeat_at__lt=cutoff),
    )
    if changed:
        row.refresh_from_db()
        job_broadcast(kind=kind, row=row)
    return changed


def jobs_reconcile(
    *, names: Iterable[str] | None = None, stale_after_s: float | None = None
) -> dict[str, dict[str, Any]]:
    """Per kind that sets ``stale_after_s`` (or every kind in ``names``, with
    ``stale_after_s`` overriding the kind's): queued rows older than that are sent again
    (``requeue``, after the commit; the claim makes a second delivery harmless), running rows
    whose heartbeat is older are settled (``on_stale``, by default failed with the reason and
    broadcast). A kind with its own ``reconcile`` runs that instead."""
    kinds = [job_kind(n) for n in names] if names is not None else job_kinds()
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        if kind.reconcile is not None:
            out[kind.name] = kind.reconcile()
            continue
        after = stale_after_s if stale_after_s is not None else kind.stale_after_s
        if after is None:
            continue
        cutoff = timezone.now() - timedelta(seconds=after)
        manager = kind.model._default_manager
        requeued: list[int] = []
        if kind.requeue is not None:
            for pk in manager.filter(
                **{kind.state_field: kind.queued}, created_at__lt=cutoff
            ).values_list("pk", flat=True):
                transaction.on_commit(lambda pk=pk, requeue=kind.requeue: requeue(pk))
                requeued.append(pk)
        settle = kind.on_stale or partial(_settle_stale, kind=kind)
        failed = [
            row.pk
            for row in manager.filter(**{kind.state_field: kind.running}, heartbeat_at__lt=cutoff)
            if settle(row=row, cutoff=cutoff)
        ]
        out[kind.name] = {"failed": failed, "requeued": requeued}
    return out
