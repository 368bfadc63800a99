"""REST endpoints of learning rounds and the model registry: thin views over services/selectors.

Who may do what: admins start and cancel rounds and manage model versions; leads and admins
read rounds, model versions and the stop status; anyone else gets 404 (no campaign visible)
or 403 (visible campaign, no right): the gates are in ``learning.access``.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from learning.access import campaign_for, model_version_get, round_get_by_number
from learning.models import ModelKind, ModelVersion, Round
from learning.selectors import (
    model_version_data,
    model_versions_list,
    round_data,
    rounds_list,
    stop_status,
)
from learning.services import (
    ModelVersionError,
    RoundConflict,
    RoundInputError,
    RoundNotActive,
    model_version_make_current,
    model_version_register,
    round_cancel,
    round_start,
    systematic_sample_create,
)


def _kind(value: str) -> str:
    if value not in ModelKind.values:
        raise serializers.ValidationError(f"unknown kind {value!r}; one of {ModelKind.values}")
    return value


def round_url(rnd: Round) -> str:
    return reverse("api-round-detail", kwargs={"slug": rnd.campaign.slug, "number": rnd.number})


class RoundOutputSerializer(serializers.Serializer):
    round = serializers.IntegerField(help_text="database id")
    number = serializers.IntegerField()
    campaign = serializers.CharField()
    state = serializers.CharField()
    provinces = serializers.ListField(child=serializers.IntegerField())
    stage_done = serializers.IntegerField()
    stage_total = serializers.IntegerField()
    percent = serializers.FloatField()
    elapsed_s = serializers.FloatField()
    eta_s = serializers.FloatField(allow_null=True)
    heartbeat_at = serializers.CharField(allow_null=True)
    failure_reason = serializers.CharField()
    log_tail = serializers.ListField(child=serializers.CharField())
    log = serializers.CharField()
    final = serializers.BooleanField()
    config = serializers.DictField()
    requested_by = serializers.CharField(allow_null=True)
    created_at = serializers.CharField()
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    timings = serializers.DictField()
    cancel_requested = serializers.BooleanField()
    model_versions = serializers.ListField(child=serializers.DictField())
    selected_blocks = serializers.IntegerField()
    group = serializers.CharField()
    websocket = serializers.CharField()
    url = serializers.CharField()


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    active_round = serializers.IntegerField()
    active_state = serializers.CharField()
    url = serializers.CharField()


def _round_out(rnd: Round) -> dict[str, Any]:
    return {**round_data(rnd), "url": round_url(rnd)}


class RoundListApi(APIView):
    class RoundStartInputSerializer(serializers.Serializer):
        provinces = serializers.ListField(
            child=serializers.IntegerField(), required=False, allow_null=True,
            help_text="province adcodes; omit for every province not converged or excluded")
        config = serializers.DictField(required=False, default=dict,
                                       help_text="RoundConfig keys (model preset, epochs, ...)")

    @extend_schema(responses=RoundOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_for(user=request.user, slug=slug)
        return Response([_round_out(r) for r in rounds_list(campaign=campaign)[:200]])

    @extend_schema(request=RoundStartInputSerializer, responses={
        201: RoundOutputSerializer, 400: OpenApiResponse(description="bad provinces or config"),
        409: ConflictSerializer})
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_for(user=request.user, slug=slug, admin=True)
        data = self.RoundStartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            rnd = round_start(campaign=campaign, provinces=data.validated_data.get("provinces"),
                              user=request.user,  # type: ignore[arg-type]
                              config=data.validated_data.get("config") or {})
        except RoundConflict as e:
            return Response({"detail": str(e), "active_round": e.active.number,
                             "active_state": e.active.state, "url": round_url(e.active)},
                            status=status.HTTP_409_CONFLICT)
        except RoundInputError as e:
            raise ValidationError({"detail": str(e)}) from e
        return Response(_round_out(rnd), status=status.HTTP_201_CREATED)


class RoundDetailApi(APIView):
    @extend_schema(responses=RoundOutputSerializer)
    def get(self, request: Request, slug: str, number: int) -> Response:
        campaign = campaign_for(user=request.user, slug=slug)
        return Response(_round_out(round_get_by_number(campaign=campaign, number=number)))


class RoundCancelApi(APIView):
    @extend_schema(request=None, responses={200: RoundOutputSerializer,
                                            409: OpenApiResponse(description="not active")})
    def post(self, request: Request, slug: str, number: int) -> Response:
        campaign = campaign_for(user=request.user, slug=slug, admin=True)
        rnd = round_get_by_number(campaign=campaign, number=number)
        try:
            rnd = round_cancel(rnd=rnd, user=request.user)  # type: ignore[arg-type]
        except RoundNotActive as e:
            return Response({"detail": str(e)}, status=status.HTTP_409_CONFLICT)
        return Response(_round_out(rnd))


class ModelVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    engine = serializers.CharField(
        allow_null=True, help_text="segmentation engine (unet, mask2former); null for other kinds"
    )
    name = serializers.CharField()
    is_current = serializers.BooleanField()
    bundle_path = serializers.CharField()
    metrics = serializers.DictField()
    config = serializers.DictField()
    training_samples = serializers.IntegerField(help_text="how many samples it was trained on")
    train_seconds = serializers.FloatField(allow_null=True)
    round = serializers.IntegerField(allow_null=True)
    created_at = serializers.CharField()


class ModelVersionListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        kind = serializers.CharField(required=False)

        def validate_kind(self, value: str) -> str:
            return _kind(value)

    class ModelVersionRegisterInputSerializer(serializers.Serializer):
        kind = serializers.CharField(help_text="segmenter, iqa, correctness or integration")
        name = serializers.SlugField(max_length=100)
        bundle_path = serializers.CharField(
            max_length=500, help_text="a complete bundle folder, relative to DATA_DIR")
        make_current = serializers.BooleanField(default=False)

        def validate_kind(self, value: str) -> str:
            return _kind(value)

        def validate_bundle_path(self, value: str) -> str:
            if value.startswith("/") or ".." in value.split("/"):
                raise serializers.ValidationError("must be a path inside DATA_DIR")
            return value

    @extend_schema(parameters=[OpenApiParameter("kind", str, enum=ModelKind.values)],
                   responses=ModelVersionOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_for(user=request.user, slug=slug)
        f = self.FilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        qs = model_versions_list(campaign=campaign, kind=f.validated_data.get("kind"))
        return Response([model_version_data(mv) for mv in qs[:500]])

    @extend_schema(request=ModelVersionRegisterInputSerializer,
                   responses={201: ModelVersionOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        """Register a bundle trained elsewhere (e.g. ``python -m learning``)."""
        campaign = campaign_for(user=request.user, slug=slug, admin=True)
        data = self.ModelVersionRegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if ModelVersion.objects.filter(campaign=campaign, kind=v["kind"], name=v["name"]).exists():
            raise ValidationError({"name": f"{v['kind']} {v['name']!r} already exists"})
        try:
            mv = model_version_register(campaign=campaign, kind=v["kind"], name=v["name"],
                                        bundle_path=v["bundle_path"])
            if v["make_current"]:
                mv = model_version_make_current(model_version=mv)
        except ModelVersionError as e:
            raise ValidationError({"bundle_path": str(e)}) from e
        return Response(model_version_data(mv), status=status.HTTP_201_CREATED)


class ModelVersionSetCurrentApi(APIView):
    @extend_schema(request=None, responses={200: ModelVersionOutputSerializer,
                                            400: OpenApiResponse(description="bundle invalid")})
    def post(self, request: Request, slug: str, version_id: int) -> Response:
        campaign = campaign_for(user=request.user, slug=slug, admin=True)
        mv = model_version_get(campaign=campaign, pk=version_id)
        try:
            mv = model_version_make_current(model_version=mv)
        except ModelVersionError as e:
            raise ValidationError({"detail": str(e)}) from e
        return Response(model_version_data(mv))


class StopStatusProvinceSerializer(serializers.Serializer):
    adcode = serializers.IntegerField()
    province = serializers.CharField()
    province_zh = serializers.CharField()
    round = serializers.IntegerField(allow_null=True)
    iou = serializers.FloatField(allow_null=True)
    iou_samples = serializers.IntegerField()
    correctness = serializers.FloatField(allow_null=True)
    correctness_samples = serializers.IntegerField()
    area_mapbox_ha = serializers.FloatField(allow_null=True)
    area_google_ha = serializers.FloatField(allow_null=True)
    official_ha = serializers.FloatField(allow_null=True)
    area_mapbox_pct = serializers.FloatField(allow_null=True)
    area_google_pct = serializers.FloatField(allow_null=True)
    official_status = serializers.CharField(allow_null=True)
    official_unverified = serializers.BooleanField()
    supplementary_rounds = serializers.IntegerField()
    max_supplementary_rounds = serializers.IntegerField()
    decision = serializers.CharField()
    reason = serializers.CharField()
    criteria = serializers.DictField()


class StopStatusSerializer(serializers.Serializer):
    campaign = serializers.CharField()
    thresholds = serializers.DictField(child=serializers.FloatField())
    latest_round = serializers.IntegerField(allow_null=True)
    provinces = StopStatusProvinceSerializer(many=True)


class StopStatusApi(APIView):
    @extend_schema(responses=StopStatusSerializer)
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_for(user=request.user, slug=slug)
        return Response(stop_status(campaign=campaign))


class SystematicSampleApi(APIView):
    class SystematicSampleInputSerializer(serializers.Serializer):
        spacing_deg = serializers.FloatField(min_value=0.05, max_value=10, default=0.5)

    class SystematicSampleOutputSerializer(serializers.Serializer):
        spacing_deg = serializers.FloatField()
        blocks = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(request=SystematicSampleInputSerializer,
                   responses={201: SystematicSampleOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        """Create the systematic validation sample (a block every ``spacing_deg``)."""
        campaign = campaign_for(user=request.user, slug=slug)
        data = self.SystematicSampleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        spacing = data.validated_data["spacing_deg"]
        rows = systematic_sample_create(campaign=campaign, spacing_deg=spacing,
                                        user=request.user)  # type: ignore[arg-type]
        return Response({"spacing_deg": spacing, "blocks": sorted(r.block_id for r in rows)},
                        status=status.HTTP_201_CREATED)
