"""REST endpoints for a block's samples (read polygons, write them with If-Match, read the
audit), its labels, and the work flow (assignments, next block, review, agreement).

Writes need ``If-Match: "<version>"`` (the sample version last read; 0 for a block without a
sample) and an ``op_id`` (UUID) that makes a retried request return the first result. Responses
carry the new version in the body and as ``ETag``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponseNotModified
from django.urls import reverse
from django.utils.translation import gettext
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import (
    StateConflict,
    assignees_resolve,
    assignment_get_for_user,
    assignment_list_for_user,
    block_audit_get_for_user,
    block_labels_get_for_user,
    campaign_get_for_lead,
    campaign_get_for_worker,
    campaign_overview_get_for_user,
    label_target_get_for_user,
    sample_target_get_for_user,
)
from annotation.geometry import GeometryRejected
from annotation.models import (
    Assignment,
    AssignmentStatus,
    AuditEntry,
    CoverageType,
    CroplandSubtype,
    IntegrationDecision,
    Verdict,
)
from annotation.selectors import (
    UNASSIGNED,
    OverviewFilter,
    ProvenanceUnknown,
    audit_list_for_block,
    block_labels,
    campaign_agreement,
    campaign_overview_blocks,
    sample_feature_collection,
    sample_version,
)
from annotation.services import (
    AssignmentRefused,
    LabelWrite,
    NothingToJudge,
    OperationIdReused,
    PolygonNotFound,
    PredictionChanged,
    SampleWrite,
    StaleVersion,
    TransitionRefused,
    agreement_share_assign,
    assignment_create,
    assignment_review,
    assignment_start,
    assignment_submit,
    block_next_for_user,
    coverage_label_set,
    integration_label_set,
    polygon_create,
    polygon_delete,
    polygon_update,
    sample_mark_negative,
    verdict_label_set,
)
from croplayer_site.pagination import BoundedLimitOffsetPagination
from mapping.geo.grid import grid_for

POSITION = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 3}
POLYGON_SCHEMA = {
    "type": "object",
    "description": "GeoJSON Polygon in WGS 84 longitude/latitude; outer ring first, then holes",
    "properties": {
        "type": {"type": "string", "enum": ["Polygon"]},
        "coordinates": {
            "type": "array",
            "items": {"type": "array", "items": POSITION, "minItems": 4},
        },
    },
    "required": ["type", "coordinates"],
}
FEATURE_SCHEMA = {
    "type": "object",
    "description": "GeoJSON Feature: id, Polygon geometry, properties with subtype and provenance",
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "id": {"type": "integer"},
        "geometry": POLYGON_SCHEMA,
        "properties": {
            "type": "object",
            "properties": {
                "subtype": {"type": "string", "enum": list(CroplandSubtype.values)},
                "source": {"type": "string"},
                "created_by": {"type": "string", "nullable": True},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_by": {"type": "string", "nullable": True},
                "updated_at": {"type": "string", "format": "date-time", "nullable": True},
                "model_version": {"type": "string"},
                "round_number": {"type": "integer", "nullable": True},
            },
        },
    },
}


@extend_schema_field(POLYGON_SCHEMA)
class GeoJsonPolygonField(serializers.JSONField):
    """Passed through as parsed: the geometry rules (``annotation.geometry``) give the reason.

    JSONField itself would refuse infinity (``1e999`` parses to it) with "Value must be valid
    JSON", which tells an interpreter nothing.
    """

    def to_internal_value(self, data: Any) -> Any:
        return data


@extend_schema_field(FEATURE_SCHEMA)
class GeoJsonFeatureField(serializers.JSONField):
    pass


class PreconditionRequired(APIException):
    status_code = 428
    default_detail = 'If-Match is required: send the sample version you last read, e.g. "3".'
    default_code = "precondition_required"


class SampleStaleOutputSerializer(serializers.Serializer):
    """412: someone else changed the sample; here is what it is now."""

    detail = serializers.CharField()
    version = serializers.IntegerField()
    polygons = serializers.DictField(help_text="GeoJSON FeatureCollection of the current polygons")


class SampleWriteOutputBase(serializers.Serializer):
    version = serializers.IntegerField(help_text="The sample's new version (also the ETag)")
    kind = serializers.CharField(help_text="positive or negative")
    polygon = GeoJsonFeatureField(allow_null=True)


def _etag(version: int) -> str:
    return f'"{version}"'


IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description='The sample version last read (the ETag), e.g. "3"; "0" for a block without one',
)
WRITE_ERRORS = {
    400: OpenApiResponse(description="Bad input (e.g. a geometry rule broken); reason per field"),
    403: OpenApiResponse(description="Not logged in, or your role may not change samples"),
    404: OpenApiResponse(description="No such block, source or polygon (or not visible to you)"),
    409: OpenApiResponse(description="op_id already used for a different request"),
    412: SampleStaleOutputSerializer,
    428: OpenApiResponse(description="If-Match missing"),
}
ROUTE = [
    OpenApiParameter("block_id", int, OpenApiParameter.PATH),
    OpenApiParameter("source", str, OpenApiParameter.PATH, description="imagery source slug"),
]


def _expected_version(request: Request) -> int:
    raw = request.headers.get("If-Match")
    if raw is None:
        raise PreconditionRequired()
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ValidationError(
            {"If-Match": [f'must be the sample version, e.g. "3"; got {raw[:40]!r}']}
        )
    return int(value)


def _write(
    call: Callable[[], SampleWrite], output: type[serializers.Serializer], status_ok: int
) -> Response:
    """Run one write service and turn its outcome (or its refusal) into the documented reply."""
    try:
        result = call()
    except GeometryRejected as e:
        # In the reader's language: the rules (a pure core) keep the message and its parts apart.
        detail: dict[str, list[str]] = {"geometry": [e.phrase.render(gettext)]}
        if e.location is not None:
            # Where to mark the fault on the map: [longitude, latitude].
            detail["location"] = [repr(e.location[0]), repr(e.location[1])]
        raise ValidationError(detail) from e
    except ProvenanceUnknown as e:
        raise ValidationError({"model_version": [str(e)]}) from e
    except PolygonNotFound as e:
        raise NotFound(str(e)) from e
    except OperationIdReused as e:
        return Response({"op_id": [str(e)]}, status=status.HTTP_409_CONFLICT)
    except StaleVersion as e:
        body = {
            "detail": f"the sample changed: it is now at version {e.current_version}",
            "version": e.current_version,
            "polygons": {"type": "FeatureCollection", "features": e.polygons},
        }
        return Response(
            SampleStaleOutputSerializer(body).data,
            status=status.HTTP_412_PRECONDITION_FAILED,
            headers={"ETag": _etag(e.current_version)},
        )
    headers = {"ETag": _etag(result.version)}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(output(result.as_json()).data, status=status_ok, headers=headers)


class SampleDetailApi(APIView):
    class SampleFeatureCollectionOutputSerializer(serializers.Serializer):
        type = serializers.CharField(default="FeatureCollection")
        features = serializers.ListField(child=GeoJsonFeatureField())
        block = serializers.IntegerField()
        source = serializers.CharField()
        version = serializers.IntegerField(help_text="Send it back as If-Match; 0: no sample yet")
        kind = serializers.CharField(allow_null=True)
        split = serializers.CharField(allow_null=True)
        agreement = serializers.BooleanField(
            help_text="True: you are the block's second annotator and see your own blind copy"
        )

    @extend_schema(
        summary="A block's polygons on one imagery source, with the sample version",
        parameters=ROUTE,
        responses={200: SampleFeatureCollectionOutputSerializer, 304: None, 404: None},
    )
    def get(self, request: Request, block_id: int, source: str) -> Response:
        target = sample_target_get_for_user(
            user=request.user, block_id=block_id, source_slug=source
        )
        # The version first: a client whose copy is current gets its 304 without the polygons
        # being read at all.
        etag = _etag(sample_version(block=target.block, source=target.source, copy=target.copy))
        if request.headers.get("If-None-Match") == etag:
            # A plain Django response: DRF passes it through, and 304 has no body to render.
            return HttpResponseNotModified(headers={"ETag": etag})  # type: ignore[return-value]
        data = sample_feature_collection(block=target.block, source=target.source, copy=target.copy)
        return Response(
            self.SampleFeatureCollectionOutputSerializer(data).data,
            headers={"ETag": _etag(data["version"])},
        )


class PolygonCreateApi(APIView):
    class PolygonCreateInputSerializer(serializers.Serializer):
        op_id = serializers.UUIDField(help_text="Client operation id; a retry returns the result")
        geometry = GeoJsonPolygonField()
        subtype = serializers.ChoiceField(
            choices=CroplandSubtype.choices, default=CroplandSubtype.IRRIGATED_DRY
        )
        model_version = serializers.CharField(
            max_length=64, required=False, allow_blank=True, default=""
        )
        round_number = serializers.IntegerField(
            min_value=0, required=False, allow_null=True, default=None
        )

    class PolygonCreateOutputSerializer(SampleWriteOutputBase):
        pass

    @extend_schema(
        summary="Draw a polygon (clipped to the block)",
        parameters=[*ROUTE, IF_MATCH],
        request=PolygonCreateInputSerializer,
        responses={201: PolygonCreateOutputSerializer, **WRITE_ERRORS},
    )
    def post(self, request: Request, block_id: int, source: str) -> Response:
        target = sample_target_get_for_user(
            user=request.user, block_id=block_id, source_slug=source, write=True
        )
        expected = _expected_version(request)
        s = self.PolygonCreateInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _write(
            lambda: polygon_create(
                user=request.user,
                block=target.block,
                source=target.source,
                copy=target.copy,
                expected_version=expected,
                **s.validated_data,
            ),
            self.PolygonCreateOutputSerializer,
            status.HTTP_201_CREATED,
        )


class PolygonDetailApi(APIView):
    """One URL, two operations (PATCH edits, DELETE removes), each with its own serializers."""

    class PolygonUpdateInputSerializer(serializers.Serializer):
        op_id = serializers.UUIDField()
        geometry = GeoJsonPolygonField(required=False)
        subtype = serializers.ChoiceField(choices=CroplandSubtype.choices, required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "geometry" not in attrs and "subtype" not in attrs:
                raise serializers.ValidationError("give a geometry, a subtype or both")
            return attrs

    class PolygonUpdateOutputSerializer(SampleWriteOutputBase):
        pass

    class PolygonDeleteInputSerializer(serializers.Serializer):
        op_id = serializers.UUIDField(help_text="Client operation id (query parameter)")

    class PolygonDeleteOutputSerializer(SampleWriteOutputBase):
        pass

    @extend_schema(
        summary="Edit a polygon's shape and/or subtype",
        parameters=[*ROUTE, OpenApiParameter("polygon_id", int, "path"), IF_MATCH],
        request=PolygonUpdateInputSerializer,
        responses={200: PolygonUpdateOutputSerializer, **WRITE_ERRORS},
    )
    def patch(self, request: Request, block_id: int, source: str, polygon_id: int) -> Response:
        target = sample_target_get_for_user(
            user=request.user, block_id=block_id, source_slug=source, write=True
        )
        expected = _expected_version(request)
        s = self.PolygonUpdateInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _write(
            lambda: polygon_update(
                user=request.user,
                block=target.block,
                source=target.source,
                copy=target.copy,
                polygon_id=polygon_id,
                expected_version=expected,
                **s.validated_data,
            ),
            self.PolygonUpdateOutputSerializer,
            status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Delete a polygon",
        parameters=[
            *ROUTE,
            OpenApiParameter("polygon_id", int, "path"),
            IF_MATCH,
            PolygonDeleteInputSerializer,
        ],
        responses={200: PolygonDeleteOutputSerializer, **WRITE_ERRORS},
    )
    def delete(self, request: Request, block_id: int, source: str, polygon_id: int) -> Response:
        target = sample_target_get_for_user(
            user=request.user, block_id=block_id, source_slug=source, write=True
        )
        expected = _expected_version(request)
        s = self.PolygonDeleteInputSerializer(data=request.query_params)
        s.is_valid(raise_exception=True)
        return _write(
            lambda: polygon_delete(
                user=request.user,
                block=target.block,
                source=target.source,
                copy=target.copy,
                polygon_id=polygon_id,
                expected_version=expected,
                op_id=s.validated_data["op_id"],
            ),
            self.PolygonDeleteOutputSerializer,
            status.HTTP_200_OK,
        )


class SampleNegativeApi(APIView):
    class SampleNegativeInputSerializer(serializers.Serializer):
        op_id = serializers.UUIDField()

    class SampleNegativeOutputSerializer(SampleWriteOutputBase):
        pass

    @extend_schema(
        summary="Mark the block a negative sample on this source (deletes its polygons)",
        parameters=[*ROUTE, IF_MATCH],
        request=SampleNegativeInputSerializer,
        responses={200: SampleNegativeOutputSerializer, **WRITE_ERRORS},
    )
    def post(self, request: Request, block_id: int, source: str) -> Response:
        target = sample_target_get_for_user(
            user=request.user, block_id=block_id, source_slug=source, write=True
        )
        expected = _expected_version(request)
        s = self.SampleNegativeInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _write(
            lambda: sample_mark_negative(
                user=request.user,
                block=target.block,
                source=target.source,
                copy=target.copy,
                expected_version=expected,
                op_id=s.validated_data["op_id"],
            ),
            self.SampleNegativeOutputSerializer,
            status.HTTP_200_OK,
        )


class BlockAuditApi(generics.ListAPIView):
    """Every change to the block's samples, newest first, with before and after."""

    pagination_class = BoundedLimitOffsetPagination

    class AuditEntryOutputSerializer(serializers.ModelSerializer):
        source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
        user = serializers.CharField(source="username")

        class Meta:
            model = AuditEntry
            fields = [
                "id",
                "created_at",
                "user",
                "action",
                "object_type",
                "object_id",
                "source",
                "version",
                "op_id",
                "before",
                "after",
            ]

    serializer_class = AuditEntryOutputSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("block_id", int, OpenApiParameter.PATH),
            OpenApiParameter("source", str, description="only this imagery source (slug)"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[AuditEntry]:
        view = block_audit_get_for_user(user=self.request.user, block_id=self.kwargs["block_id"])
        source = self.request.query_params.get("source")
        return audit_list_for_block(block=view.block, source_slug=source, only=view.only)


# --- Labels -----------------------------------------------------------------------------------

LABEL_ERRORS = {
    400: OpenApiResponse(description="Bad input; reason per field"),
    403: OpenApiResponse(description="Not logged in, block not assigned to you, or not a lead"),
    404: OpenApiResponse(description="No such block or source (or not visible to you)"),
    409: OpenApiResponse(
        description="Your assignment is submitted or accepted, op_id reused for another request, "
        "the verdict names another model version than the block's current prediction, "
        "or the block has no current prediction on the source to judge"
    ),
}


class LabelOutputBase(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["verdict", "coverage", "integration"])
    block = serializers.IntegerField()
    source = serializers.CharField(allow_null=True, help_text="Imagery source slug")
    value = serializers.CharField(help_text="The verdict, coverage type or integration decision")
    user = serializers.CharField(allow_null=True, help_text="Who labelled")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(help_text="When it was last decided")
    model_version = serializers.CharField(allow_blank=True)
    round_number = serializers.IntegerField(allow_null=True)


class LabelInputBase(serializers.Serializer):
    op_id = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="Optional; a retry returns it"
    )
    model_version = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )
    round_number = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, default=None
    )


