"""Celery tasks of the mapping app: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from mapping.services.imagery import fetch_batch_run


@shared_task(name="mapping.fetch_batch", acks_late=True)
def fetch_batch(run_id: int, block_ids: list[int]) -> dict[str, int]:
    return fetch_batch_run(run_id=run_id, block_ids=block_ids)
