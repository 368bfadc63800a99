"""Pages of the learning app (dashboard, rounds, model registry) and the dashboard's exports.

The pages render their tables on the server from ``learning.dashboard``; the map, the charts and
the live progress panel are drawn by ``static/learning/*.js`` from the same numbers, handed over
as JSON in the page (``json_script``) or read from the DRF endpoints below. The exports (JSON
and CSV) are thin DRF views over the same selectors, so page, JSON and CSV cannot disagree.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import IntegrationDecision
from croplayer_site.liveness import workers_alive
from croplayer_site.roles import ADMIN, has_role
from learning.access import campaign_for, round_get_by_number, round_get_for_watcher
from learning.core.integration_decision import decision_canonical
from learning.dashboard import (
    CSV_COLUMNS,
    dashboard_data,
    province_rows,
    provinces_geojson,
    round_progress,
    worker_warning,
)
from learning.models import ModelVersion, ProvinceDecision, ProvinceStatus, Round
from learning.selectors import model_version_engine
from learning.services.config import ROUND_PRESETS
from learning.services.demo_player import demo_playable
from learning.services.round import dispatch

# --- pages ---------------------------------------------------------------------------------

ROUNDS_MESSAGES = {
    "choose_province": _("Choose at least one province."),
    "starting": _("Starting…"),
    "watch_running": _("Watch the running round"),
    "error": _("Error"),
    "bad_json": _("The advanced settings are not a JSON object"),
    "confirm_cancel": _("Cancel this round? Work done so far is kept, the round stops."),
    "cancelled": _("Cancelled."),
}

# The dashboard script's words, translated per request and handed over in the page.
DASHBOARD_MESSAGES = {
    "converged": _("converged"),
    "continue": _("continue"),
    "excluded": _("excluded"),
    "not_evaluated": _("not evaluated"),
    "no_value": _("no value"),
    "decision": _("Decision"),
    "correctness": _("Correctness"),
    "supplementary": _("Supplementary rounds"),
    "round": _("Round"),
    "threshold": _("Threshold"),
    "labelling_order": _("Labelling order"),
    "random_order": _("Random order (mean)"),
    "blocks": _("Labelled blocks"),
}


@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_for(user=request.user, slug=slug)
    data = dashboard_data(campaign=campaign)
    active = Round.objects.filter(campaign=campaign, state__in=_active_states()).first()
    return render(request, "learning/dashboard.html", {
        "campaign": campaign,
        "data": data,
        "rows": data["provinces"],
        "log": data["decision_log"][:200],
        "savings": data["savings"],
        "active_round": active,
        "messages_js": {k: str(v) for k, v in DASHBOARD_MESSAGES.items()},
    })


@login_required
@require_POST
def systematic_sample(request: HttpRequest, slug: str) -> HttpResponse:
    """A lead puts the systematic validation sample on the campaign (the paper's 0.5° grid)."""
    from learning.services import systematic_sample_create

    campaign = campaign_for(user=request.user, slug=slug)
    try:
        spacing = float(request.POST.get("spacing_deg") or 0.5)
        rows = systematic_sample_create(
            campaign=campaign, spacing_deg=spacing, user=request.user  # type: ignore[arg-type]
        )
    except ValueError as e:
        messages.error(request, _("No systematic sample: %(reason)s") % {"reason": e})
    else:
        messages.success(
            request,
            _("Systematic sample: %(n)d blocks, one every %(s)s°.")
            % {"n": len(rows), "s": spacing},
        )
    return redirect("learning-dashboard", slug=campaign.slug)


def _active_states() -> list[str]:
    from learning.models import ACTIVE_ROUND_STATES

    return [s.value for s in ACTIVE_ROUND_STATES]


@login_required
def rounds_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a round (admins), see the running one live, the recent ones, a round's log."""
    campaign = campaign_for(user=request.user, slug=slug)
    rounds = list(Round.objects.filter(campaign=campaign).order_by("-number")[:20])
    watch = None
    if request.GET.get("round") or request.GET.get("number"):
        # ?round=<id> (from the rounds list) or ?number=<n> (from the API's 409 answer).
        try:
            if request.GET.get("round"):
                watch = round_get_for_watcher(user=request.user, round_id=int(request.GET["round"]))
            else:
                watch = round_get_by_number(campaign=campaign, number=int(request.GET["number"]))
        except ValueError as e:
            raise Http404(_("no such round")) from e
        if watch.campaign_id != campaign.pk:
            raise Http404(_("no such round"))
    active = next((r for r in rounds if r.is_active), None)
    watch = watch or active or (rounds[0] if rounds else None)
    alive = workers_alive()
    done = set(
        ProvinceStatus.objects.filter(campaign=campaign)
        .exclude(decision=ProvinceDecision.CONTINUE)
        .values_list("province__adcode", flat=True)
    )
    provinces = [
        {"adcode": r["adcode"], "name_zh": r["name_zh"], "name_en": r["name_en"],
         "decision": r["decision"], "done": r["adcode"] in done}
        for r in province_rows(campaign=campaign)
    ]
    return render(request, "learning/rounds.html", {
        "campaign": campaign,
        "rounds": rounds,
        "watch": watch,
        "watch_progress": round_progress(rnd=watch, workers=alive) if watch else None,
        "active": active,
        # A round that waits with no live worker says so (croplayer_site/liveness.py).
        "worker_warning": worker_warning(alive) if active else "",
        "provinces": provinces,
        "is_admin": has_role(request.user, ADMIN),
        # The round engine's endpoints (learning/urls.py).
        "start_url": reverse("api-round-list", kwargs={"slug": campaign.slug}),
        "cancel_url": reverse(
            "api-round-cancel", kwargs={"slug": campaign.slug, "number": watch.number}
        ) if watch else "",
        "presets": ROUND_PRESETS,
        "demo_playable": not demo_playable(campaign=campaign),
        "messages_js": {k: str(v) for k, v in ROUNDS_MESSAGES.items()},
    })



@login_required
@require_POST
def demo_play_start(request: HttpRequest, slug: str) -> HttpResponse:
    """An admin plays the demo's interpreters for a few rounds (a worker task; the rounds it
    starts appear on this page as usual)."""
    campaign = campaign_for(user=request.user, slug=slug, admin=True)
    try:
        rounds = int(request.POST.get("rounds") or 3)
    except ValueError:
        rounds = 0
    reason = demo_playable(campaign=campaign)
    if not 1 <= rounds <= 20:
        reason = str(_("Rounds must be a number from 1 to 20."))
    if reason:
        messages.error(request, _("The demo cannot be played: %(reason)s") % {"reason": reason})
    else:
        dispatch.demo_play_enqueue(campaign.pk, rounds)
        messages.success(request, _("Playing the demo for %(n)d round(s): the interpreters' "
                                    "labels come first, then each round appears below.")
                         % {"n": rounds})
    return redirect("learning-rounds", slug=campaign.slug)


def _constant_label(v: ModelVersion) -> str:
    """The decision a constant integration model answers, in the user's language ('' if the
    model was learned)."""
    raw = (v.metrics or {}).get("constant")
    if not raw:
        return ""
    value = str(decision_canonical(str(raw)))
    return str(IntegrationDecision(value).label) if value in IntegrationDecision.values else value


@login_required
def models_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The model registry: every trained version with its metrics; admins mark one current."""
    campaign = campaign_for(user=request.user, slug=slug)
    versions = list(
        ModelVersion.objects.filter(campaign=campaign).select_related("round").order_by(
            "kind", "-created_at"
        )
    )
    rows = [
        {
            "v": v,
            "engine": model_version_engine(v),
            "metrics_json": json.dumps(v.metrics, indent=1, ensure_ascii=False),
            "config_json": json.dumps(v.config, indent=1, ensure_ascii=False),
            "overall": {k: m for k, m in (v.metrics or {}).items()
                        if isinstance(m, int | float) and not isinstance(m, bool)},
            "constant": _constant_label(v),
            "set_current_url": reverse(
                "api-model-version-set-current",
                kwargs={"slug": campaign.slug, "version_id": v.pk},
            ),
        }
        for v in versions
    ]
    return render(request, "learning/models.html", {
        "campaign": campaign,
        "versions": rows,
        "is_admin": has_role(request.user, ADMIN),
    })


# --- exports (DRF) ------------------------------------------------------------------------


def _csv_cell(value: Any) -> Any:
    """Numbers as they are; text that a spreadsheet would run as a formula gets a quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class ProvinceStatusCsvRenderer(BaseRenderer):
    """Province rows as CSV (one row per province, the columns of ``CSV_COLUMNS``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict[str, Any] | None = None) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if isinstance(data, dict):  # an error ({"detail": ...}) in CSV form
            writer.writerow(list(data))
            writer.writerow([_csv_cell(str(v)) for v in data.values()])
        else:
            writer.writerow(CSV_COLUMNS)
            for row in data:
                writer.writerow([_csv_cell(row.get(c)) for c in CSV_COLUMNS])
        return out.getvalue().encode("utf-8")


class CriterionSerializer(serializers.Serializer):
    outcome = serializers.CharField()
    reason = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)


class ProvinceRowSerializer(serializers.Serializer):
    adcode = serializers.IntegerField()
    name_zh = serializers.CharField()
    name_en = serializers.CharField()
    province = serializers.CharField(help_text="English name (as stop_status --json)")
    province_zh = serializers.CharField()
    round = serializers.IntegerField(allow_null=True, help_text="number of the latest round")
    evaluated = serializers.BooleanField(help_text="false: no round has evaluated it yet")
    decision = serializers.CharField(help_text="continue, converged or excluded")
    decision_label = serializers.CharField()
    reason = serializers.CharField()
    iou = serializers.FloatField(allow_null=True)
    iou_samples = serializers.IntegerField()
    iou_outcome = serializers.CharField()
    iou_reason = serializers.CharField()
    iou_min = serializers.FloatField()
    correctness = serializers.FloatField(allow_null=True)
    correctness_samples = serializers.IntegerField()
    correctness_outcome = serializers.CharField()
    correctness_reason = serializers.CharField()
    correctness_min = serializers.FloatField()
    area_mapbox_ha = serializers.FloatField(allow_null=True)
    area_google_ha = serializers.FloatField(allow_null=True)
    official_ha = serializers.FloatField(allow_null=True)
    official_status = serializers.CharField(allow_null=True)
    official_verified = serializers.BooleanField(allow_null=True)
    official_unverified = serializers.BooleanField()
    area_mapbox_pct = serializers.FloatField(allow_null=True, help_text="% of the official figure")
    area_google_pct = serializers.FloatField(allow_null=True, help_text="% of the official figure")
    area_ratio = serializers.FloatField(allow_null=True, help_text="better source / official")
    area_outcome = serializers.CharField()
    area_reason = serializers.CharField()
    area_ratio_min = serializers.FloatField()
    supplementary_rounds = serializers.IntegerField()
    max_supplementary_rounds = serializers.IntegerField()
    criteria = serializers.DictField(child=CriterionSerializer())
    iou_ci_low = serializers.FloatField(allow_null=True, help_text="95 % bootstrap over blocks")
    iou_ci_high = serializers.FloatField(allow_null=True)
    iou_blocks = serializers.IntegerField(allow_null=True, help_text="held-out blocks scored")
    correctness_ci_low = serializers.FloatField(allow_null=True, help_text="95 % Wilson")
    correctness_ci_high = serializers.FloatField(allow_null=True)
    area_scope = serializers.CharField(
        help_text="what the official figure counts: province, counties (covered) or none"
    )
    coverage_share = serializers.FloatField(
        allow_null=True, help_text="share of the province's area under the campaign's blocks"
    )
    area_counties = serializers.ListField(child=serializers.IntegerField())
    area_comparable = serializers.BooleanField()
    official_demo = serializers.BooleanField(help_text="the demo's own figure (status DEMO)")


class ProvinceStatusApi(APIView):
    """Each province's stop status with its numbers; ``?format=csv`` for a spreadsheet."""

    renderer_classes = [JSONRenderer, ProvinceStatusCsvRenderer]

    @extend_schema(
        responses={(200, "application/json"): ProvinceRowSerializer(many=True),
                   (200, "text/csv"): OpenApiTypes.STR},
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"], required=False)],
    )
    def get(self, request: Request, slug: str, format: str | None = None) -> Response:
        campaign = campaign_for(user=request.user, slug=slug)
        rows = province_rows(campaign=campaign)
        response = Response(rows)
        if request.accepted_renderer.format == "csv":
            response["Content-Disposition"] = (
                f'attachment; filename="{campaign.slug}-province-status.csv"'
            )
        return response


class DashboardApi(APIView):
    """Everything on the dashboard as JSON: rows, thresholds, history, decision log, savings."""

    class DashboardSerializer(serializers.Serializer):
        campaign = serializers.SlugField()
        thresholds = serializers.DictField(child=serializers.FloatField())
        counts = serializers.DictField(child=serializers.IntegerField())
        provinces = ProvinceRowSerializer(many=True)
        history = serializers.DictField(child=serializers.ListField(child=serializers.DictField()))
        decision_log = serializers.ListField(child=serializers.DictField())
        savings = serializers.DictField()

    @extend_schema(responses=DashboardSerializer)
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_for(user=request.user, slug=slug)
        data = dashboard_data(campaign=campaign)
        response = Response(data)
        response["Content-Disposition"] = f'inline; filename="{campaign.slug}-dashboard.json"'
        return response


class ProvincesGeoJsonApi(APIView):
    """The dashboard's province outlines, simplified for the browser (GeoJSON)."""

    class FilterSerializer(serializers.Serializer):
        tolerance = serializers.FloatField(
            required=False, default=0.02, min_value=0.001, max_value=0.5,
            help_text="simplification tolerance in degrees",
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses={(200, "application/geo+json"): OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_for(user=request.user, slug=slug)
        f = self.FilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        return Response(
            provinces_geojson(campaign=campaign, tolerance=f.validated_data["tolerance"])
        )


class RoundProgressApi(APIView):
    """A round's progress snapshot (what the websocket sends), for a page without websockets."""

    class ProgressSerializer(serializers.Serializer):
        job = serializers.CharField()
        round = serializers.IntegerField()
        number = serializers.IntegerField()
        state = serializers.CharField()
        state_label = serializers.CharField()
        active = serializers.BooleanField()
        final = serializers.BooleanField()
        stage_done = serializers.IntegerField()
        stage_total = serializers.IntegerField()
        percent = serializers.FloatField(help_text="of the current stage")
        stage_percent = serializers.FloatField()
        overall_percent = serializers.FloatField(
            help_text="stages weighted by their measured share of earlier rounds"
        )
        stage_weights = serializers.DictField(
            child=serializers.FloatField(), help_text="each stage's share of the overall bar"
        )
        workers = serializers.IntegerField(
            required=False, help_text="live Celery workers (active rounds only)"
        )
        worker_warning = serializers.CharField(
            help_text="why an active round cannot move (no live worker), else empty"
        )
        elapsed_s = serializers.FloatField(allow_null=True)
        eta_s = serializers.FloatField(allow_null=True, help_text="of the current stage")
        heartbeat_at = serializers.CharField(allow_null=True)
        log_tail = serializers.ListField(child=serializers.CharField())
        failure_reason = serializers.CharField()
        cancel_requested = serializers.BooleanField()

    @extend_schema(responses=ProgressSerializer)
    def get(self, request: Request, round_id: int) -> Response:
        rnd = round_get_for_watcher(user=request.user, round_id=round_id)
        return Response(round_progress(rnd=rnd))
