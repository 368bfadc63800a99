"""REST endpoints for a block's samples: read polygons, write them with If-Match, read the audit.

Writes need ``If-Match: "<version>"`` (the sample version last read; 0 for a block without a
sample) and an ``op_id`` (UUID) that makes a retried request return the first result. Responses
carry the new version in the body and as ``ETag``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponseNotModified
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

from annotation.access import block_audit_get_for_user, sample_target_get_for_user
from annotation.geometry import GeometryRejected
from annotation.models import AuditEntry, CroplandSubtype
from annotation.selectors import audit_list_for_block, sample_feature_collection
from annotation.services import (
    OperationIdReused,
    PolygonNotFound,
    SampleWrite,
    StaleVersion,
    polygon_create,
    polygon_delete,
    polygon_update,
    sample_mark_negative,
)

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
        raise ValidationError({"geometry": [e.reason]}) from e
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

    @extend_schema(
        summary="A block's polygons on one imagery source, with the sample version",
        parameters=ROUTE,
        responses={200: SampleFeatureCollectionOutputSerializer, 304: None, 404: None},
    )
    def get(self, request: Request, block_id: int, source: str) -> Response:
        target = sample_target_get_for_user(
            user=request.user, block_id=block_id, source_slug=source
        )
        data = sample_feature_collection(block=target.block, source=target.source)
        etag = _etag(data["version"])
        if request.headers.get("If-None-Match") == etag:
            # A plain Django response: DRF passes it through, and 304 has no body to render.
            return HttpResponseNotModified(headers={"ETag": etag})  # type: ignore[return-value]
        return Response(
            self.SampleFeatureCollectionOutputSerializer(data).data, headers={"ETag": etag}
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
                expected_version=expected,
                op_id=s.validated_data["op_id"],
            ),
            self.SampleNegativeOutputSerializer,
            status.HTTP_200_OK,
        )


class BlockAuditApi(generics.ListAPIView):
    """Every change to the block's samples, newest first, with before and after."""

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
        block = block_audit_get_for_user(user=self.request.user, block_id=self.kwargs["block_id"])
        source = self.request.query_params.get("source")
        return audit_list_for_block(block=block, source_slug=source)
