"""Celery tasks of learning rounds: thin wrappers over ``learning.services.pipeline``.

Model work (training, prediction) is named ``learning.gpu.*`` and routed to the ``gpu`` queue;
features, scoring (XGBoost runs on CPU) and the round driver go to ``cpu``. Every task takes
ids, re-reads the round and is safe to run twice (``acks_late``: a message whose worker died is
delivered again, and the reconciler re-queues what a dead worker left).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from learning.models import RoundState


@shared_task(name="learning.cpu.round_advance", acks_late=True)
def round_advance(round_id: int) -> dict[str, Any]:
    from learning.services.pipeline import round_advance_run

    return round_advance_run(round_id=round_id)


@shared_task(name="learning.gpu.round_train", acks_late=True)
def round_train(round_id: int) -> dict[str, Any]:
    from learning.services.pipeline import round_train_run

    return round_train_run(round_id=round_id)


@shared_task(name="learning.gpu.round_predict_batch", acks_late=True)
def round_predict_batch(round_id: int, index: int) -> dict[str, Any]:
    from learning.services.pipeline import round_batch_run

    return round_batch_run(round_id=round_id, stage=RoundState.PREDICTING, index=index)


@shared_task(name="learning.cpu.round_features_batch", acks_late=True)
def round_features_batch(round_id: int, index: int) -> dict[str, Any]:
    from learning.services.pipeline import round_batch_run

    return round_batch_run(round_id=round_id, stage=RoundState.SCORING, index=index)


@shared_task(name="learning.cpu.round_score", acks_late=True)
def round_score(round_id: int) -> dict[str, Any]:
    from learning.services.pipeline import round_score_run

    return round_score_run(round_id=round_id)


@shared_task(name="learning.cpu.rounds_reconcile", acks_late=True)
def rounds_reconcile() -> dict[str, Any]:
    """Periodic (beat) check: resume rounds whose worker went quiet, fail overdue ones."""
    from learning.services.pipeline import rounds_reconcile_run

    return rounds_reconcile_run()


@shared_task(name="learning.cpu.rounds_watch", acks_late=True)
def rounds_watch() -> dict[str, Any]:
    """The reconciler that keeps itself going while a round is active, so a deployment without
    celery beat (the demo) still resumes rounds; started with each round and each worker."""
    from learning.services.pipeline import rounds_reconcile_run

    out = rounds_reconcile_run()
    if out["active"] and out["next_check_s"]:
        rounds_watch.apply_async(countdown=out["next_check_s"])
    return out


@worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    # A worker that (re)starts looks for rounds a dead worker left behind.
    rounds_watch.apply_async(countdown=1)


@shared_task(name="learning.cpu.demo_play", acks_late=False)
def demo_play_task(campaign_id: int, rounds: int) -> dict[str, Any]:
    """The admin's "play the demo" button: the interpreters played from the ground truth for
    ``rounds`` rounds (``learning.services.demo_player``). Not acked late: a redelivery after a
    worker death would start the play over. Needs a second worker process (``make demo`` runs
    two) for the rounds it starts and waits for."""
    import logging

    from learning.services.demo_player import demo_play
    from mapping.models import Campaign

    logger = logging.getLogger("learning.demo_play")
    report = demo_play(campaign=Campaign.objects.get(pk=campaign_id), rounds=rounds,
                       say=logger.info)
    return report.as_dict()
