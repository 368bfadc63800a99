"""Integration review and product exports: thin API views and pages over the services.

Who may do what: any role sees the decisions, the exports and downloads them (the campaign's
blocks are not secret); leads and admins run the integration, override decisions and start
exports (the gates are in ``learning.product.access``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models import IntegrationDecision
from croplayer_site.roles import ADMIN, LEAD, has_role
from learning.product import dispatch
from learning.product.access import campaign_get_for_lead, export_get_for_user, lead_check
from learning.product.models import BlockIntegration, ExportKind, ProductExport
from learning.product.services.exports import ProductExportError, product_export_start
from learning.product.services.integration import (
    IntegrationError,
    converged_blocks,
    integration_model_current,
    integration_override,
    segmenter_current,
)
from mapping.access import block_get_for_user, campaign_get_for_user
from mapping.models import AdminLevel, AdminUnit, JobStatus

MAX_FEATURES = 20000


def integration_data(row: BlockIntegration) -> dict[str, Any]:
    blk = row.block
    return {
        "block": blk.pk,
        "code": blk.code,
        "decision": row.decision,
        "source": row.source,
        "probability": row.probability,
        "model_decision": row.model_decision,
        "model_probability": row.model_probability,
        "probabilities": row.probabilities,
        "model_version": row.model_version.name if row.model_version else "",
        "overridden_by": row.overridden_by.get_username() if row.overridden_by else "",
        "overridden_at": row.overridden_at,
        "province": blk.province.adcode if blk.province else None,
        "county": blk.county.name_zh if blk.county else "",
    }


class IntegrationOutputSerializer(serializers.Serializer):
    block = serializers.IntegerField()
    code = serializers.CharField()
    decision = serializers.CharField(help_text="neither, only_mapbox, only_google or merge_both")
    source = serializers.CharField(help_text="model or lead")
    probability = serializers.FloatField(
        allow_null=True, help_text="The model's probability of this decision"
    )
    model_decision = serializers.CharField(allow_blank=True)
    model_probability = serializers.FloatField(allow_null=True)
    probabilities = serializers.DictField(child=serializers.FloatField())
    model_version = serializers.CharField(allow_blank=True)
    overridden_by = serializers.CharField(allow_blank=True)
    overridden_at = serializers.DateTimeField(allow_null=True)
    province = serializers.IntegerField(allow_null=True)
    county = serializers.CharField(allow_blank=True)


class IntegrationBlocksGeoJsonApi(APIView):
    """Decided blocks of converged provinces as GeoJSON, for the review map."""

    class IntegrationFilterSerializer(serializers.Serializer):
        province = serializers.IntegerField(required=False, help_text="province adcode")

    class IntegrationGeoJsonOutputSerializer(serializers.Serializer):
        type = serializers.CharField()
        features = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        parameters=[IntegrationFilterSerializer], responses=IntegrationGeoJsonOutputSerializer
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_user(user=request.user, slug=slug)
        f = self.IntegrationFilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        blocks = converged_blocks(
            campaign=campaign,
            province_adcodes=[f.validated_data["province"]]
            if "province" in f.validated_data
            else None,
        )
        rows = (
            BlockIntegration.objects.filter(block__in=blocks)
            .select_related(
                "block", "block__province", "block__county", "model_version", "overridden_by"
            )
            .order_by("block__row", "block__col")[:MAX_FEATURES]
        )
        features = []
        for row in rows:
            w, s, e, n = row.block.geometry.extent
            features.append(
                {
                    "type": "Feature",
                    "id": row.block.pk,
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
                    },
                    "properties": IntegrationOutputSerializer(integration_data(row)).data,
                }
            )
        return Response({"type": "FeatureCollection", "features": features})


class IntegrationRunApi(APIView):
    class IntegrationRunInputSerializer(serializers.Serializer):
        provinces = serializers.ListField(
            child=serializers.IntegerField(),
            required=False,
            help_text="Province adcodes (default: all converged)",
        )

    class IntegrationRunOutputSerializer(serializers.Serializer):
        queued = serializers.BooleanField()
        blocks = serializers.IntegerField()

    @extend_schema(
        request=IntegrationRunInputSerializer, responses={202: IntegrationRunOutputSerializer}
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_lead(user=request.user, slug=slug)
        s = self.IntegrationRunInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        provinces = s.validated_data.get("provinces") or None
        try:
            integration_model_current(campaign=campaign)
            segmenter_current(campaign=campaign)
        except IntegrationError as e:
            raise ValidationError({"detail": str(e)}) from e
        n = converged_blocks(campaign=campaign, province_adcodes=provinces).count()
        if n == 0:
            raise ValidationError({"detail": "no blocks in converged provinces"})
        transaction.on_commit(lambda: dispatch.integration_run_enqueue(campaign.pk, provinces))
        return Response({"queued": True, "blocks": n}, status=status.HTTP_202_ACCEPTED)


class BlockIntegrationApi(APIView):
    class IntegrationDecisionInputSerializer(serializers.Serializer):
        # A CharField checked by hand: a second "decision" enum in the schema would collide.
        decision = serializers.CharField(
            help_text="neither, only_mapbox, only_google or merge_both"
        )

        def validate_decision(self, value: str) -> str:
            if value not in IntegrationDecision.values:
                raise serializers.ValidationError(
                    f"unknown decision {value!r}; expected one of "
                    f"{', '.join(IntegrationDecision.values)}"
                )
            return value

    def _row(self, request: Request, block_id: int) -> tuple[Any, BlockIntegration | None]:
        block = block_get_for_user(user=request.user, block_id=block_id)
        return block, BlockIntegration.objects.filter(block=block).select_related(
            "block__province", "block__county", "model_version", "overridden_by"
        ).first()

    @extend_schema(responses=IntegrationOutputSerializer)
    def get(self, request: Request, block_id: int) -> Response:
        _block, row = self._row(request, block_id)
        if row is None:
            raise NotFound("the block has no integration decision yet")
        return Response(IntegrationOutputSerializer(integration_data(row)).data)

    @extend_schema(
        request=IntegrationDecisionInputSerializer, responses=IntegrationOutputSerializer
    )
    def post(self, request: Request, block_id: int) -> Response:
        """A lead's decision: in force for the final map and an integration training label."""
        block, _row = self._row(request, block_id)
        lead_check(
            user=request.user,
            reason="only leads and admins decide integrations and start exports",
        )
        s = self.IntegrationDecisionInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            row = integration_override(
                user=request.user, block=block, decision=s.validated_data["decision"]
            )
        except IntegrationError as e:
            raise ValidationError({"decision": str(e)}) from e
        return Response(IntegrationOutputSerializer(integration_data(row)).data)


