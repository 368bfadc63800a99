"""The fanned-out stages (predicting, scoring's features): their batch rows, queueing the
batches not done, running one batch, and moving on once the last batch is done.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from learning.models import BlockPrediction, Round, RoundBatch, RoundState
from learning.services.config import round_config_parse
from learning.services.round import dispatch
from learning.services.round.machine import RoundStopped, round_fail, round_get, stage_enter
from learning.services.round.predict import predict_items
from learning.services.round.progress import round_broadcast, round_timing_add
from learning.services.round.score import feature_items

log = logging.getLogger(__name__)


def batches_dispatch(rnd: Round, stage: str) -> int:
    """Queue the stage's batches not done yet; with none left, move on."""
    pending = list(
        RoundBatch.objects.filter(round=rnd, stage=stage, done_at=None)
        .order_by("index")
        .values_list("index", flat=True)
    )
    for index in pending:
        dispatch.round_batch_enqueue(rnd.pk, stage, index)
    if not pending:
        stage_complete(round_id=rnd.pk, stage=stage)
    return len(pending)


def batches_make(*, rnd: Round, stage: str, items: list[int], size: int, weight: int) -> int:
    """Create the stage's batch rows once; returns the total progress units."""
    if not RoundBatch.objects.filter(round=rnd, stage=stage).exists():
        try:
            with transaction.atomic():
                RoundBatch.objects.bulk_create(
                    [
                        RoundBatch(
                            round=rnd,
                            stage=stage,
                            index=i // size,
                            items=items[i : i + size],
                            weight=len(items[i : i + size]) * weight,
                        )
                        for i in range(0, len(items), size)
                    ]
                )
        except IntegrityError:
            pass  # another task made them
    return sum(RoundBatch.objects.filter(round=rnd, stage=stage).values_list("weight", flat=True))


def stage_complete(*, round_id: int, stage: str) -> None:
    """All batches of a stage are done: move on (once, whoever finishes last)."""
    rnd = round_get(round_id)
    if stage == RoundState.PREDICTING:
        pred_ids = list(
            BlockPrediction.objects.filter(round=rnd).order_by("pk").values_list("pk", flat=True)
        )
        if not pred_ids:
            round_fail(
                round_id=round_id,
                reason="no block of the target provinces has an "
                "image to predict on (fetch imagery first)",
            )
            return
        cfg = round_config_parse(rnd.config)
        total = batches_make(
            rnd=rnd, stage=RoundState.SCORING, items=pred_ids, size=cfg.batch_blocks * 2, weight=1
        )
        if stage_enter(
            round_id=round_id,
            from_state=RoundState.PREDICTING,
            total=total,
            message=f"computing features of {len(pred_ids)} predictions",
        ):
            dispatch.round_advance_enqueue(round_id)
    elif stage == RoundState.SCORING:
        dispatch.round_score_enqueue(round_id)


def round_batch_run(*, round_id: int, stage: str, index: int) -> dict[str, Any]:
    """Run one batch of a fanned-out stage; safe to deliver twice."""
    rnd = round_get(round_id)
    if rnd.state != stage:
        return {"skipped": rnd.state}
    batch = RoundBatch.objects.filter(round=rnd, stage=stage, index=index).first()
    if batch is None or batch.done_at is not None:
        return {"skipped": "done"}
    RoundBatch.objects.filter(pk=batch.pk).update(attempts=F("attempts") + 1)
    cfg = round_config_parse(rnd.config)
    t0 = time.monotonic()
    work = predict_items if stage == RoundState.PREDICTING else feature_items
    try:
        done = work(rnd=rnd, cfg=cfg, items=list(batch.items))
    except RoundStopped:
        return {"stopped": True}
    except Exception as e:
        # Not one bad image (those are skipped and logged): the model or the storage is broken,
        # and every other batch would fail the same way.
        log.exception("%s batch %s of round %s failed", stage, index, round_id)
        round_fail(round_id=round_id, reason=f"{stage} batch {index} failed: "
                   f"{type(e).__name__}: {e}")
        return {"failed": True}
    if RoundBatch.objects.filter(pk=batch.pk, done_at=None).update(done_at=timezone.now()):
        Round.objects.filter(pk=round_id, state=stage).update(
            stage_done=F("stage_done") + batch.weight, heartbeat_at=timezone.now()
        )
        round_timing_add(round_id=round_id, stage=stage, seconds=time.monotonic() - t0)
    round_broadcast(rnd=Round.objects.get(pk=round_id))
    if not RoundBatch.objects.filter(round_id=round_id, stage=stage, done_at=None).exists():
        stage_complete(round_id=round_id, stage=stage)
    return {"done": done}
