"""Celery tasks of learning rounds: thin wrappers over ``learning.services.round``.

Model work (training, prediction) is named ``learning.gpu.*`` and routed to the ``gpu`` queue;
features, scoring (XGBoost runs on CPU) and the round driver go to ``cpu``. Every task takes
ids, re-reads the round and is safe to run twice (``acks_late``: a message whose worker died is
delivered again, and the reconciler re-queues what a dead worker left). The services queue
these tasks by name (``learning.services.round.dispatch``), never by importing this module.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from annotation.tile_sums import overview_sums_prepare
from croplayer_site.jobs import jobs_reconcile
from learning.models import RoundState
from learning.services.demo_player import demo_play
from learning.services.round import dispatch
from learning.services.round.batches import round_batch_run
from learning.services.round.driver import round_advance_run
from learning.services.round.score import round_score_run
from learning.services.round.train import round_train_run
from mapping.models import Campaign


@shared_task(name=dispatch.ROUND_ADVANCE, acks_late=True)
def round_advance(round_id: int) -> dict[str, Any]:
    return round_advance_run(round_id=round_id)


@shared_task(name=dispatch.ROUND_TRAIN, acks_late=True)
def round_train(round_id: int) -> dict[str, Any]:
    return round_train_run(round_id=round_id)


@shared_task(name=dispatch.ROUND_PREDICT_BATCH, acks_late=True)
def round_predict_batch(round_id: int, index: int) -> dict[str, Any]:
    return round_batch_run(round_id=round_id, stage=RoundState.PREDICTING, index=index)


@shared_task(name=dispatch.ROUND_FEATURES_BATCH, acks_late=True)
def round_features_batch(round_id: int, index: int) -> dict[str, Any]:
    return round_batch_run(round_id=round_id, stage=RoundState.SCORING, index=index)


@shared_task(name=dispatch.ROUND_SCORE, acks_late=True)
def round_score(round_id: int) -> dict[str, Any]:
    return round_score_run(round_id=round_id)


@shared_task(name=dispatch.ROUNDS_RECONCILE, acks_late=True)
def rounds_reconcile() -> dict[str, Any]:
    """Periodic (beat) check: resume rounds whose worker went quiet, fail overdue ones."""
    return jobs_reconcile(names=["round"])["round"]


@shared_task(name=dispatch.ROUNDS_WATCH, acks_late=True)
def rounds_watch() -> dict[str, Any]:
    """The reconciler that keeps itself going while a round is active, so a deployment without
    celery beat (the demo) still resumes rounds; started with each round and each worker."""
    out = jobs_reconcile(names=["round"])["round"]
    if out["active"] and out["next_check_s"]:
        rounds_watch.apply_async(countdown=out["next_check_s"])
    return out


@worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    # A worker that (re)starts looks for rounds a dead worker left behind.
    rounds_watch.apply_async(countdown=1)


@shared_task(name=dispatch.DEMO_PLAY, acks_late=False)
def demo_play_task(campaign_id: int, rounds: int) -> dict[str, Any]:
    """The admin's "play the demo" button: the interpreters played from the ground truth for
    ``rounds`` rounds (``learning.services.demo_player``). Not acked late: a redelivery after a
    worker death would start the play over. Needs a second worker process (``make demo`` runs
    two) for the rounds it starts and waits for."""
    logger = logging.getLogger("learning.demo_play")
    report = demo_play(campaign=Campaign.objects.get(pk=campaign_id), rounds=rounds,
                       say=logger.info)
    return report.as_dict()


@shared_task(name=dispatch.OVERVIEW_SUMS, acks_late=True)
def overview_sums(campaign_id: int) -> bool:
    """The overview map's low-zoom sums for the campaign's current segmenter, counted ahead
    (a segmenter made current through the registry API); False without one, or without the
    campaign. Safe twice: the second counts the same sums."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    return campaign is not None and overview_sums_prepare(campaign=campaign)
