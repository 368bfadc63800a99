"""The round driver: look at the round's state and start (or re-start) what that state needs.

The stages move the round along the transition table (``machine.TRANSITIONS``); the driver is
what a queued round, a stage that finished, and the reconciler's resume all call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils import timezone

from learning.models import Round, RoundBatch, RoundState
from learning.services.config import RoundConfig, round_config_parse
from learning.services.round import dispatch
from learning.services.round.batches import batches_dispatch
from learning.services.round.evaluate import round_evaluate_run
from learning.services.round.machine import TRANSITIONS, round_fail, round_get, stage_enter
from learning.services.round.progress import lease_claim, lease_release, round_log
from learning.services.round.select import round_select_run
from learning.services.validation import validation_split_ensure


def _queued(rnd: Round, cfg: RoundConfig) -> dict[str, Any] | None:
    if cfg.validation_min_blocks:
        # Before training sees the samples: held-out blocks must never have been trained on.
        moved = validation_split_ensure(
            campaign=rnd.campaign, share=cfg.validation_share,
            min_blocks=cfg.validation_min_blocks,
        )
        if moved:
            round_log(rnd=rnd.pk, message=f"{moved} sample(s) held out for validation "
                      f"(at least {cfg.validation_min_blocks} block(s) per province)")
    total = cfg.epochs * cfg.steps_per_epoch
    if stage_enter(
        round_id=rnd.pk,
        from_state=RoundState.QUEUED,
        total=total,
        message="training started",
        started_at=timezone.now(),
    ):
        dispatch.round_train_enqueue(rnd.pk)
    return None


def _training(rnd: Round, cfg: RoundConfig) -> dict[str, Any] | None:
    dispatch.round_train_enqueue(rnd.pk)
    return None


def _predicting(rnd: Round, cfg: RoundConfig) -> dict[str, Any] | None:
    batches_dispatch(rnd, RoundState.PREDICTING)
    return None


def _scoring(rnd: Round, cfg: RoundConfig) -> dict[str, Any] | None:
    if RoundBatch.objects.filter(round=rnd, stage=RoundState.SCORING, done_at=None).exists():
        batches_dispatch(rnd, RoundState.SCORING)
    else:
        dispatch.round_score_enqueue(rnd.pk)
    return None


def _evaluating_selecting(rnd: Round, cfg: RoundConfig) -> dict[str, Any] | None:
    # Inline and single-flight: a second delivery of this task (or the reconciler's
    # re-drive) finds the lease taken and leaves the writing to the first.
    state = rnd.state
    token = lease_claim(round_id=rnd.pk, state=state, stale_after_s=cfg.stale_after_s)
    if token is None:
        return {"state": state, "busy": True}
    try:
        if state == RoundState.EVALUATING:
            round_evaluate_run(round_id=rnd.pk)
        round_select_run(round_id=rnd.pk)
    finally:
        lease_release(round_id=rnd.pk, token=token)
    return None


# What each active state needs started: a task queued (training, scoring), its batches queued
# (predicting, the features of scoring), or the work done right here (evaluating, selecting).
DRIVE: dict[str, Callable[[Round, RoundConfig], dict[str, Any] | None]] = {
    RoundState.QUEUED: _queued,
    RoundState.TRAINING: _training,
    RoundState.PREDICTING: _predicting,
    RoundState.SCORING: _scoring,
    RoundState.EVALUATING: _evaluating_selecting,
    RoundState.SELECTING: _evaluating_selecting,
}
assert set(DRIVE) == set(TRANSITIONS), "an active state the driver does not drive"


def round_advance_run(*, round_id: int) -> dict[str, Any]:
    """Look at the round's state and start (or re-start) what that state needs."""
    rnd = round_get(round_id)
    if not rnd.is_active:
        return {"state": rnd.state}
    cfg = round_config_parse(rnd.config)
    if rnd.started_at and (timezone.now() - rnd.started_at).total_seconds() > cfg.max_duration_s:
        round_fail(
            round_id=round_id,
            reason=f"time limit of {cfg.max_duration_s:.0f} s exceeded while {rnd.state}",
        )
        return {"state": "failed"}
    busy = DRIVE[rnd.state](rnd, cfg)
    if busy is not None:
        return busy
    return {"state": Round.objects.get(pk=round_id).state}
