"""Reads for the annotation app: a sample's polygons as GeoJSON, a block's labels and audit log,
assignments, and the agreement of double-annotated blocks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.gis.db.models.functions import AsWKB
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils.translation import gettext

from annotation.geometry import polygon_to_geojson
from annotation.models import (
    AgreementPolygon,
    AgreementSample,
    Assignment,
    AuditEntry,
    CampaignWorkflow,
    CoverageLabel,
    IntegrationLabel,
    Sample,
    SamplePolygon,
    VerdictLabel,
)
from learning.models import BlockPrediction, ModelKind, ModelVersion
from mapping.models import Block, Campaign, ImagerySource


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class SampleCopy:
    """Which copy of a block's sample on a source a read or write addresses: the primary one
    (``annotator`` None: ``Sample``, used for training) or the blind agreement copy of the
    block's second annotator (``AgreementSample``). See ``AgreementSample`` for why."""

    annotator: AbstractBaseUser | None = None

    @property
    def is_agreement(self) -> bool:
        return self.annotator is not None

    @property
    def sample_model(self) -> type[Sample] | type[AgreementSample]:
        return AgreementSample if self.is_agreement else Sample

    @property
    def polygon_model(self) -> type[SamplePolygon] | type[AgreementPolygon]:
        return AgreementPolygon if self.is_agreement else SamplePolygon

    def lookup(self) -> dict[str, Any]:
        """Extra fields that pick this copy's sample row (besides block and source)."""
        return {"annotator": self.annotator} if self.is_agreement else {}

    def object_type(self, what: str) -> str:
        """The audit's object type: ``sample``/``sample_polygon`` or ``agreement_*``."""
        if not self.is_agreement:
            return what
        return "agreement_sample" if what == "sample" else "agreement_polygon"


PRIMARY = SampleCopy()


def _feature(
    *, pk: int, geometry: dict[str, Any], source_slug: str, row: dict[str, Any]
) -> dict[str, Any]:
    """A GeoJSON Feature whose properties carry the polygon's provenance (``row`` holds the
    names ``FEATURE_FIELDS`` reads)."""
    return {
        "type": "Feature",
        "id": pk,
        "geometry": geometry,
        "properties": {
            "subtype": row["subtype"],
            "source": source_slug,
            "created_by": row["created_by__username"],
            "created_at": _iso(row["created_at"]),
            "updated_by": row["updated_by__username"],
            "updated_at": _iso(row["updated_at"]),
            "model_version": row["model_version"],
            "round_number": row["round_number"],
        },
    }


FEATURE_FIELDS = (
    "pk",
    "subtype",
    "created_by__username",
    "created_at",
    "updated_by__username",
    "updated_at",
    "model_version",
    "round_number",
)


def polygon_feature(
    *, polygon: SamplePolygon | AgreementPolygon, source: ImagerySource
) -> dict[str, Any]:
    """A polygon as a GeoJSON Feature whose properties carry its provenance."""
    row = {
        "subtype": polygon.subtype,
        "created_by__username": polygon.created_by.get_username() if polygon.created_by else None,
        "created_at": polygon.created_at,
        "updated_by__username": polygon.updated_by.get_username() if polygon.updated_by else None,
        "updated_at": polygon.updated_at,
        "model_version": polygon.model_version,
        "round_number": polygon.round_number,
    }
    geometry = polygon_to_geojson(shapely.from_wkb(bytes(polygon.geometry.wkb)))
    return _feature(pk=polygon.pk, geometry=geometry, source_slug=source.slug, row=row)


def polygons_to_geojson(wkbs: list[bytes]) -> list[dict[str, Any]]:
    """Many WKB polygons as GeoJSON Polygons, the same as ``polygon_to_geojson`` on each, in a
    few vectorised shapely calls: no model instance and no GEOS object per polygon (a block
    with 2,000 polygons is read in tens of milliseconds, not hundreds; see
    ``bench/bench_workspace.py``)."""
    if not wkbs:
        return []
    geoms = shapely.from_wkb(wkbs)
    rings, owner = shapely.get_rings(geoms, return_index=True)
    ends = np.cumsum(shapely.get_num_coordinates(rings)).tolist()
    coords = shapely.get_coordinates(rings).tolist()
    out: list[dict[str, Any]] = [{"type": "Polygon", "coordinates": []} for _ in wkbs]
    start = 0
    for end, i in zip(ends, owner.tolist(), strict=True):
        out[i]["coordinates"].append(coords[start:end])
        start = end
    return out


