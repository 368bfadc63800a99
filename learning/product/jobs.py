"""The product app's job kinds: exports and product comparisons (lead pages)."""

from __future__ import annotations

from croplayer_site.jobs import JobKind
from croplayer_site.roles import ADMIN, LEAD
from learning.product.models import ProductComparison, ProductExport
from mapping.jobs import campaign_job_visible

EXPORT = JobKind(name="export", model=ProductExport, visible=campaign_job_visible(LEAD, ADMIN))
COMPARE = JobKind(
    name="compare", model=ProductComparison, visible=campaign_job_visible(LEAD, ADMIN)
)