def _label_write(call: Callable[[], LabelWrite], output: type[serializers.Serializer]) -> Response:
    try:
        result = call()
    except OperationIdReused as e:
        return Response({"op_id": [str(e)]}, status=status.HTTP_409_CONFLICT)
    except PredictionChanged as e:
        return Response({"model_version": [str(e)]}, status=status.HTTP_409_CONFLICT)
    except NothingToJudge as e:
        return Response({"detail": str(e)}, status=status.HTTP_409_CONFLICT)
    except ProvenanceUnknown as e:
        raise ValidationError({"model_version": [str(e)]}) from e
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return Response(output(result.label).data, headers=headers)


class VerdictLabelApi(APIView):
    class VerdictLabelInputSerializer(LabelInputBase):
        verdict = serializers.ChoiceField(choices=Verdict.choices)

    class VerdictLabelOutputSerializer(LabelOutputBase):
        pass

    @extend_schema(
        summary="Set your verdict on the block's prediction on one source",
        parameters=ROUTE,
        request=VerdictLabelInputSerializer,
        responses={200: VerdictLabelOutputSerializer, **LABEL_ERRORS},
    )
    def put(self, request: Request, block_id: int, source: str) -> Response:
        target = label_target_get_for_user(
            user=request.user, block_id=block_id, kind="verdict", source_slug=source
        )
        s = self.VerdictLabelInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _label_write(
            lambda: verdict_label_set(
                user=request.user, block=target.block, source=target.source, **s.validated_data
            ),
            self.VerdictLabelOutputSerializer,
        )


