"""Reads for the annotation app: a sample's polygons as GeoJSON, and a block's audit log."""

from __future__ import annotations

from typing import Any

import shapely
from django.db.models import QuerySet

from annotation.geometry import polygon_to_geojson
from annotation.models import AuditEntry, Sample, SamplePolygon
from mapping.models import Block, ImagerySource


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def polygon_feature(*, polygon: SamplePolygon, source: ImagerySource) -> dict[str, Any]:
    """A polygon as a GeoJSON Feature whose properties carry its provenance."""
    geometry = shapely.from_wkb(bytes(polygon.geometry.wkb))
    return {
        "type": "Feature",
        "id": polygon.pk,
        "geometry": polygon_to_geojson(geometry),
        "properties": {
            "subtype": polygon.subtype,
            "source": source.slug,
            "created_by": polygon.created_by.get_username() if polygon.created_by else None,
            "created_at": _iso(polygon.created_at),
            "updated_by": polygon.updated_by.get_username() if polygon.updated_by else None,
            "updated_at": _iso(polygon.updated_at),
            "model_version": polygon.model_version,
            "round_number": polygon.round_number,
        },
    }


def sample_get(*, block: Block, source: ImagerySource) -> Sample | None:
    return Sample.objects.filter(block=block, source=source).first()


def sample_version(*, block: Block, source: ImagerySource) -> int:
    """The version a client must send in If-Match; 0 while the block has no sample."""
    version = (
        Sample.objects.filter(block=block, source=source).values_list("version", flat=True).first()
    )
    return version or 0


def sample_polygon_features(*, block: Block, source: ImagerySource) -> list[dict[str, Any]]:
    polygons = (
        SamplePolygon.objects.filter(sample__block=block, sample__source=source)
        .select_related("created_by", "updated_by")
        .order_by("pk")
    )
    return [polygon_feature(polygon=p, source=source) for p in polygons]


def sample_feature_collection(*, block: Block, source: ImagerySource) -> dict[str, Any]:
    """The block's polygons on one source, with the sample's version, kind and split.

    ``version``, ``kind`` and ``split`` are foreign members (allowed by RFC 7946); a block
    without a sample has version 0 and kind null.
    """
    sample = sample_get(block=block, source=source)
    return {
        "type": "FeatureCollection",
        "features": sample_polygon_features(block=block, source=source) if sample else [],
        "block": block.pk,
        "source": source.slug,
        "version": sample.version if sample else 0,
        "kind": sample.kind if sample else None,
        "split": sample.split if sample else None,
    }


def audit_list_for_block(*, block: Block, source_slug: str | None = None) -> QuerySet[AuditEntry]:
    """Newest first."""
    qs = AuditEntry.objects.filter(block=block).select_related("source")
    if source_slug:
        qs = qs.filter(source__slug=source_slug)
    return qs.order_by("-id")
