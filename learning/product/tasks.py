"""Celery tasks of the final product (cpu queue): integration runs and exports."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from croplayer_site.jobs import jobs_reconcile
from learning.product import dispatch
from learning.product.services.compare import comparison_execute
from learning.product.services.exports import product_export_run, product_exports_reconcile
from learning.product.services.integration import integration_run
from mapping.models import Campaign


@shared_task(name=dispatch.PRODUCT_EXPORT, acks_late=True)
def product_export_task(export_id: int) -> dict[str, Any]:
    export = product_export_run(export_id=export_id)
    return {"export": export.pk, "status": export.status}


@shared_task(name=dispatch.INTEGRATION_RUN, acks_late=True)
def integration_run_task(
    campaign_id: int, province_adcodes: list[int] | None = None
) -> dict[str, Any]:
    campaign = Campaign.objects.get(pk=campaign_id)
    return integration_run(campaign=campaign, province_adcodes=province_adcodes).as_dict()


@shared_task(name=dispatch.PRODUCT_JOBS_RECONCILE)
def product_jobs_reconcile() -> dict[str, dict[str, Any]]:
    """Periodic (beat): exports and comparisons whose worker went quiet are failed with the
    reason, queued ones whose message was lost are sent again (``croplayer_site.jobs``)."""
    return jobs_reconcile(names=["export", "compare"])


@shared_task(name=dispatch.PRODUCT_EXPORTS_RECONCILE)
def product_exports_reconcile_task() -> dict[str, list[int]]:
    """The exports' reconcile under its name of old (a beat of an earlier release may still
    send it); beat now sends ``product.jobs_reconcile``."""
    return product_exports_reconcile()


@shared_task(name=dispatch.COMPARISON_EXECUTE, acks_late=True)
def comparison_execute_task(comparison_id: int) -> dict[str, Any]:
    run = comparison_execute(comparison_id=comparison_id)
    return {"comparison": run.pk, "status": run.status}
