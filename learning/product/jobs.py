"""The product app's job kinds: exports and product comparisons (lead pages).

Both are reconciled (``product_jobs_reconcile``, from beat): a queued job whose message was lost
is sent again, a running one whose worker went quiet is failed with the reason (an export's
staging folder removed too).
"""

from __future__ import annotations

from typing import Any

from croplayer_site.jobs import JobKind
from croplayer_site.roles import ADMIN, LEAD
from learning.product import dispatch
from learning.product.models import ProductComparison, ProductExport
from learning.product.services.compare import STALE_AFTER_S as COMPARE_STALE_AFTER_S
from learning.product.services.exports import STALE_AFTER_S, product_export_stale
from mapping.jobs import campaign_job_visible


def _export_event(row: Any) -> dict[str, Any]:
    return {
        "stage": row.stage,
        "done": row.done,
        "total": row.total,
        "failure_reason": row.failure_reason,
    }


def _compare_event(row: Any) -> dict[str, Any]:
    return {"done": row.done, "total": row.total, "failure_reason": row.failure_reason}



EXPORT = JobKind(
    name="export",
    model=ProductExport,
    visible=campaign_job_visible(LEAD, ADMIN),
    event=_export_event,
    stale_after_s=STALE_AFTER_S,
    stale_reason="start the export again",
    on_stale=product_export_stale,
    requeue=dispatch.product_export_enqueue,
)
COMPARE = JobKind(
    name="compare",
    model=ProductComparison,
    visible=campaign_job_visible(LEAD, ADMIN),
    event=_compare_event,
    stale_after_s=COMPARE_STALE_AFTER_S,
    stale_reason="start the comparison again",
    requeue=dispatch.comparison_execute_enqueue,
)
