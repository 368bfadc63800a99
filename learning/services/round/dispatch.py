"""Queue the round's Celery tasks by name, so that services never import ``learning.tasks``.

``learning/tasks.py`` registers its tasks under these names. ``send_task`` routes by name through
``CELERY_TASK_ROUTES`` as ``.delay()`` does (``learning.gpu.*`` to the gpu queue, the rest to cpu).
"""

from __future__ import annotations

from typing import Any

from croplayer_site.celery import app
from learning.models import RoundState

ROUND_ADVANCE = "learning.cpu.round_advance"
ROUND_TRAIN = "learning.gpu.round_train"
ROUND_PREDICT_BATCH = "learning.gpu.round_predict_batch"
ROUND_FEATURES_BATCH = "learning.cpu.round_features_batch"
ROUND_SCORE = "learning.cpu.round_score"
ROUNDS_RECONCILE = "learning.cpu.rounds_reconcile"
ROUNDS_WATCH = "learning.cpu.rounds_watch"
DEMO_PLAY = "learning.cpu.demo_play"
OVERVIEW_SUMS = "learning.cpu.overview_sums"

# The task that runs one batch of each fanned-out stage.
BATCH_TASKS = {RoundState.PREDICTING: ROUND_PREDICT_BATCH, RoundState.SCORING: ROUND_FEATURES_BATCH}


def task_enqueue(name: str, *args: Any, countdown: float | None = None) -> None:
    """Queue the task registered as ``name`` with positional ``args``."""
    app.send_task(name, args=list(args), countdown=countdown)


def round_advance_enqueue(round_id: int) -> None:
    task_enqueue(ROUND_ADVANCE, round_id)


def round_train_enqueue(round_id: int) -> None:
    task_enqueue(ROUND_TRAIN, round_id)


def round_batch_enqueue(round_id: int, stage: str, index: int) -> None:
    task_enqueue(BATCH_TASKS[stage], round_id, index)


def round_score_enqueue(round_id: int) -> None:
    task_enqueue(ROUND_SCORE, round_id)


def rounds_watch_enqueue(*, countdown: float) -> None:
    task_enqueue(ROUNDS_WATCH, countdown=countdown)


def demo_play_enqueue(campaign_id: int, rounds: int) -> None:
    task_enqueue(DEMO_PLAY, campaign_id, rounds)


def overview_sums_enqueue(campaign_id: int) -> None:
    task_enqueue(OVERVIEW_SUMS, campaign_id)
