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