class CoverageLabelApi(APIView):
    class CoverageLabelInputSerializer(LabelInputBase):
        coverage_type = serializers.ChoiceField(choices=CoverageType.choices)

    class CoverageLabelOutputSerializer(LabelOutputBase):
        pass

    @extend_schema(
        summary="Set your coverage type of the block's image on one source",
        parameters=ROUTE,
        request=CoverageLabelInputSerializer,
        responses={200: CoverageLabelOutputSerializer, **LABEL_ERRORS},
    )
    def put(self, request: Request, block_id: int, source: str) -> Response:
        target = label_target_get_for_user(
            user=request.user, block_id=block_id, kind="coverage", source_slug=source
        )
        s = self.CoverageLabelInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _label_write(
            lambda: coverage_label_set(
                user=request.user, block=target.block, source=target.source, **s.validated_data
            ),
            self.CoverageLabelOutputSerializer,
        )


class IntegrationLabelApi(APIView):
    class IntegrationLabelInputSerializer(LabelInputBase):
        decision = serializers.ChoiceField(choices=IntegrationDecision.choices)

    class IntegrationLabelOutputSerializer(LabelOutputBase):
        pass

    @extend_schema(
        summary="Decide how the block's predictions are integrated (leads and admins)",
        parameters=[OpenApiParameter("block_id", int, OpenApiParameter.PATH)],
        request=IntegrationLabelInputSerializer,
        responses={200: IntegrationLabelOutputSerializer, **LABEL_ERRORS},
    )
    def put(self, request: Request, block_id: int) -> Response:
        target = label_target_get_for_user(user=request.user, block_id=block_id, kind="integration")
        s = self.IntegrationLabelInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _label_write(
            lambda: integration_label_set(
                user=request.user, block=target.block, **s.validated_data
            ),
            self.IntegrationLabelOutputSerializer,
        )


