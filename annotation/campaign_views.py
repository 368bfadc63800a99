"""The campaign's annotation pages: the overview map (assignments and verdicts over the blocks,
with the campaign's statistics and fetch runs) and the leads' agreement report."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from annotation.access import campaign_get_for_lead, campaign_overview_get_for_user
from annotation.models import AssignmentStatus, Verdict
from annotation.selectors import UNASSIGNED, campaign_agreement
from croplayer_site.roles import ADMIN, LEAD, has_role
from mapping.models import AdminUnit, Block, FetchRun, ImagerySource, OfficialStatistic
from mapping.selectors import campaign_block_extent, fetch_run_counts


@login_required
def campaign_overview(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, only_user = campaign_overview_get_for_user(user=request.user, slug=slug)
    stats = (
        OfficialStatistic.objects.filter(campaign=campaign)
        .select_related("province")
        .order_by("province__adcode")
    )
    runs = [
        {"run": run, **fetch_run_counts(run=run)}
        for run in FetchRun.objects.filter(campaign=campaign)
        .select_related("source")
        .order_by("-created_at")[:5]
    ]
    is_lead = has_role(request.user, LEAD, ADMIN)
    statuses = [(UNASSIGNED, _UNASSIGNED_LABEL), *AssignmentStatus.choices]
    sources = list(ImagerySource.objects.order_by("slug"))
    # The legend's numbers (the newest verdict per block and source: seconds for a national
    # campaign) are fetched by the page after it renders; the map does not need them to draw.
    campaign.n_blocks = (  # type: ignore[attr-defined]  # shown in the page's header
        Block.objects.filter(campaign=campaign).count()
    )
    context = {
        "campaign": campaign,
        "stats": stats,
        "runs": runs,
        "is_lead": is_lead,
        # The overview map's filters and legend: the names come from the models, translated.
        # Only the ids go through the campaign's blocks: DISTINCT over the units' rows made
        # the database sort every block's province polygon (29 s for a national campaign).
        "provinces": AdminUnit.objects.filter(
            pk__in=Block.objects.filter(campaign=campaign, province__isnull=False)
            .values("province_id")
            .distinct()
        )
        .only("adcode", "name_zh", "name_en")
        .order_by("adcode"),
        "sources": sources,
        "map_config": {
            "statuses": {v: str(label) for v, label in statuses if v != AssignmentStatus.REJECTED},
            "verdicts": {v: str(label) for v, label in Verdict.choices},
            # The whole campaign as vector tiles; the first view fits its blocks.
            "tiles": reverse("api-campaign-tiles", args=[campaign.slug, 0, 0, 0]).replace(
                "/0/0/0.pbf", "/{z}/{x}/{y}.pbf"
            ),
            "extent": campaign_block_extent(campaign=campaign),
            "counts_url": reverse("api-campaign-overview-counts", args=[campaign.slug]),
            "sources": [s.slug for s in sources],
            "workspace_url": reverse("block-workspace", args=[0]).replace("/0/", "/{id}/"),
        },
    }
    return render(request, "annotation/campaign_overview.html", context)


_UNASSIGNED_LABEL = _("Not assigned")


@login_required
def campaign_agreement_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Leads' table of double-annotated blocks: IoU and verdict agreement per block and
    source, with the campaign's totals (the same numbers as the agreement API)."""
    campaign = campaign_get_for_lead(user=request.user, slug=slug)
    data = campaign_agreement(campaign=campaign)
    return render(request, "annotation/agreement.html", {"campaign": campaign, "report": data})
