"""GeoJSON fields shared by the endpoints that read or write polygons, with their OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import CroplandSubtype

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