def sample_get(
    *, block: Block, source: ImagerySource, copy: SampleCopy = PRIMARY
) -> Sample | AgreementSample | None:
    return copy.sample_model.objects.filter(block=block, source=source, **copy.lookup()).first()


def sample_version(*, block: Block, source: ImagerySource, copy: SampleCopy = PRIMARY) -> int:
    """The version a client must send in If-Match; 0 while the block has no sample."""
    version = (
        copy.sample_model.objects.filter(block=block, source=source, **copy.lookup())
        .values_list("version", flat=True)
        .first()
    )
    return version or 0


def sample_polygon_features(
    *, block: Block, source: ImagerySource, copy: SampleCopy = PRIMARY
) -> list[dict[str, Any]]:
    lookup = {f"sample__{k}": v for k, v in copy.lookup().items()}
    rows = list(
        copy.polygon_model.objects.filter(sample__block=block, sample__source=source, **lookup)
        .order_by("pk")
        .values(*FEATURE_FIELDS, wkb=AsWKB("geometry"))
    )
    geometries = polygons_to_geojson([bytes(r["wkb"]) for r in rows])
    return [
        _feature(pk=r["pk"], geometry=g, source_slug=source.slug, row=r)
        for r, g in zip(rows, geometries, strict=True)
    ]


def sample_feature_collection(
    *, block: Block, source: ImagerySource, copy: SampleCopy = PRIMARY
) -> dict[str, Any]:
    """The block's polygons on one source, with the sample's version, kind and split.

    ``version``, ``kind``, ``split`` and ``agreement`` are foreign members (allowed by RFC 7946);
    a block without a sample has version 0 and kind null. ``agreement`` is true when the reader
    is the block's second annotator and reads their own blind copy.
    """
    sample = sample_get(block=block, source=source, copy=copy)
    return {
        "type": "FeatureCollection",
        "features": sample_polygon_features(block=block, source=source, copy=copy)
        if sample
        else [],
        "block": block.pk,
        "source": source.slug,
        "version": sample.version if sample else 0,
        "kind": sample.kind if sample else None,
        "split": getattr(sample, "split", None),
        "agreement": copy.is_agreement,
    }


@dataclass(frozen=True)
class AuditFilter:
    """What an annotator may see of a block's audit log: not other people's verdicts and
    coverage types, not someone else's agreement copy, and, for the block's second annotator
    (``second``), not the primary sample either (they label blind)."""

    user: AbstractBaseUser
    second: bool


PERSONAL_OBJECTS = ("verdict_label", "coverage_label", "agreement_sample", "agreement_polygon")
PRIMARY_OBJECTS = ("sample", "sample_polygon")


def audit_list_for_block(
    *, block: Block, source_slug: str | None = None, only: AuditFilter | None = None
) -> QuerySet[AuditEntry]:
    """Newest first."""
    qs = AuditEntry.objects.filter(block=block).select_related("source")
    if source_slug:
        qs = qs.filter(source__slug=source_slug)
    if only is not None:
        qs = qs.exclude(Q(object_type__in=PERSONAL_OBJECTS) & ~Q(user_id=only.user.pk))
        if only.second:
            qs = qs.exclude(object_type__in=PRIMARY_OBJECTS)
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


def _union(geometries: list[bytes]) -> Any:
    return shapely.union_all([shapely.from_wkb(g) for g in geometries])


def polygon_iou(a: Any, b: Any) -> float | None:
    """Intersection over union of two (multi)polygons; None when both are empty.

    Computed on longitude/latitude: within one 0.05 degree block the scale is the same for both,
    so the ratio is what it would be in metres."""
    union = shapely.union(a, b).area
    if union == 0:
        return None
    return float(shapely.intersection(a, b).area / union)


def _pairs(*, campaign: Campaign) -> dict[int, tuple[Assignment | None, Assignment]]:
    """Every double-annotated block of the campaign: its primary and its second assignment
    (the latest of each kind; the primary may be missing if it was deleted)."""
    primary: dict[int, Assignment] = {}
    second: dict[int, Assignment] = {}
    for a in (
        Assignment.objects.filter(block__campaign=campaign)
        .select_related("user", "block")
        .order_by("pk")
    ):
        (second if a.agreement else primary)[a.block_id] = a
    return {b: (primary.get(b), a) for b, a in second.items()}


