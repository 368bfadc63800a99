"""Comparison with existing products: the REST endpoints (upload, list, report) and the pages
(products and runs of a campaign, one run's report with plots and CSV downloads)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from croplayer_site.roles import ADMIN, LEAD, has_role
from learning.models import ModelKind, ModelVersion
from learning.product.access import comparison_get_for_user, lead_check
from learning.product.core.compare.plots import PLOTS
from learning.product.models import ProductComparison
from learning.product.services.compare import (
    ComparisonError,
    ProductImportError,
    comparison_folder,
    comparison_list,
    comparison_start,
    product_import,
    product_list,
)
from mapping.access import campaign_get_for_user
from mapping.models import ImagerySource, JobStatus

CSV_FILES = ("blocks", "provinces")


class ProductOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.SlugField()
    description = serializers.CharField()
    original_name = serializers.CharField()
    cropland_classes = serializers.JSONField()
    crs = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    dtype = serializers.CharField()
    resolution_x = serializers.FloatField()
    resolution_y = serializers.FloatField()
    bounds = serializers.ListField(child=serializers.FloatField())
    nodata = serializers.FloatField(allow_null=True)
    checksum = serializers.CharField()
    created_at = serializers.DateTimeField()


class ProductListApi(APIView):
    """Products of a campaign (anyone with a role); a lead or admin uploads one (multipart)."""

    parser_classes = [MultiPartParser, FormParser]

    class ProductInputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="GeoTIFF (any raster GDAL reads) with a CRS")
        name = serializers.SlugField(max_length=80)
        cropland_classes = serializers.CharField(
            max_length=500, help_text="values meaning cropland: 40, or 10,11, or 1-3"
        )
        description = serializers.CharField(max_length=300, required=False, default="")

    @extend_schema(responses=ProductOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_user(user=request.user, slug=slug)
        return Response(ProductOutputSerializer(product_list(campaign=campaign), many=True).data)

    @extend_schema(request=ProductInputSerializer, responses={201: ProductOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_user(user=request.user, slug=slug)
        lead_check(user=request.user, reason=_("only a lead or an admin imports products"))
        data = self.ProductInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            product = product_upload(request.user, campaign, data.validated_data)
        except ProductImportError as e:
            raise ValidationError({"file": [str(e)]}) from e
        return Response(ProductOutputSerializer(product).data, status=status.HTTP_201_CREATED)


def product_upload(user: Any, campaign: Any, data: dict[str, Any]) -> Any:
    """An uploaded product file into the campaign: the API and the comparisons page's form both
    come here. The upload becomes a real file (GDAL reads a path; an in-memory upload has none)
    that ``product_import`` opens only through the safe opener (mapping/geo/safe_open.py)."""
    upload = data["file"]
    tmp_dir = Path(settings.DATA_DIR) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(upload.name).suffix.lower()[:10] or ".tif"
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=suffix) as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        return product_import(
            campaign=campaign,
            name=data["name"],
            path=Path(tmp.name),
            cropland_classes=data["cropland_classes"],
            description=data.get("description", ""),
            original_name=upload.name,
            user=user,
        )


class ComparisonOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    product = serializers.CharField(source="product.name")
    final_map = serializers.JSONField()
    provinces = serializers.ListField(child=serializers.IntegerField())
    status = serializers.CharField()
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    failure_reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    results = serializers.JSONField(
        help_text="pixel IoU, block deviations, slope histograms, provinces (see the README)"
    )


class ComparisonStartInputSerializer(serializers.Serializer):
    product = serializers.IntegerField(help_text="the product's id")
    final = serializers.ChoiceField(
        choices=["integration", "predictions"],
        default="integration",
        help_text="the campaign's integrated final map, or one model's predictions",
    )
    model_version = serializers.IntegerField(required=False, allow_null=True, default=None)
    source = serializers.SlugField(required=False, allow_blank=True, default="")
    provinces = serializers.ListField(
        child=serializers.IntegerField(), required=False, default=list, help_text="adcodes"
    )


def _comparison_start(request: Any, campaign: Any, data: dict[str, Any]) -> ProductComparison:
    """The one way a request starts a comparison: leads and admins, checked inputs."""
    lead_check(user=request.user, reason=_("only a lead or an admin starts a comparison"))
    try:
        return comparison_start(
            campaign=campaign,
            product_id=data["product"],
            final=data["final"],
            model_version_id=data.get("model_version"),
            source=data.get("source") or None,
            province_adcodes=data.get("provinces") or None,
            user=request.user,
        )
    except ComparisonError as e:
        raise ValidationError({"detail": str(e)}) from e


class ComparisonListApi(APIView):
    @extend_schema(responses=ComparisonOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_user(user=request.user, slug=slug)
        runs = comparison_list(campaign=campaign)
        return Response(ComparisonOutputSerializer(runs, many=True).data)

    @extend_schema(
        request=ComparisonStartInputSerializer, responses={202: ComparisonOutputSerializer}
    )
    def post(self, request: Request, slug: str) -> Response:
        """Queue a comparison of a product with the final map (a worker runs it)."""
        campaign = campaign_get_for_user(user=request.user, slug=slug)
        data = ComparisonStartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = _comparison_start(request, campaign, data.validated_data)
        return Response(ComparisonOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class ComparisonDetailApi(APIView):
    @extend_schema(responses=ComparisonOutputSerializer)
    def get(self, request: Request, slug: str, comparison_id: int) -> Response:
        run = comparison_get_for_user(user=request.user, slug=slug, comparison_id=comparison_id)
        return Response(ComparisonOutputSerializer(run).data)


# --- pages -------------------------------------------------------------------------------------


@login_required
def comparison_index(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_for_user(user=request.user, slug=slug)
    return _index_render(request, campaign)


@login_required
@require_POST
def product_upload_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The comparisons page's upload form (leads and admins): the same checks and the same safe
    opener as the API; a refusal shows the page again with the reason (400), nothing stored."""
    campaign = campaign_get_for_user(user=request.user, slug=slug)
    lead_check(user=request.user, reason=_("only a lead or an admin imports products"))
    data = ProductListApi.ProductInputSerializer(
        data={**request.POST.dict(), **request.FILES.dict()}
    )
    if not data.is_valid():
        reason = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in data.errors.items())
        return _index_render(request, campaign, status=400, upload_error=reason)
    try:
        product = product_upload(request.user, campaign, data.validated_data)
    except ProductImportError as e:
        return _index_render(request, campaign, status=400, upload_error=str(e))
    messages.success(request, _("Product %(name)s imported.") % {"name": product.name})
    return redirect("comparison-index", slug=campaign.slug)


