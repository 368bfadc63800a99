"""Queue the product app's Celery tasks by name, so that its services never import
``learning.product.tasks`` (which imports them): the cycle services -> tasks -> services is
gone, as ``learning.services.round.dispatch`` did for rounds (whose ``task_enqueue`` this
uses: ``send_task`` routes by name through ``CELERY_TASK_ROUTES`` as ``.delay()`` does). The
names predate the product app (its code lived in ``mapping``); a queued message keeps working
across the move.
"""

from __future__ import annotations

from learning.services.round.dispatch import task_enqueue

PRODUCT_EXPORT = "mapping.product_export"
INTEGRATION_RUN = "mapping.integration_run"
PRODUCT_EXPORTS_RECONCILE = "mapping.product_exports_reconcile"
COMPARISON_EXECUTE = "mapping.comparison_execute"
PRODUCT_JOBS_RECONCILE = "product.jobs_reconcile"


def product_export_enqueue(export_id: int) -> None:
    task_enqueue(PRODUCT_EXPORT, export_id)


def comparison_execute_enqueue(comparison_id: int) -> None:
    task_enqueue(COMPARISON_EXECUTE, comparison_id)


def integration_run_enqueue(campaign_id: int, province_adcodes: list[int] | None) -> None:
    task_enqueue(INTEGRATION_RUN, campaign_id, province_adcodes)