class BlockLabelsApi(APIView):
    class BlockLabelOutputSerializer(LabelOutputBase):
        pass

    class BlockLabelsOutputSerializer(serializers.Serializer):
        block = serializers.IntegerField()
        verdicts = serializers.ListField(child=serializers.DictField())
        coverage = serializers.ListField(child=serializers.DictField())
        integration = serializers.DictField(allow_null=True)

    @extend_schema(
        summary="The block's current labels (annotators: their own verdicts and coverage types)",
        parameters=[OpenApiParameter("block_id", int, OpenApiParameter.PATH)],
        responses={200: BlockLabelsOutputSerializer, 404: None},
    )
    def get(self, request: Request, block_id: int) -> Response:
        view = block_labels_get_for_user(user=request.user, block_id=block_id)
        data = block_labels(block=view.block, only_user=view.only_user)
        return Response(self.BlockLabelsOutputSerializer(data).data)


# --- Work flow --------------------------------------------------------------------------------


class AssignmentOutputBase(serializers.ModelSerializer):
    block_code = serializers.CharField(source="block.code")
    campaign = serializers.CharField(source="block.campaign.slug")
    user = serializers.CharField(source="user.username")
    assigned_by = serializers.CharField(source="assigned_by.username", allow_null=True)
    reviewed_by = serializers.CharField(source="reviewed_by.username", allow_null=True)

    class Meta:
        model = Assignment
        fields = [
            "id",
            "block",
            "block_code",
            "campaign",
            "user",
            "status",
            "priority",
            "self_claimed",
            "agreement",
            "assigned_by",
            "created_at",
            "started_at",
            "submitted_at",
            "reviewed_at",
            "reviewed_by",
            "last_review",
            "review_comment",
            "rejections",
        ]