def _name(a: Assignment | None) -> str | None:
    return a.user.get_username() if a is not None else None


def campaign_agreement(*, campaign: Campaign) -> dict[str, Any]:
    """Agreement of the campaign's double-annotated blocks, per block and source.

    The two sides are the block's primary sample (``Sample``: the primary annotator's work, as
    the reviewers left it) and the second annotator's blind copy (``AgreementSample``). For each
    block and source either side labelled: the IoU of their cropland (the union of each side's
    polygons; 0 when only one side drew, null when neither did), each side's sample kind, and
    whether the two people's verdicts agree (null until both gave one). Totals: mean IoU over
    the rows that have one, verdict agreement over the rows with both verdicts, and the same
    per source.
    """
    pairs = _pairs(campaign=campaign)
    block_ids = sorted(pairs)
    kinds: dict[tuple[int, int, int], str] = {}  # (block, source, side) -> kind
    geoms: dict[tuple[int, int, int], list[bytes]] = defaultdict(list)
    for b, src, kind in Sample.objects.filter(block_id__in=block_ids).values_list(
        "block_id", "source_id", "kind"
    ):
        kinds[(b, src, 0)] = kind
    for b, src, kind, annotator in AgreementSample.objects.filter(
        block_id__in=block_ids
    ).values_list("block_id", "source_id", "kind", "annotator_id"):
        if pairs[b][1].user_id == annotator:
            kinds[(b, src, 1)] = kind
    for b, src, geom in SamplePolygon.objects.filter(sample__block_id__in=block_ids).values_list(
        "sample__block_id", "sample__source_id", "geometry"
    ):
        geoms[(b, src, 0)].append(bytes(geom.wkb))
    for b, src, annotator, geom in AgreementPolygon.objects.filter(
        sample__block_id__in=block_ids
    ).values_list("sample__block_id", "sample__source_id", "sample__annotator_id", "geometry"):
        if pairs[b][1].user_id == annotator:
            geoms[(b, src, 1)].append(bytes(geom.wkb))
    verdicts: dict[tuple[int, int, int], str] = {}
    for b, src, user_id, verdict in VerdictLabel.objects.filter(block_id__in=block_ids).values_list(
        "block_id", "source_id", "user_id", "verdict"
    ):
        first, second = pairs[b]
        for side, a in enumerate((first, second)):
            if a is not None and a.user_id == user_id:
                verdicts[(b, src, side)] = verdict
    slugs = dict(ImagerySource.objects.values_list("pk", "slug"))
    touched = sorted(
        {(b, src) for b, src, _ in [*kinds, *geoms, *verdicts]},
        key=lambda k: (k[0], slugs[k[1]]),
    )
    rows = []
    for b, src in touched:
        first, second = pairs[b]
        iou = None
        if geoms[(b, src, 0)] or geoms[(b, src, 1)]:
            iou = polygon_iou(_union(geoms[(b, src, 0)]), _union(geoms[(b, src, 1)]))
        va, vb = verdicts.get((b, src, 0)), verdicts.get((b, src, 1))
        rows.append(
            {
                "block": b,
                "code": second.block.code,
                "source": slugs[src],
                "users": [_name(first), _name(second)],
                "statuses": [first.status if first else None, second.status],
                "kinds": [kinds.get((b, src, 0)), kinds.get((b, src, 1))],
                "iou": iou,
                "verdicts": [va, vb],
                "verdict_agrees": va == vb if va is not None and vb is not None else None,
            }
        )
    by_source = {
        slug: _agreement_totals([r for r in rows if r["source"] == slug])
        for slug in sorted({r["source"] for r in rows})
    }
    return {
        "campaign": campaign.slug,
        "blocks": len(pairs),
        **_agreement_totals(rows),
        "by_source": by_source,
        "rows": rows,
    }


def _agreement_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ious = [r["iou"] for r in rows if r["iou"] is not None]
    compared = [r["verdict_agrees"] for r in rows if r["verdict_agrees"] is not None]
    agreed = sum(1 for v in compared if v)
    return {
        "rows_compared": len(ious),
        "mean_iou": sum(ious) / len(ious) if ious else None,
        "verdicts_compared": len(compared),
        "verdicts_agreed": agreed,
        "verdict_agreement": agreed / len(compared) if compared else None,
    }