def _index_render(
    request: HttpRequest, campaign: Any, *, status: int = 200, upload_error: str = ""
) -> HttpResponse:
    context = {
        "campaign": campaign,
        "products": product_list(campaign=campaign),
        "runs": comparison_list(campaign=campaign),
        "is_lead": has_role(request.user, LEAD, ADMIN),
        "segmenters": ModelVersion.objects.filter(
            campaign=campaign, kind=ModelKind.SEGMENTER
        ).order_by("-is_current", "-pk"),
        "sources": ImagerySource.objects.filter(predictions__block__campaign=campaign)
        .distinct()
        .order_by("slug"),
        "upload_error": upload_error,
        "upload_values": request.POST if upload_error else {},
    }
    return render(request, "product/compare_index.html", context, status=status)


@login_required
@require_POST
def comparison_start_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The index page's form: queue a comparison, then back to the list (with the reason)."""
    campaign = campaign_get_for_user(user=request.user, slug=slug)
    data = ComparisonStartInputSerializer(data=request.POST)
    if not data.is_valid():
        messages.error(
            request, "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in data.errors.items())
        )
        return redirect("comparison-index", slug=campaign.slug)
    try:
        run = _comparison_start(request, campaign, data.validated_data)
    except ValidationError as e:
        detail = e.detail.get("detail") if isinstance(e.detail, dict) else e.detail
        messages.error(
            request, " ".join(map(str, detail if isinstance(detail, list) else [detail]))
        )
        return redirect("comparison-index", slug=campaign.slug)
    messages.success(request, _("Comparison #%(n)d queued.") % {"n": run.pk})
    return redirect("comparison-index", slug=campaign.slug)


def _run_or_404(request: HttpRequest, slug: str, comparison_id: int) -> ProductComparison:
    return comparison_get_for_user(user=request.user, slug=slug, comparison_id=comparison_id)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.1f} %"


@login_required
def comparison_report(request: HttpRequest, slug: str, comparison_id: int) -> HttpResponse:
    run = _run_or_404(request, slug, comparison_id)
    r = run.results or {}
    context = {
        "campaign": run.campaign,
        "run": run,
        "r": r,
        "done": run.status == JobStatus.DONE,
        "plots": PLOTS,
        "slope_tables": [("af", r.get("slope_af")), ("ed", r.get("slope_ed"))],
        "provinces": [
            {
                **p,
                "final_pct": _pct(p.get("final_vs_official")),
                "product_pct": _pct(p.get("product_vs_official")),
            }
            for p in r.get("provinces", [])
        ],
    }
    return render(request, "product/compare_report.html", context)


def _file(run: ProductComparison, name: str, content_type: str, *, download: bool) -> FileResponse:
    if run.status != JobStatus.DONE or not run.folder:
        raise Http404("the comparison has not finished")
    path = comparison_folder(run) / name
    if not path.is_file():
        raise Http404(f"{name} is missing")
    filename = f"comparison-{run.pk}-{name}"
    return FileResponse(
        path.open("rb"), content_type=content_type, as_attachment=download, filename=filename
    )


@login_required
def comparison_plot(request: HttpRequest, slug: str, comparison_id: int, plot: str) -> FileResponse:
    if plot not in PLOTS:
        raise Http404("no such plot")
    run = _run_or_404(request, slug, comparison_id)
    return _file(run, f"{plot}.png", "image/png", download=False)


@login_required
def comparison_csv(request: HttpRequest, slug: str, comparison_id: int, table: str) -> FileResponse:
    if table not in CSV_FILES:
        raise Http404("no such table")
    run = _run_or_404(request, slug, comparison_id)
    return _file(run, f"{table}.csv", "text/csv; charset=utf-8", download=True)