def export_data(export: ProductExport) -> dict[str, Any]:
    return {
        "id": export.pk,
        "kind": export.kind,
        "province": export.province.adcode if export.province else None,
        "status": export.status,
        "stage": export.stage,
        "done": export.done,
        "total": export.total,
        "failure_reason": export.failure_reason,
        "created_at": export.created_at,
        "finished_at": export.finished_at,
        "heartbeat_at": export.heartbeat_at,
        "summary": export.summary,
        "files": [
            {
                "name": name,
                "bytes": meta.get("bytes", 0),
                "sha256": meta.get("sha256", ""),
                "url": reverse("product-export-file", args=[export.pk, name]),
            }
            for name, meta in sorted(export.files.items())
        ]
        if export.status == JobStatus.DONE
        else [],
        "progress_ws": f"/ws/jobs/export-{export.pk}/",
    }


class ExportFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    url = serializers.CharField(help_text="Authenticated download")


class ExportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="province or national_af")
    province = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(help_text="queued, running, done, failed or cancelled")
    stage = serializers.CharField(allow_blank=True)
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    failure_reason = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    summary = serializers.DictField()
    files = ExportFileSerializer(many=True)
    progress_ws = serializers.CharField(help_text="Websocket path with job.progress events")


class CampaignExportsApi(APIView):
    class ExportCreateInputSerializer(serializers.Serializer):
        kind = serializers.CharField(help_text="province or national_af")

        def validate_kind(self, value: str) -> str:
            if value not in ExportKind.values:
                raise serializers.ValidationError(
                    f"unknown export kind {value!r}; expected one of {', '.join(ExportKind.values)}"
                )
            return value

        province = serializers.IntegerField(required=False, help_text="province adcode")

    @extend_schema(responses=ExportOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_user(user=request.user, slug=slug)
        rows = ProductExport.objects.filter(campaign=campaign).select_related("province")[:200]
        return Response(ExportOutputSerializer([export_data(r) for r in rows], many=True).data)

    @extend_schema(request=ExportCreateInputSerializer, responses={201: ExportOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_lead(user=request.user, slug=slug)
        s = self.ExportCreateInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        province = None
        if "province" in s.validated_data:
            province = AdminUnit.objects.filter(
                level=AdminLevel.PROVINCE, adcode=s.validated_data["province"]
            ).first()
            if province is None:
                raise ValidationError({"province": ["no province with this adcode"]})
        try:
            export = product_export_start(
                campaign=campaign,
                kind=s.validated_data["kind"],
                province=province,
                user=request.user,
            )
        except ProductExportError as e:
            raise ValidationError({"detail": str(e)}) from e
        return Response(
            ExportOutputSerializer(export_data(export)).data, status=status.HTTP_201_CREATED
        )


class ExportDetailApi(APIView):
    @extend_schema(responses=ExportOutputSerializer)
    def get(self, request: Request, export_id: int) -> Response:
        export = export_get_for_user(user=request.user, export_id=export_id)
        return Response(ExportOutputSerializer(export_data(export)).data)


# --- pages -----------------------------------------------------------------------------------


@login_required
def export_file(request: HttpRequest, export_id: int, name: str) -> HttpResponse:
    """Stream one file of a finished export (authenticated; any role of the campaign)."""
    export = export_get_for_user(user=request.user, export_id=export_id)
    if export.status != JobStatus.DONE or name not in export.files:
        raise Http404("no such file in a finished export")
    path = Path(settings.DATA_DIR) / export.folder / name
    if not path.is_file():
        raise Http404("the export's file is gone from the server")
    return FileResponse(path.open("rb"), as_attachment=True, filename=name)


@login_required
def integration_review(request: HttpRequest, slug: str) -> HttpResponse:
    """Leads' review map: blocks coloured by decision, the two sources with a swipe, keys."""
    campaign = campaign_get_for_lead(user=request.user, slug=slug)
    config = {
        "campaign": campaign.slug,
        "zoom": campaign.zoom,
        "decisions": {v: str(label) for v, label in IntegrationDecision.choices},
        "geojson": reverse("api-integration-blocks", args=[campaign.slug]),
        "decide": reverse("api-block-integration", args=[0]),
        "workspace": reverse("block-workspace", args=[0]),
        "run": reverse("api-integration-run", args=[campaign.slug]),
        "strings": {
            "model": str(_("model")),
            "lead": str(_("lead")),
            "probability": str(_("probability")),
            "saved": str(_("Saved")),
            "none": str(_("No decided blocks yet: run the integration.")),
            "queued": str(_("Integration queued; reload in a moment.")),
        },
    }
    return render(
        request,
        "product/integration_review.html",
        {"campaign": campaign, "config": config, "decisions": IntegrationDecision.choices},
    )


@login_required
def products_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The campaign's exports with progress and download links; leads start new ones."""
    campaign = campaign_get_for_user(user=request.user, slug=slug)
    exports = [
        export_data(e)
        for e in ProductExport.objects.filter(campaign=campaign).select_related("province")[:50]
    ]
    provinces = AdminUnit.objects.filter(
        level=AdminLevel.PROVINCE, pk__in=converged_blocks(campaign=campaign).values("province_id")
    ).order_by("adcode")
    return render(
        request,
        "product/product_exports.html",
        {
            "campaign": campaign,
            "exports": exports,
            "provinces": provinces,
            "is_lead": has_role(request.user, LEAD, ADMIN),
            "api": reverse("api-campaign-exports", args=[campaign.slug]),
        },
    )