# --- the campaign overview map ------------------------------------------------------------------

UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class OverviewFilter:
    """What the overview map shows. ``only_user``: an annotator's view (their blocks, their own
    verdicts and status); None: a lead's or admin's (every block of the campaign)."""

    only_user: AbstractBaseUser | None = None
    province: int | None = None
    status: str | None = None
    verdict: str | None = None
    source: str | None = None
    assignee: str | None = None
    rows: range | None = None
    cols: range | None = None
    limit: int = 5000


def _latest_verdicts(*, only_user: AbstractBaseUser | None) -> QuerySet[VerdictLabel]:
    """Verdict labels that are the newest on their block and source (of ``only_user``, if
    given: an annotator must not see other people's verdicts)."""
    labels = VerdictLabel.objects.all()
    if only_user is not None:
        labels = labels.filter(user=only_user)
    newer = labels.filter(block_id=OuterRef("block_id"), source_id=OuterRef("source_id")).filter(
        Q(updated_at__gt=OuterRef("updated_at"))
        | Q(updated_at=OuterRef("updated_at"), pk__gt=OuterRef("pk"))
    )
    return labels.exclude(Exists(newer))


def campaign_overview_blocks(*, campaign: Campaign, f: OverviewFilter) -> dict[str, Any]:
    """The campaign's blocks as a GeoJSON FeatureCollection for the overview map, with each
    block's work status (of its primary assignment; of the annotator's own for an annotator;
    ``unassigned`` when nobody has it), assignees, the newest verdict per source, province and
    county; filtered in the database, in seed order, at most ``f.limit`` (``truncated`` says
    whether there were more)."""
    qs = Block.objects.filter(campaign=campaign)
    mine = Assignment.objects.filter(block_id=OuterRef("pk"))
    if f.only_user is not None:
        mine = mine.filter(user=f.only_user)
        qs = qs.filter(Exists(mine))
    else:
        mine = mine.filter(agreement=False)
    if f.province is not None:
        qs = qs.filter(province__adcode=f.province)
    if f.rows is not None and f.cols is not None:
        qs = qs.filter(
            row__gte=f.rows.start, row__lt=f.rows.stop, col__gte=f.cols.start, col__lt=f.cols.stop
        )
    if f.assignee:
        qs = qs.filter(
            Exists(Assignment.objects.filter(block_id=OuterRef("pk"), user__username=f.assignee))
        )
    if f.status == UNASSIGNED:
        qs = qs.exclude(Exists(mine))
    elif f.status:
        qs = qs.filter(Exists(mine.filter(status=f.status)))
    latest = _latest_verdicts(only_user=f.only_user)
    if f.verdict:
        wanted = latest.filter(block_id=OuterRef("pk"), verdict=f.verdict)
        if f.source:
            wanted = wanted.filter(source__slug=f.source)
        qs = qs.filter(Exists(wanted))
    rows = list(
        qs.select_related("province", "county")
        .order_by(F("seed_order").asc(nulls_last=True), "row", "col")
        .values(
            "pk",
            "row",
            "col",
            "geometry",
            "seed_order",
            "province__adcode",
            "province__name_zh",
            "province__name_en",
            "county__name_zh",
        )[: f.limit + 1]
    )
    truncated = len(rows) > f.limit
    rows = rows[: f.limit]
    ids = [r["pk"] for r in rows]
    status: dict[int, str] = {}
    people: dict[int, list[str]] = defaultdict(list)
    agreement: set[int] = set()
    assignments = Assignment.objects.filter(block_id__in=ids).order_by("pk")
    for block_id, user_id, username, st, is_second in assignments.values_list(
        "block_id", "user_id", "user__username", "status", "agreement"
    ):
        if f.only_user is not None:
            if user_id == f.only_user.pk:
                status[block_id] = st
            continue  # an annotator does not learn who else works on the block
        if username not in people[block_id]:
            people[block_id].append(username)
        if is_second:
            agreement.add(block_id)
        else:
            status[block_id] = st
    verdicts: dict[int, dict[str, str]] = defaultdict(dict)
    for block_id, slug, verdict in latest.filter(block_id__in=ids).values_list(
        "block_id", "source__slug", "verdict"
    ):
        verdicts[block_id][slug] = verdict
    # One vectorised shapely call for every block's bounds: GEOSGeometry.extent, one at a time,
    # was four fifths of the time this selector took for 2,000 blocks.
    extents = shapely.bounds(shapely.from_wkb([bytes(r["geometry"].wkb) for r in rows])).tolist()
    features = []
    for r, (west, south, east, north) in zip(rows, extents, strict=True):
        features.append(
            {
                "type": "Feature",
                "id": r["pk"],
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[west, south], [east, south], [east, north], [west, north], [west, south]]
                    ],
                },
                "properties": {
                    "code": f"R{r['row']:04d}C{r['col']:04d}",
                    "province": r["province__adcode"],
                    "province_name": r["province__name_zh"] or "",
                    "province_name_en": r["province__name_en"] or "",
                    "county": r["county__name_zh"] or "",
                    "seed_order": r["seed_order"],
                    "status": status.get(r["pk"], UNASSIGNED),
                    "assignees": people.get(r["pk"], []),
                    "agreement": r["pk"] in agreement,
                    "verdicts": verdicts.get(r["pk"], {}),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features, "truncated": truncated}


