"""HTML pages for leads and admins: importing and exporting a campaign's samples, assigning
blocks. They call the same services as the REST API (``annotation.transfer``,
``annotation.services``), behind the same gate (``campaign_get_for_lead``)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import NotFound

from annotation.access import campaign_get_for_lead
from annotation.forms import AssignBlocksForm, SamplesCommitForm, SamplesUploadForm, SelfAssignForm
from annotation.models import Assignment, AssignmentStatus, Sample, SampleKind, SamplePolygon
from annotation.selectors import self_assign_allowed
from annotation.services.assigning import (
    blocks_share_out,
    blocks_unassigned_choose,
    campaign_self_assign_set,
)
from annotation.services.workflow import AssignmentRefused
from annotation.transfer import (
    MAX_UPLOAD_BYTES,
    FileRejected,
    ImportRefused,
    samples_import_commit,
    samples_import_preview,
    samples_import_preview_get,
)
from mapping.models import Block, Campaign

# Room for the multipart boundaries and the other form fields around the file (as the API).
MULTIPART_SLACK = 64 * 2**10


def _campaign(request: HttpRequest, slug: str) -> Campaign:
    """The gate: 404 without a role (or no such campaign), 403 for annotators."""
    return campaign_get_for_lead(user=request.user, slug=slug)


# --- Samples: import and export ----------------------------------------------------------------


def _samples_render(
    request: HttpRequest,
    campaign: Campaign,
    form: SamplesUploadForm,
    *,
    status: int = 200,
    error: str = "",
) -> HttpResponse:
    context = {
        "campaign": campaign,
        "form": form,
        "error": error,
        "n_polygons": SamplePolygon.objects.filter(sample__block__campaign=campaign).count(),
        "n_samples": Sample.objects.filter(block__campaign=campaign).count(),
    }
    return render(request, "annotation/samples.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def samples_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Upload a file for an import preview; links to export the samples."""
    campaign = _campaign(request, slug)
    if request.method == "GET":
        return _samples_render(request, campaign, SamplesUploadForm())
    # Refused before Django parses the body, so that an oversized upload is never spooled.
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + MULTIPART_SLACK:
        reason = _("The file is larger than %(mb)s MB.") % {"mb": MAX_UPLOAD_BYTES // 2**20}
        return _samples_render(request, campaign, SamplesUploadForm(), status=400, error=reason)
    form = SamplesUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _samples_render(request, campaign, form, status=400)
    upload = form.cleaned_data["file"]
    try:
        preview = samples_import_preview(
            user=request.user,
            campaign=campaign,
            source=form.cleaned_data["source"],
            file=upload,
            filename=upload.name or "",
        )
    except FileRejected as e:
        form.add_error("file", e.reason)
        return _samples_render(request, campaign, form, status=400)
    return redirect("samples-import-preview", slug=campaign.slug, import_id=preview["import_id"])


def _preview_rows(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The preview's rows (block, source, polygons, area) with what is there already: an import
    adds polygons to a block's sample; it never deletes or replaces any."""
    ids = {b["block_id"] for b in blocks}
    places = {
        b.pk: b for b in Block.objects.filter(pk__in=ids).select_related("province", "county")
    }
    existing = {
        (s["block_id"], s["source__slug"]): s
        for s in Sample.objects.filter(block_id__in=ids)
        .values("block_id", "source__slug", "kind")
        .annotate(n=Count("polygons"))
    }
    rows = []
    for b in blocks:
        there = existing.get((b["block_id"], b["source"]))
        place = places.get(b["block_id"])
        rows.append(
            {
                **b,
                "province": place.province.name_zh if place and place.province else "",
                "county": place.county.name_zh if place and place.county else "",
                "existing_polygons": there["n"] if there else 0,
                "sample": "new"
                if there is None
                else ("negative" if there["kind"] == SampleKind.NEGATIVE else "positive"),
            }
        )
    return rows


def _preview_render(
    request: HttpRequest,
    campaign: Campaign,
    preview: dict[str, Any],
    *,
    status: int = 200,
    error: str = "",
) -> HttpResponse:
    context = {
        "campaign": campaign,
        "preview": preview,
        "rows": _preview_rows(preview["blocks"]),
        "n_blocks": len({b["block_id"] for b in preview["blocks"]}),
        "form": SamplesCommitForm(),
        "error": error,
        "expires": datetime.fromisoformat(preview["expires_at"]),
    }
    return render(request, "annotation/samples_preview.html", context, status=status)


@login_required
def samples_import_preview_page(
    request: HttpRequest, slug: str, import_id: uuid.UUID
) -> HttpResponse:
    campaign = _campaign(request, slug)
    try:
        preview = samples_import_preview_get(
            user=request.user, campaign=campaign, import_id=import_id
        )
    except NotFound as e:
        return _samples_render(
            request, campaign, SamplesUploadForm(), status=404, error=str(e.detail)
        )
    return _preview_render(request, campaign, preview)


@login_required
@require_POST
def samples_import_commit_page(
    request: HttpRequest, slug: str, import_id: uuid.UUID
) -> HttpResponse:
    """Write the previewed import (all or nothing) and show what was written."""
    campaign = _campaign(request, slug)
    form = SamplesCommitForm(request.POST)
    form.is_valid()  # one optional checkbox: always valid
    try:
        result = samples_import_commit(
            user=request.user,
            campaign=campaign,
            import_id=import_id,
            skip_rejected=form.cleaned_data.get("skip_rejected", False),
        )
    except NotFound as e:
        return _samples_render(
            request, campaign, SamplesUploadForm(), status=404, error=str(e.detail)
        )
    except (ImportRefused, FileRejected) as e:
        # Nothing was written; the preview stays so the lead can decide (or upload again).
        try:
            preview = samples_import_preview_get(
                user=request.user, campaign=campaign, import_id=import_id
            )
        except NotFound:
            return _samples_render(
                request, campaign, SamplesUploadForm(), status=400, error=e.reason
            )
        return _preview_render(request, campaign, preview, status=400, error=e.reason)
    context = {"campaign": campaign, "result": result, "rows": _preview_rows(result["blocks"])}
    return render(request, "annotation/samples_result.html", context)


# --- Assign blocks -------------------------------------------------------------------------------

STATUS_COLUMNS = [
    AssignmentStatus.TODO,
    AssignmentStatus.IN_PROGRESS,
    AssignmentStatus.SUBMITTED,
    AssignmentStatus.ACCEPTED,
]


def _people_counts(campaign: Campaign) -> list[dict[str, Any]]:
    """Per person: their assignments in the campaign by status, and how many are agreement."""
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"statuses": dict.fromkeys(STATUS_COLUMNS, 0), "agreement": 0, "total": 0}
    )
    rows = (
        Assignment.objects.filter(block__campaign=campaign)
        .values("user__username", "status", "agreement")
        .annotate(n=Count("pk"))
    )
    for r in rows:
        p = per[r["user__username"]]
        p["statuses"][r["status"]] = p["statuses"].get(r["status"], 0) + r["n"]
        p["total"] += r["n"]
        if r["agreement"]:
            p["agreement"] += r["n"]
    return [
        {"user": name, "counts": [p["statuses"][s] for s in STATUS_COLUMNS], **p}
        for name, p in sorted(per.items())
    ]


