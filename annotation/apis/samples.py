"""REST endpoints for a block's sample on one imagery source: read its polygons, draw, edit and
delete them, or mark the block negative.

Writes need ``If-Match: "<version>"`` (the sample version last read; 0 for a block without a
sample) and an ``op_id`` (UUID) that makes a retried request return the first result. Responses
carry the new version in the body and as ``ETag``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpResponseNotModified
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import sample_target_get_for_user
from annotation.apis.geojson import GeoJsonFeatureField, GeoJsonPolygonField
from annotation.geometry import GeometryRejected
from annotation.models import CroplandSubtype
from annotation.selectors import ProvenanceUnknown, sample_feature_collection, sample_version
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