# --- the current prediction of a block -------------------------------------------------


class PredictionMissing(Exception):
    """There is nothing to show; the message says why, in words an interpreter understands."""


@dataclass(frozen=True)
class CurrentPrediction:
    prediction: BlockPrediction
    model_version: ModelVersion
    round_number: int | None


def block_prediction_current(*, block: Block, source: ImagerySource) -> CurrentPrediction:
    """The prediction of the campaign's current segmenter for the block on the source.

    Read by the prediction endpoint and by verdicts (their provenance).
    """
    current = (
        ModelVersion.objects.filter(
            campaign_id=block.campaign_id, kind=ModelKind.SEGMENTER, is_current=True
        )
        .select_related("round")
        .first()
    )
    if current is None:
        raise PredictionMissing(
            gettext(
                "no current segmenter model in this campaign yet: "
                "predictions appear after the first learning round"
            )
        )
    prediction = (
        BlockPrediction.objects.filter(block=block, source=source, model_version=current)
        .select_related("round")
        .first()
    )
    if prediction is None:
        raise PredictionMissing(
            gettext(
                "the current segmenter (%(model)s) has no prediction for this block on %(source)s"
            )
            % {"model": current.name, "source": source.slug}
        )
    if prediction.geometry is None and prediction.cropland_fraction > 0:
        raise PredictionMissing(
            gettext(
                "the prediction of %(model)s on %(source)s has no polygons yet "
                "(its mask was not turned into polygons)"
            )
            % {"model": current.name, "source": source.slug}
        )
    made_in = prediction.round or current.round
    return CurrentPrediction(
        prediction=prediction,
        model_version=current,
        round_number=made_in.number if made_in is not None else None,
    )


class ProvenanceUnknown(ValueError):
    """The browser names a model version that made no prediction of the block (on the source)."""


def prediction_provenance(
    *, block: Block, source: ImagerySource | None, claimed: str = ""
) -> tuple[str, int | None]:
    """The model version and round a polygon or label was made against, decided here and not
    taken on the browser's word.

    ``claimed`` is the version whose prediction the browser says it showed (e.g. polygons made
    with "start from the prediction", or queued offline before a new round): it must have made
    a prediction of this block (on ``source``; on any source when None), else ProvenanceUnknown.
    Without a claim: the block's current prediction on the source (the first source that has
    one when None); ("", None) when the block has none.
    """
    if claimed:
        found = (
            BlockPrediction.objects.filter(
                block=block,
                model_version__campaign_id=block.campaign_id,
                model_version__kind=ModelKind.SEGMENTER,
                model_version__name=claimed,
                **({"source": source} if source is not None else {}),
            )
            .select_related("round", "model_version__round")
            .first()
        )
        if found is None:
            where = f" on {source.slug}" if source is not None else ""
            raise ProvenanceUnknown(
                f"model {claimed!r} made no prediction of this block{where}: "
                "reload the block to see its current prediction"
            )
        made_in = found.round or found.model_version.round
        return claimed, made_in.number if made_in is not None else None
    sources = (
        [source]
        if source is not None
        else list(ImagerySource.objects.filter(predictions__block=block).distinct().order_by("pk"))
    )
    for s in sources:
        try:
            current = block_prediction_current(block=block, source=s)
        except PredictionMissing:
            continue
        return current.model_version.name, current.round_number
    return "", None
