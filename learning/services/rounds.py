"""Round lifecycle: start (one active per campaign), cancel, log lines, heartbeat, progress.

The round row is the state machine. Every write here is a conditional update, so that two
requests, two workers or a task delivered twice never move a round backwards or twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Max, Q, Value
from django.db.models.functions import Concat, Right
from django.utils import timezone

from learning.models import (
    ACTIVE_ROUND_STATES,
    FINAL_ROUND_STATES,
    ProvinceDecision,
    ProvinceStatus,
    Round,
    RoundState,
)
from learning.services.config import RoundConfigError, round_config_parse
from mapping.models import AdminLevel, AdminUnit, Campaign

log = logging.getLogger(__name__)
LOG_KEEP_CHARS = 200_000


class RoundConflict(Exception):
    """The campaign already has an active round (the API answers 409 with its link)."""

    def __init__(self, active: Round) -> None:
        super().__init__(f"round {active.number} of this campaign is still {active.state}")
        self.active = active


class RoundNotActive(Exception):
    """The round is already done, failed or cancelled."""


class RoundInputError(ValueError):
    """Bad provinces or config for a new round; the message says what."""


def campaign_provinces(*, campaign: Campaign) -> list[AdminUnit]:
    """The campaign's provinces: those it names, else every province that has blocks."""
    named = list(campaign.provinces.all())
    if named:
        return named
    ids = campaign.blocks.exclude(province=None).values_list("province_id", flat=True).distinct()
    return list(AdminUnit.objects.filter(pk__in=ids, level=AdminLevel.PROVINCE))


def _target_provinces(
    *,
    campaign: Campaign,
    provinces: Iterable[AdminUnit | int] | None,
) -> list[AdminUnit]:
    allowed = {p.pk: p for p in campaign_provinces(campaign=campaign)}
    by_adcode = {p.adcode: p for p in allowed.values()}
    done = set(
        ProvinceStatus.objects.filter(
            campaign=campaign,
            decision__in=[ProvinceDecision.CONVERGED, ProvinceDecision.EXCLUDED],
        ).values_list("province_id", flat=True)
    )
    if provinces is None:
        chosen = [p for p in allowed.values() if p.pk not in done]
        if not chosen:
            raise RoundInputError("every province of the campaign is converged or excluded")
        return sorted(chosen, key=lambda p: p.adcode)
    chosen = []
    for item in provinces:
        unit = item if isinstance(item, AdminUnit) else by_adcode.get(int(item))
        if unit is None or unit.pk not in allowed:
            raise RoundInputError(
                f"province {getattr(item, 'adcode', item)} is not a province "
                f"of campaign {campaign.slug!r}"
            )
        chosen.append(unit)
    if not chosen:
        raise RoundInputError("no province given")
    return sorted({p.pk: p for p in chosen}.values(), key=lambda p: p.adcode)


def round_active(*, campaign: Campaign) -> Round | None:
    return Round.objects.filter(campaign=campaign, state__in=ACTIVE_ROUND_STATES).first()


