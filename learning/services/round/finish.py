"""The end of a round that got through every stage: its models become current, then it is
done.
"""

from __future__ import annotations

import time

from django.db import DatabaseError
from django.utils import timezone

from annotation.tile_sums import overview_sums_prepare
from learning.models import ModelKind, ModelVersion, Round, RoundState
from learning.services.config import round_config_parse
from learning.services.registry import ModelVersionError, model_version_set_current
from learning.services.round.machine import round_fail, round_get, stage_next
from learning.services.round.progress import round_broadcast, round_log


def round_finish(*, round_id: int) -> None:
    rnd = round_get(round_id)
    if rnd.state != RoundState.SELECTING:
        return
    cfg = round_config_parse(rnd.config)
    # The round's models become current before the round says done, so whoever sees "done"
    # sees its models in use (marking is idempotent: a second delivery marks them again).
    if cfg.make_current:
        ids = [v for k, v in (rnd.checkpoint or {}).items() if k in ("iqa", "segmenter") and v]
        ids += list(
            ModelVersion.objects.filter(
                round=rnd, kind__in=(ModelKind.CORRECTNESS, ModelKind.INTEGRATION)
            ).values_list("pk", flat=True)
        )
        try:
            for mv in ModelVersion.objects.filter(pk__in=ids, round=rnd):
                model_version_set_current(model_version=mv)
        except ModelVersionError as e:
            round_fail(round_id=round_id, reason=f"the round's models cannot be used: {e}")
            return
        if (rnd.checkpoint or {}).get("segmenter"):
            _overview_sums_prepare(rnd)
    if not stage_next(
        round_id=round_id,
        from_state=RoundState.SELECTING,
        finished_at=timezone.now(),
        stage_done=rnd.stage_total,
    ):
        return
    rnd.refresh_from_db()
    total = (rnd.finished_at - rnd.started_at).total_seconds() if rnd.started_at else 0.0
    round_log(rnd=round_id, message=f"round {rnd.number} done in {total:.1f} s")
    round_broadcast(rnd=Round.objects.get(pk=round_id))


def _overview_sums_prepare(rnd: Round) -> None:
    """The overview map's low-zoom sums for the new segmenter, counted here in the worker so
    that no lead's tile request sums every prediction (1.2-2.9 s on a national campaign). Only
    a speed-up: if it fails, the first tile counts them as before and the round still ends."""
    t0 = time.monotonic()
    try:
        overview_sums_prepare(campaign=rnd.campaign)
    except DatabaseError as e:
        round_log(rnd=rnd.pk, message=f"overview map sums not counted ahead: {e}")
        return
    round_log(rnd=rnd.pk, message=f"overview map sums counted in {time.monotonic() - t0:.1f} s")
