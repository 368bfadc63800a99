"""REST endpoints to import sample polygons from a file (preview, then commit) and export them."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_get_for_transfer
from annotation.transfer import (
    EXPORT_FORMATS,
    MAX_UPLOAD_BYTES,
    FileRejected,
    ImportRefused,
    samples_export,
    samples_import_commit,
    samples_import_preview,
    source_get,
)

# Room for the multipart boundaries and the other form fields around the file.
MULTIPART_SLACK = 64 * 2**10
CAMPAIGN = OpenApiParameter("slug", str, OpenApiParameter.PATH, description="campaign slug")
ERRORS = {
    403: OpenApiResponse(description="Not logged in, or not a lead or admin"),
    404: OpenApiResponse(description="No such campaign, source or import (or not visible)"),
}


class _RejectedFeatureSerializer(serializers.Serializer):
    feature = serializers.IntegerField(help_text="1-based position of the feature in the file")
    reason = serializers.CharField()


class _BlockSummarySerializer(serializers.Serializer):
    block = serializers.CharField(help_text="block code, e.g. R2386C5850")
    block_id = serializers.IntegerField()
    source = serializers.CharField()
    polygons = serializers.IntegerField()
    area_ha = serializers.FloatField(help_text="geodesic area of the polygons (hectares)")


class _RefusedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    rejected = _RejectedFeatureSerializer(many=True)


class SamplesImportPreviewApi(APIView):
    """Upload a file; see per block what would be imported and which features are rejected."""

    parser_classes = [MultiPartParser]

    class ImportPreviewInputSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text=(
                "GeoPackage (.gpkg), zipped Shapefile with .prj (.zip) or GeoJSON "
                f"(.geojson/.json), at most {MAX_UPLOAD_BYTES // 2**20} MB"
            )
        )
        source = serializers.SlugField(
            help_text="imagery source the polygons were drawn on (a 'source' column overrides)"
        )

    class ImportPreviewOutputSerializer(serializers.Serializer):
        import_id = serializers.UUIDField()
        campaign = serializers.CharField()
        source = serializers.CharField()
        filename = serializers.CharField()
        expires_at = serializers.DateTimeField()
        features = serializers.IntegerField(help_text="features in the file")
        polygons = serializers.IntegerField(help_text="polygons to write (after split and clip)")
        blocks = _BlockSummarySerializer(many=True)
        rejected = _RejectedFeatureSerializer(many=True)

    @extend_schema(
        summary="Preview an import of sample polygons from a file",
        parameters=[CAMPAIGN],
        request={"multipart/form-data": ImportPreviewInputSerializer},
        responses={
            200: ImportPreviewOutputSerializer,
            400: OpenApiResponse(description="The file cannot be imported; the reason"),
            **ERRORS,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_transfer(user=request.user, slug=slug)
        # Checked before DRF parses the body (lazily, on request.data), so that an oversized
        # upload is refused before it is spooled to disk. A front proxy should limit it too.
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + MULTIPART_SLACK:
            raise ValidationError(
                {"file": [f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MB"]}
            )
        s = self.ImportPreviewInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        source = source_get(slug=s.validated_data["source"])
        upload = s.validated_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                {"file": [f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MB"]}
            )
        try:
            preview = samples_import_preview(
                user=request.user,
                campaign=campaign,
                source=source,
                file=upload,
                filename=upload.name or "",
            )
        except FileRejected as e:
            raise ValidationError({"file": [e.reason]}) from e
        return Response(self.ImportPreviewOutputSerializer(preview).data)


class SamplesImportCommitApi(APIView):
    """Write a previewed import in one transaction (all or nothing)."""

    class ImportCommitInputSerializer(serializers.Serializer):
        skip_rejected = serializers.BooleanField(
            default=False,
            help_text="import the accepted features even though some were rejected",
        )

    class ImportCommitOutputSerializer(serializers.Serializer):
        import_id = serializers.UUIDField()
        polygons = serializers.IntegerField()
        samples_created = serializers.IntegerField()
        samples_updated = serializers.IntegerField()
        skipped = _RejectedFeatureSerializer(many=True)
        blocks = _BlockSummarySerializer(many=True)

    @extend_schema(
        summary="Commit a previewed import",
        parameters=[
            CAMPAIGN,
            OpenApiParameter("import_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
            ImportCommitInputSerializer,
        ],
        request=None,
        responses={
            201: ImportCommitOutputSerializer,
            400: _RefusedSerializer,
            **ERRORS,
        },
    )
    def post(self, request: Request, slug: str, import_id: uuid.UUID) -> Response:
        campaign = campaign_get_for_transfer(user=request.user, slug=slug)
        s = self.ImportCommitInputSerializer(data=request.query_params)
        s.is_valid(raise_exception=True)
        try:
            result = samples_import_commit(
                user=request.user,
                campaign=campaign,
                import_id=import_id,
                skip_rejected=s.validated_data["skip_rejected"],
            )
        except ImportRefused as e:
            body = {"detail": e.reason, "rejected": e.rejected}
            return Response(_RefusedSerializer(body).data, status=status.HTTP_400_BAD_REQUEST)
        except FileRejected as e:
            body = {"detail": e.reason, "rejected": []}
            return Response(_RefusedSerializer(body).data, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            self.ImportCommitOutputSerializer(result).data, status=status.HTTP_201_CREATED
        )


class _FirstRenderer(DefaultContentNegotiation):
    """``?format=`` names the file format here, not a DRF renderer; errors are JSON."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


MEDIA_TYPES = {"gpkg": "application/geopackage+sqlite3", "shp": "application/zip"}


class SamplesExportApi(APIView):
    """Every sample polygon of the campaign, with block, source, subtype, provenance and the
    Chinese province and county names, as a GeoPackage or a zipped UTF-8 Shapefile."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = _FirstRenderer

    class ExportInputSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=EXPORT_FORMATS, default="gpkg")

    @extend_schema(
        summary="Export the campaign's sample polygons",
        parameters=[CAMPAIGN, ExportInputSerializer],
        responses={
            (200, MEDIA_TYPES["gpkg"]): OpenApiTypes.BINARY,
            (200, MEDIA_TYPES["shp"]): OpenApiTypes.BINARY,
            400: OpenApiResponse(description="Unknown format"),
            **ERRORS,
        },
    )
    def get(self, request: Request, slug: str) -> Any:
        campaign = campaign_get_for_transfer(user=request.user, slug=slug)
        s = self.ExportInputSerializer(data=request.query_params)
        s.is_valid(raise_exception=True)
        fmt = s.validated_data["format"]
        with tempfile.TemporaryDirectory(prefix="croplayer-export-") as tmp:
            path, _n = samples_export(campaign=campaign, fmt=fmt, dest=Path(tmp))
            data = path.read_bytes()
        return HttpResponse(
            data,
            content_type=MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{path.name}"'},
        )
