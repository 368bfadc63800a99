"""Reads for the annotation app: a sample's polygons as GeoJSON, a block's labels and audit log,
assignments, and the agreement of double-annotated blocks."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import shapely
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, QuerySet

from annotation.geometry import polygon_to_geojson
from annotation.models import (
    Assignment,
    AuditEntry,
    CampaignWorkflow,
    CoverageLabel,
    IntegrationLabel,
    Sample,
    SamplePolygon,
    VerdictLabel,
)
from mapping.models import Block, Campaign, ImagerySource


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


LabelRow = VerdictLabel | CoverageLabel | IntegrationLabel


def label_data(label: LabelRow) -> dict[str, Any]:
    """A label with its provenance; ``value`` is the verdict, coverage type or decision."""
    if isinstance(label, VerdictLabel):
        kind, value = "verdict", label.verdict
    elif isinstance(label, CoverageLabel):
        kind, value = "coverage", label.coverage_type
    else:
        kind, value = "integration", label.decision
    source = getattr(label, "source", None)
    return {
        "id": label.pk,
        "kind": kind,
        "block": label.block_id,
        "source": source.slug if source is not None else None,
        "value": value,
        "user": label.user.get_username() if label.user else None,
        "created_at": _iso(label.created_at),
        "updated_at": _iso(label.updated_at),
        "model_version": label.model_version,
        "round_number": label.round_number,
    }


def block_labels(*, block: Block, only_user: AbstractBaseUser | None = None) -> dict[str, Any]:
    """The block's current labels; with ``only_user``, only that person's verdicts and coverage
    types (the integration decision is the block's, not a person's)."""
    verdicts = VerdictLabel.objects.filter(block=block).select_related("source", "user")
    coverage = CoverageLabel.objects.filter(block=block).select_related("source", "user")
    if only_user is not None:
        verdicts = verdicts.filter(user=only_user)
        coverage = coverage.filter(user=only_user)
    integration = IntegrationLabel.objects.filter(block=block).select_related("user").first()
    return {
        "block": block.pk,
        "verdicts": [label_data(v) for v in verdicts.order_by("source__slug", "pk")],
        "coverage": [label_data(c) for c in coverage.order_by("source__slug", "pk")],
        "integration": label_data(integration) if integration else None,
    }


def self_assign_allowed(*, campaign: Campaign) -> bool:
    """A campaign without a workflow row allows self-assignment (the model's default)."""
    value = (
        CampaignWorkflow.objects.filter(campaign=campaign)
        .values_list("self_assign", flat=True)
        .first()
    )
    return True if value is None else bool(value)


def assignment_data(assignment: Assignment) -> dict[str, Any]:
    """An assignment as the audit log keeps it."""
    return {
        "id": assignment.pk,
        "block": assignment.block_id,
        "user": assignment.user_id,
        "status": assignment.status,
        "priority": assignment.priority,
        "last_review": assignment.last_review,
        "review_comment": assignment.review_comment,
        "rejections": assignment.rejections,
    }


def assignment_list(
    *,
    only_user: AbstractBaseUser | None = None,
    campaign_slug: str | None = None,
    status: str | None = None,
    username: str | None = None,
) -> QuerySet[Assignment]:
    """Queue order: rank 1 first, unranked last, then oldest."""
    qs = Assignment.objects.select_related(
        "block", "block__campaign", "user", "assigned_by", "reviewed_by"
    )
    if only_user is not None:
        qs = qs.filter(user=only_user)
    if campaign_slug:
        qs = qs.filter(block__campaign__slug=campaign_slug)
    if status:
        qs = qs.filter(status=status)
    if username:
        qs = qs.filter(user__username=username)
    return qs.order_by(F("priority").asc(nulls_last=True), "pk")


def _union(polygons: list[Any]) -> Any:
    return shapely.union_all([shapely.from_wkb(bytes(p.wkb)) for p in polygons])


def polygon_iou(a: Any, b: Any) -> float | None:
    """Intersection over union of two (multi)polygons; None when both are empty.

    Computed on longitude/latitude: within one 0.05 degree block the scale is the same for both,
    so the ratio is what it would be in metres."""
    union = shapely.union(a, b).area
    if union == 0:
        return None
    return float(shapely.intersection(a, b).area / union)


def campaign_agreement(*, campaign: Campaign) -> dict[str, Any]:
    """For every block given to two people: per source, the IoU of the cropland each of them drew
    (polygons attributed by ``created_by``) and whether their verdicts agree."""
    people: dict[int, list[Any]] = defaultdict(list)
    assignments = (
        Assignment.objects.filter(block__campaign=campaign)
        .select_related("user", "block")
        .order_by("block_id", "pk")
    )
    blocks: dict[int, Block] = {}
    for a in assignments:
        if all(u.pk != a.user_id for u in people[a.block_id]):
            people[a.block_id].append(a.user)
            blocks[a.block_id] = a.block
    rows = []
    ious: list[float] = []
    compared = agreed = 0
    for block_id, users in sorted(people.items()):
        if len(users) < 2:
            continue
        first, second = users[:2]
        block = blocks[block_id]
        verdicts = {
            (v.source_id, v.user_id): v.verdict
            for v in VerdictLabel.objects.filter(block=block, user__in=[first, second])
        }
        polygons: dict[tuple[int, int | None], list[Any]] = defaultdict(list)
        for p in SamplePolygon.objects.filter(
            sample__block=block, created_by__in=[first, second]
        ).values_list("sample__source_id", "created_by_id", "geometry"):
            polygons[(p[0], p[1])].append(p[2])
        source_ids = {s for s, _ in verdicts} | {s for s, _ in polygons}
        for source in ImagerySource.objects.filter(pk__in=source_ids).order_by("slug"):
            iou = None
            if polygons[(source.pk, first.pk)] or polygons[(source.pk, second.pk)]:
                iou = polygon_iou(
                    _union(polygons[(source.pk, first.pk)]),
                    _union(polygons[(source.pk, second.pk)]),
                )
            va = verdicts.get((source.pk, first.pk))
            vb = verdicts.get((source.pk, second.pk))
            verdict_agrees = va == vb if va is not None and vb is not None else None
            if iou is not None:
                ious.append(iou)
            if verdict_agrees is not None:
                compared += 1
                agreed += int(verdict_agrees)
            rows.append(
                {
                    "block": block.pk,
                    "code": block.code,
                    "source": source.slug,
                    "users": [first.get_username(), second.get_username()],
                    "iou": iou,
                    "verdicts": [va, vb],
                    "verdict_agrees": verdict_agrees,
                }
            )
    return {
        "campaign": campaign.slug,
        "blocks": len({r["block"] for r in rows}),
        "mean_iou": sum(ious) / len(ious) if ious else None,
        "verdicts_compared": compared,
        "verdicts_agreed": agreed,
        "verdict_agreement": agreed / compared if compared else None,
        "rows": rows,
    }
