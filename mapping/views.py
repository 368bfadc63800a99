"""HTML pages of the mapping app: campaign overview map and block viewer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import NotFound

from mapping.models import FetchRun, ImagerySource, OfficialStatistic
from mapping.selectors import block_get_for_user, campaign_get_for_user, fetch_run_counts


@login_required
def campaign_overview(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        campaign = campaign_get_for_user(user=request.user, slug=slug)
    except NotFound as e:
        raise Http404(str(e)) from e
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
    context = {"campaign": campaign, "stats": stats, "runs": runs}
    return render(request, "mapping/campaign_overview.html", context)


@login_required
def block_view(request: HttpRequest, block_id: int) -> HttpResponse:
    try:
        block = block_get_for_user(user=request.user, block_id=block_id)
    except NotFound as e:
        raise Http404(str(e)) from e
    sources = ImagerySource.objects.filter(images__block=block, images__status="ok").distinct()
    return render(request, "mapping/block.html", {"blk": block, "sources": sources})