CAMPAIGN_ROUTE = [OpenApiParameter("slug", str, OpenApiParameter.PATH)]
ASSIGNMENT_ROUTE = [OpenApiParameter("assignment_id", int, OpenApiParameter.PATH)]
TRANSITION_ERRORS = {
    403: OpenApiResponse(description="Not yours to do (not the assignee, not a lead, own work)"),
    404: OpenApiResponse(description="No such assignment (or not visible to you)"),
    409: OpenApiResponse(description="Not possible in the assignment's status; reason in detail"),
}


def _transition(call: Callable[[], Assignment], output: type[serializers.Serializer]) -> Response:
    try:
        assignment = call()
    except TransitionRefused as e:
        raise StateConflict(e.reason) from e
    return Response(output(assignment).data)


class CampaignAssignmentCreateApi(APIView):
    class AssignmentCreateInputSerializer(serializers.Serializer):
        blocks = serializers.ListField(
            child=serializers.IntegerField(), min_length=1, max_length=10000
        )
        users = serializers.ListField(
            child=serializers.CharField(max_length=150),
            min_length=1,
            max_length=2,
            help_text="One person, or two for agreement",
        )
        priority = serializers.IntegerField(
            min_value=1,
            required=False,
            allow_null=True,
            default=None,
            help_text="Queue rank (1 first); default: each block's seed order",
        )

    class AssignmentCreatedOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    class AssignmentCreateOutputSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.DictField())
        skipped = serializers.IntegerField(help_text="Pairs already assigned (left as they were)")

    @extend_schema(
        summary="Assign blocks to people (leads and admins); all or nothing",
        parameters=CAMPAIGN_ROUTE,
        request=AssignmentCreateInputSerializer,
        responses={
            201: AssignmentCreateOutputSerializer,
            400: OpenApiResponse(description="Unknown block of this campaign, or unknown person"),
            403: OpenApiResponse(description="Not a lead or admin"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
            409: OpenApiResponse(description="A block would have more than two people"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_lead(user=request.user, slug=slug)
        s = self.AssignmentCreateInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            assignees = assignees_resolve(usernames=s.validated_data["users"])
            created, skipped = assignment_create(
                lead=request.user,
                campaign=campaign,
                block_ids=s.validated_data["blocks"],
                assignees=assignees,
                priority=s.validated_data["priority"],
            )
        except ValueError as e:
            raise ValidationError({"detail": [str(e)]}) from e
        except AssignmentRefused as e:
            raise StateConflict(e.reason) from e
        body = {
            "created": self.AssignmentCreatedOutputSerializer(created, many=True).data,
            "skipped": skipped,
        }
        return Response(
            self.AssignmentCreateOutputSerializer(body).data, status=status.HTTP_201_CREATED
        )


class AssignmentListApi(generics.ListAPIView):
    """Annotators: their own assignments; leads: everyone's in their campaigns; admins: all.
    In queue order."""

    pagination_class = BoundedLimitOffsetPagination

    class AssignmentListOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    serializer_class = AssignmentListOutputSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("campaign", str, description="campaign slug"),
            OpenApiParameter("status", str, enum=AssignmentStatus.values),
            OpenApiParameter("user", str, description="username (leads and admins)"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Assignment]:
        q = self.request.query_params
        return assignment_list_for_user(
            user=self.request.user,
            campaign_slug=q.get("campaign"),
            status=q.get("status"),
            username=q.get("user"),
        )


class AssignmentStartApi(APIView):
    class AssignmentStartOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    @extend_schema(
        summary="Start work on an assigned block (to do -> in progress; the assignee)",
        parameters=ASSIGNMENT_ROUTE,
        request=None,
        responses={200: AssignmentStartOutputSerializer, **TRANSITION_ERRORS},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        a = assignment_get_for_user(user=request.user, assignment_id=assignment_id, act="work")
        return _transition(
            lambda: assignment_start(user=request.user, assignment=a),
            self.AssignmentStartOutputSerializer,
        )


class AssignmentSubmitApi(APIView):
    class AssignmentSubmitOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    @extend_schema(
        summary="Hand the block in for review (in progress -> submitted; the assignee)",
        parameters=ASSIGNMENT_ROUTE,
        request=None,
        responses={200: AssignmentSubmitOutputSerializer, **TRANSITION_ERRORS},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        a = assignment_get_for_user(user=request.user, assignment_id=assignment_id, act="work")
        return _transition(
            lambda: assignment_submit(user=request.user, assignment=a),
            self.AssignmentSubmitOutputSerializer,
        )


class AssignmentReviewApi(APIView):
    class AssignmentReviewInputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["accept", "reject"])
        comment = serializers.CharField(required=False, allow_blank=True, default="")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["decision"] == "reject" and not attrs["comment"].strip():
                raise serializers.ValidationError(
                    {"comment": ["a rejection needs a comment that tells what to fix"]}
                )
            return attrs

    class AssignmentReviewOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    @extend_schema(
        summary="Accept, or reject with a comment (back to in progress); leads and admins",
        parameters=ASSIGNMENT_ROUTE,
        request=AssignmentReviewInputSerializer,
        responses={
            200: AssignmentReviewOutputSerializer,
            400: OpenApiResponse(description="Rejection without comment"),
            **TRANSITION_ERRORS,
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        a = assignment_get_for_user(user=request.user, assignment_id=assignment_id, act="review")
        s = self.AssignmentReviewInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _transition(
            lambda: assignment_review(
                reviewer=request.user,
                assignment=a,
                accept=s.validated_data["decision"] == "accept",
                comment=s.validated_data["comment"],
            ),
            self.AssignmentReviewOutputSerializer,
        )


class CampaignNextBlockApi(APIView):
    class NextBlockAssignmentOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    class NextBlockOutputSerializer(serializers.Serializer):
        claimed = serializers.BooleanField(help_text="True if the block was self-assigned now")
        assignment = serializers.DictField()

    @extend_schema(
        summary="Your next block: highest-priority unfinished assignment, else claim one",
        parameters=CAMPAIGN_ROUTE,
        request=None,
        responses={
            200: NextBlockOutputSerializer,
            204: OpenApiResponse(description="Nothing left for you in this campaign"),
            403: OpenApiResponse(description="Your role may not take work"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_worker(user=request.user, slug=slug)
        found = block_next_for_user(user=request.user, campaign=campaign)
        if found is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        assignment, claimed = found
        body = {
            "claimed": claimed,
            "assignment": self.NextBlockAssignmentOutputSerializer(assignment).data,
        }
        return Response(self.NextBlockOutputSerializer(body).data)


class AgreementTotalsOutputSerializer(serializers.Serializer):
    rows_compared = serializers.IntegerField(help_text="Rows (block x source) with an IoU")
    mean_iou = serializers.FloatField(allow_null=True)
    verdicts_compared = serializers.IntegerField()
    verdicts_agreed = serializers.IntegerField()
    verdict_agreement = serializers.FloatField(allow_null=True)


class CampaignAgreementApi(APIView):
    class AgreementRowOutputSerializer(serializers.Serializer):
        block = serializers.IntegerField()
        code = serializers.CharField()
        source = serializers.CharField()
        users = serializers.ListField(
            child=serializers.CharField(allow_null=True),
            help_text="The primary annotator, then the second (blind) one",
        )
        statuses = serializers.ListField(child=serializers.CharField(allow_null=True))
        kinds = serializers.ListField(
            child=serializers.CharField(allow_null=True),
            help_text="Sample kind on each side (positive, negative; null: not labelled)",
        )
        iou = serializers.FloatField(
            allow_null=True, help_text="IoU of the two sides' cropland; null when neither drew"
        )
        verdicts = serializers.ListField(child=serializers.CharField(allow_null=True))
        verdict_agrees = serializers.BooleanField(allow_null=True)

    class AgreementOutputSerializer(AgreementTotalsOutputSerializer):
        campaign = serializers.CharField()
        blocks = serializers.IntegerField(help_text="Blocks given to two people")
        by_source = serializers.DictField(child=AgreementTotalsOutputSerializer())
        rows = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        summary="Agreement of blocks given to two people: polygon IoU, verdict agreement",
        parameters=CAMPAIGN_ROUTE,
        responses={
            200: AgreementOutputSerializer,
            403: OpenApiResponse(description="Not a lead or admin"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_lead(user=request.user, slug=slug)
        data = campaign_agreement(campaign=campaign)
        data["rows"] = self.AgreementRowOutputSerializer(data["rows"], many=True).data
        return Response(self.AgreementOutputSerializer(data).data)


class CampaignAgreementAssignApi(APIView):
    class AgreementAssignInputSerializer(serializers.Serializer):
        users = serializers.ListField(
            child=serializers.CharField(max_length=150),
            min_length=2,
            max_length=2,
            help_text="The primary annotator, then the second one who draws blind",
        )
        percent = serializers.FloatField(
            required=False,
            min_value=0.001,
            max_value=100,
            help_text="Share of the first person's open blocks, spread over their queue",
        )
        blocks = serializers.ListField(
            child=serializers.IntegerField(), required=False, min_length=1, max_length=10000
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("percent" in attrs) == ("blocks" in attrs):
                raise serializers.ValidationError("give either percent or blocks")
            if attrs["users"][0] == attrs["users"][1]:
                raise serializers.ValidationError({"users": ["two different people"]})
            return attrs

    class AgreementAssignedOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    class AgreementAssignOutputSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.DictField())
        skipped = serializers.IntegerField()

    @extend_schema(
        summary="Give a share of blocks (percent of the first person's, or chosen) to two people",
        parameters=CAMPAIGN_ROUTE,
        request=AgreementAssignInputSerializer,
        responses={
            201: AgreementAssignOutputSerializer,
            400: OpenApiResponse(description="Bad share, unknown person or block, nothing open"),
            403: OpenApiResponse(description="Not a lead or admin"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
            409: OpenApiResponse(description="A block already has a second annotator"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_lead(user=request.user, slug=slug)
        s = self.AgreementAssignInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            first, second = assignees_resolve(usernames=s.validated_data["users"])
            if "percent" in s.validated_data:
                created, skipped = agreement_share_assign(
                    lead=request.user,
                    campaign=campaign,
                    first=first,
                    second=second,
                    percent=s.validated_data["percent"],
                )
            else:
                created, skipped = assignment_create(
                    lead=request.user,
                    campaign=campaign,
                    block_ids=s.validated_data["blocks"],
                    assignees=[first, second],
                )
        except ValueError as e:
            raise ValidationError({"detail": [str(e)]}) from e
        except AssignmentRefused as e:
            raise StateConflict(e.reason) from e
        body = {
            "created": self.AgreementAssignedOutputSerializer(created, many=True).data,
            "skipped": skipped,
        }
        return Response(
            self.AgreementAssignOutputSerializer(body).data, status=status.HTTP_201_CREATED
        )


MAX_OVERVIEW_FEATURES = 20000


class CampaignOverviewApi(APIView):
    class OverviewFilterInputSerializer(serializers.Serializer):
        province = serializers.IntegerField(required=False, help_text="province adcode")
        status = serializers.ChoiceField(
            choices=[UNASSIGNED, *AssignmentStatus.values],
            required=False,
            help_text="work status of the block (annotators: of their own assignment)",
        )
        verdict = serializers.ChoiceField(choices=Verdict.values, required=False)
        source = serializers.SlugField(
            required=False, help_text="with verdict: the newest verdict on this source"
        )
        assignee = serializers.CharField(
            required=False, max_length=150, help_text="username (leads and admins)"
        )
        bbox = serializers.CharField(required=False, help_text="west,south,east,north")
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_OVERVIEW_FEATURES, default=5000
        )

        def validate_bbox(self, value: str) -> tuple[float, float, float, float]:
            try:
                w, s, e, n = (float(v) for v in value.split(","))
            except ValueError as exc:
                raise serializers.ValidationError("bbox must be four numbers: w,s,e,n") from exc
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise serializers.ValidationError(
                    "bbox must be lon/lat with west<east, south<north"
                )
            return (w, s, e, n)

    class OverviewOutputSerializer(serializers.Serializer):
        type = serializers.CharField(default="FeatureCollection")
        features = serializers.ListField(
            child=serializers.DictField(),
            help_text="Block rectangles; properties: code, province (adcode), province_name, "
            "county, seed_order, status, assignees, agreement, verdicts (source -> newest)",
        )
        truncated = serializers.BooleanField(help_text="More blocks matched than the limit")
        workspace_url = serializers.CharField(help_text="The block's page; {id} is the block id")

    @extend_schema(
        summary="The campaign's blocks for the overview map: status, verdicts, province",
        parameters=[*CAMPAIGN_ROUTE, OverviewFilterInputSerializer],
        responses={
            200: OverviewOutputSerializer,
            400: OpenApiResponse(description="Bad filter; reason per field"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign, only_user = campaign_overview_get_for_user(user=request.user, slug=slug)
        q = self.OverviewFilterInputSerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        v = q.validated_data
        rows = cols = None
        if "bbox" in v:
            rows, cols = grid_for(campaign.block_size_deg).blocks_in_bounds(*v["bbox"])
        data = campaign_overview_blocks(
            campaign=campaign,
            f=OverviewFilter(
                only_user=only_user,
                province=v.get("province"),
                status=v.get("status"),
                verdict=v.get("verdict"),
                source=v.get("source"),
                assignee=v.get("assignee") if only_user is None else None,
                rows=rows,
                cols=cols,
                limit=v["limit"],
            ),
        )
        data["workspace_url"] = reverse("block-workspace", args=[0]).replace("/0/", "/{id}/")
        # Returned as built (the serializer documents it): putting 20,000 features through
        # DRF's DictField one by one doubles the response time and changes nothing.
        return Response(data)