def round_start(
    *,
    campaign: Campaign,
    provinces: Iterable[AdminUnit | int] | None,
    user: AbstractBaseUser | None,
    config: dict[str, Any] | None = None,
) -> Round:
    """Create a queued round and hand it to a worker (after commit).

    ``provinces`` are AdminUnits or adcodes; None means every province not yet converged or
    excluded. Raises RoundConflict when the campaign already has an active round — enforced by
    the database's partial unique index, so it holds for concurrent requests too — and
    RoundInputError / RoundConfigError for bad input.
    """
    try:
        cfg = round_config_parse(config)
    except RoundConfigError as e:
        raise RoundInputError(f"invalid config: {e}") from e
    targets = _target_provinces(campaign=campaign, provinces=provinces)
    active = round_active(campaign=campaign)
    if active is not None:
        raise RoundConflict(active)
    for attempt in range(20):
        number = (Round.objects.filter(campaign=campaign).aggregate(n=Max("number"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                rnd = Round.objects.create(
                    campaign=campaign,
                    number=number,
                    requested_by=user,
                    config=cfg.model_dump(mode="json"),
                    log=_line(
                        f"round {number} queued for "
                        f"{', '.join(p.name_en or p.name_zh for p in targets)}"
                    ),
                )
                rnd.provinces.set(targets)
                transaction.on_commit(lambda pk=rnd.pk: _dispatch_first(pk))
            return rnd
        except (IntegrityError, OperationalError) as e:
            # Lost a race: either another round became active (conflict), or another start
            # took the number and then finished, or SQLite was busy; look again.
            active = round_active(campaign=campaign)
            if active is not None:
                raise RoundConflict(active) from e
            time.sleep(0.05 * (attempt + 1))
    raise RoundInputError("could not create the round (database busy); try again")


def _dispatch_first(round_id: int) -> None:
    from learning.tasks import round_advance, rounds_watch

    round_advance.delay(round_id)
    rounds_watch.apply_async(countdown=5)


def round_cancel(*, rnd: Round, user: AbstractBaseUser | None) -> Round:
    """Stop a round now: its row turns cancelled at once; running tasks see it and stop."""
    who = user.get_username() if user is not None else "system"
    changed = Round.objects.filter(pk=rnd.pk, state__in=ACTIVE_ROUND_STATES).update(
        state=RoundState.CANCELLED,
        cancel_requested=True,
        finished_at=timezone.now(),
        lease="",
    )
    if not changed:
        rnd.refresh_from_db()
        raise RoundNotActive(f"round {rnd.number} is already {rnd.state}")
    round_log(rnd=rnd, message=f"cancelled by {who}")
    rnd.refresh_from_db()
    round_broadcast(rnd=rnd)
    return rnd


def _line(message: str) -> str:
    return f"{timezone.now().strftime('%Y-%m-%d %H:%M:%S')} {message}\n"


def round_log(*, rnd: Round | int, message: str) -> None:
    """Append a timestamped line to the round's log (an atomic append, safe across workers);
    the log keeps its last ``LOG_KEEP_CHARS`` characters (every broadcast reads it)."""
    pk = rnd if isinstance(rnd, int) else rnd.pk
    Round.objects.filter(pk=pk).update(
        log=Right(Concat("log", Value(_line(message))), LOG_KEEP_CHARS)
    )
    log.info("round %s: %s", pk, message)


def round_heartbeat(*, round_id: int, **fields: Any) -> bool:
    """Touch the heartbeat (and set ``fields``) unless the round is no longer active."""
    return bool(
        Round.objects.filter(pk=round_id, state__in=ACTIVE_ROUND_STATES).update(
            heartbeat_at=timezone.now(), **fields
        )
    )


def round_transition(*, round_id: int, from_state: str, to_state: str, **fields: Any) -> bool:
    """Move the round from one state to the next; False if someone else already did."""
    return bool(
        Round.objects.filter(pk=round_id, state=from_state).update(
            state=to_state, heartbeat_at=timezone.now(), **fields
        )
    )


def round_fail(*, round_id: int, reason: str) -> bool:
    """Fail an active round with a reason the admin can act on."""
    changed = Round.objects.filter(pk=round_id, state__in=ACTIVE_ROUND_STATES).update(
        state=RoundState.FAILED, failure_reason=reason[:5000], finished_at=timezone.now(), lease=""
    )
    if changed:
        round_log(rnd=round_id, message=f"failed: {reason}")
        round_broadcast(rnd=Round.objects.get(pk=round_id))
    return bool(changed)


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
    """Send the round's progress to its Channels group, which ``ws/rounds/<id>/`` watchers join."""
    event = round_event(rnd=rnd)
    layer = get_channel_layer()
    if layer is not None:
        try:
            async_to_sync(layer.group_send)(rnd.group, event)
        except Exception:  # progress is advisory; a full channel must not fail the round
            log.warning("could not broadcast progress of %s", rnd, exc_info=True)
    return event
