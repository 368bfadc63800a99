"""Read-only endpoint: the current segmenter's prediction for a block on one imagery source, as
GeoJSON polygons the workspace shows as an overlay and copies into the sample on request.

The prediction is read under the same gate as the block's sample (``annotation.access``): whoever
may read the polygons drawn on a block may see what the model predicted there.
"""

from __future__ import annotations

from typing import Any

import shapely
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import sample_target_get_for_user
from annotation.apis.geojson import GeoJsonFeatureField
from annotation.geometry import polygon_to_geojson
from annotation.selectors import CurrentPrediction, PredictionMissing, block_prediction_current
from mapping.models import ImagerySource


def prediction_features(*, current: CurrentPrediction, source: ImagerySource) -> list[dict]:
    """One GeoJSON Feature per part of the MultiPolygon: each is copied as one sample polygon."""
    geometry = current.prediction.geometry
    if geometry is None or geometry.empty:
        return []
    parts = shapely.from_wkb(bytes(geometry.wkb))
    polygons = list(parts.geoms) if hasattr(parts, "geoms") else [parts]
    return [
        {
            "type": "Feature",
            "id": i + 1,
            "geometry": polygon_to_geojson(poly),
            "properties": {
                "source": source.slug,
                "model_version": current.model_version.name,
                "round_number": current.round_number,
            },
        }
        for i, poly in enumerate(polygons)
        if poly.geom_type == "Polygon" and not poly.is_empty
    ]


class BlockPredictionApi(APIView):
    class PredictionOutputSerializer(serializers.Serializer):
        type = serializers.CharField(default="FeatureCollection")
        features = serializers.ListField(
            child=GeoJsonFeatureField(),
            help_text="One Polygon feature per part of the predicted cropland MultiPolygon",
        )
        block = serializers.IntegerField()
        source = serializers.CharField()
        model_version = serializers.CharField(help_text="Name of the current segmenter version")
        round_number = serializers.IntegerField(
            allow_null=True, help_text="The learning round that made the prediction"
        )
        cropland_fraction = serializers.FloatField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        summary="The current segmenter's prediction for a block on one source (GeoJSON)",
        parameters=[
            OpenApiParameter("block_id", int, OpenApiParameter.PATH),
            OpenApiParameter(
                "source", str, OpenApiParameter.PATH, description="imagery source slug"
            ),
        ],
        responses={
            200: PredictionOutputSerializer,
            403: OpenApiResponse(description="Not logged in, or the block is not yours"),
            404: OpenApiResponse(
                description="No such block or source, no current segmenter, or no prediction "
                "for this block and source; `detail` says which"
            ),
        },
    )
    def get(self, request: Request, block_id: int, source: str) -> Response:
        target = sample_target_get_for_user(
            user=request.user, block_id=block_id, source_slug=source
        )
        try:
            current = block_prediction_current(block=target.block, source=target.source)
        except PredictionMissing as e:
            raise NotFound(str(e)) from e
        data: dict[str, Any] = {
            "type": "FeatureCollection",
            "features": prediction_features(current=current, source=target.source),
            "block": target.block.pk,
            "source": target.source.slug,
            "model_version": current.model_version.name,
            "round_number": current.round_number,
            "cropland_fraction": current.prediction.cropland_fraction,
            "created_at": current.prediction.created_at,
        }
        return Response(self.PredictionOutputSerializer(data).data)