def _provinces(campaign: Campaign) -> list[dict[str, Any]]:
    """The campaign's provinces with their number of blocks nobody was given yet."""
    rows = (
        Block.objects.filter(campaign=campaign, province__isnull=False)
        .exclude(Exists(Assignment.objects.filter(block=OuterRef("pk"))))
        .values("province__adcode", "province__name_zh", "province__name_en")
        .annotate(n=Count("pk"))
        .order_by("province__adcode")
    )
    return [
        {
            "adcode": r["province__adcode"],
            "label": f"{r['province__name_zh']} · {r['province__name_en']} ({r['n']})",
        }
        for r in rows
    ]


def _assign_render(
    request: HttpRequest,
    campaign: Campaign,
    form: AssignBlocksForm,
    *,
    status: int = 200,
) -> HttpResponse:
    unassigned = (
        Block.objects.filter(campaign=campaign)
        .exclude(Exists(Assignment.objects.filter(block=OuterRef("pk"))))
        .count()
    )
    self_assign = self_assign_allowed(campaign=campaign)
    context = {
        "campaign": campaign,
        "form": form,
        "people": _people_counts(campaign),
        "status_columns": [AssignmentStatus(s).label for s in STATUS_COLUMNS],
        "unassigned": unassigned,
        "self_assign": self_assign,
        "self_assign_form": SelfAssignForm(initial={"self_assign": self_assign}),
    }
    return render(request, "annotation/assign.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def assign_blocks_page(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = _campaign(request, slug)
    provinces = _provinces(campaign)
    if request.method == "GET":
        return _assign_render(
            request, campaign, AssignBlocksForm(campaign=campaign, provinces=provinces)
        )
    form = AssignBlocksForm(request.POST, campaign=campaign, provinces=provinces)
    if not form.is_valid():
        return _assign_render(request, campaign, form, status=400)
    data = form.cleaned_data
    block_ids = data["blocks"]
    if not block_ids:
        block_ids = blocks_unassigned_choose(
            campaign=campaign, count=data["count"], province_adcode=data["province"]
        )
        if not block_ids:
            form.add_error("count", _("No block is left that nobody was given."))
            return _assign_render(request, campaign, form, status=400)
    try:
        done = blocks_share_out(
            lead=request.user,
            campaign=campaign,
            block_ids=block_ids,
            assignees=list(data["users"]),
            priority=data["priority"],
            second=data["second"],
            second_percent=data["second_percent"] if data["second"] else None,
        )
    except (ValueError, AssignmentRefused) as e:
        form.add_error(None, str(e.reason if isinstance(e, AssignmentRefused) else e))
        return _assign_render(request, campaign, form, status=400)
    made = done.created + done.agreement
    messages.success(
        request,
        _(
            "%(created)s assignment(s) created, %(agreement)s of them for agreement; "
            "%(skipped)s already assigned (left as they were)."
        )
        % {
            "created": len(made),
            "agreement": sum(a.agreement for a in made),
            "skipped": done.skipped,
        },
    )
    return redirect("assign-blocks", slug=campaign.slug)


@login_required
@require_POST
def self_assign_page(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = _campaign(request, slug)
    form = SelfAssignForm(request.POST)
    form.is_valid()  # one optional checkbox: always valid
    allowed = form.cleaned_data.get("self_assign", False)
    campaign_self_assign_set(campaign=campaign, allowed=allowed)
    messages.success(
        request,
        _("Annotators may now claim blocks themselves.")
        if allowed
        else _("Annotators can no longer claim blocks themselves."),
    )
    return redirect("assign-blocks", slug=campaign.slug)
