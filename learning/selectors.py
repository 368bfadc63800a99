"""Reads of the learning app: rounds, model versions, the queue's selection, stop status."""

from __future__ import annotations

from typing import Any

from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Value

from learning.models import (
    BlockSelection,
    ModelKind,
    ModelVersion,
    Round,
    RoundState,
)
from learning.services.round.progress import round_event
from mapping.models import Campaign


def latest_selection_round_id(*, campaign: Campaign) -> int | None:
    """The newest finished round of the campaign that selected blocks."""
    return (
        Round.objects.filter(campaign=campaign, state=RoundState.DONE, selections__isnull=False)
        .order_by("-number")
        .values_list("pk", flat=True)
        .first()
    )


def selection_rank_subquery(*, campaign: Campaign, block_ref: str = "pk") -> Any:
    """An expression for querysets of blocks (``block_ref="pk"``) or of rows naming a block
    (``block_ref="block_id"``): the block's rank in the latest selection (None when the block
    was not selected), for the annotators' queue."""
    round_id = latest_selection_round_id(campaign=campaign)
    if round_id is None:
        return Value(None, output_field=IntegerField())
    return Subquery(
        BlockSelection.objects.filter(round_id=round_id, block=OuterRef(block_ref)).values(
            "rank"
        )[:1],
        output_field=IntegerField(),
    )


def rounds_list(*, campaign: Campaign) -> QuerySet[Round]:
    return Round.objects.filter(campaign=campaign).order_by("-number")


def round_get(*, campaign: Campaign, number: int) -> Round | None:
    return Round.objects.filter(campaign=campaign, number=number).first()


def round_data(rnd: Round) -> dict[str, Any]:
    """What the API and the command show about a round (the live event plus its record)."""
    event = round_event(rnd=rnd)
    event.pop("type", None)
    return {
        **event,
        "campaign": rnd.campaign.slug,
        "provinces": sorted(rnd.provinces.values_list("adcode", flat=True)),
        "config": rnd.config,
        "requested_by": rnd.requested_by.get_username() if rnd.requested_by else None,
        "created_at": rnd.created_at.isoformat(),
        "started_at": rnd.started_at.isoformat() if rnd.started_at else None,
        "finished_at": rnd.finished_at.isoformat() if rnd.finished_at else None,
        "timings": rnd.timings,
        "log": rnd.log,
        "cancel_requested": rnd.cancel_requested,
        "model_versions": [
            {"id": mv.pk, "kind": mv.kind, "name": mv.name, "is_current": mv.is_current}
            for mv in rnd.model_versions.order_by("kind")
        ],
        "selected_blocks": rnd.selections.count(),
        "group": rnd.group,
        # h3b's consumer: checks that the user may watch the round (leads and admins).
        "websocket": f"/ws/rounds/{rnd.pk}/",
    }


def model_versions_list(*, campaign: Campaign, kind: str | None = None) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.filter(campaign=campaign).select_related("round")
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-created_at", "-pk")


def model_version_engine(mv: ModelVersion) -> str | None:
    """The segmentation engine of a segmenter version (versions made before engines were
    recorded are Mask2Former); None for other kinds."""
    if mv.kind != ModelKind.SEGMENTER:
        return None
    return str((mv.config or {}).get("engine") or "mask2former")


def model_version_data(mv: ModelVersion) -> dict[str, Any]:
    return {
        "id": mv.pk,
        "kind": mv.kind,
        "engine": model_version_engine(mv),
        "name": mv.name,
        "is_current": mv.is_current,
        "bundle_path": mv.bundle_path,
        "metrics": mv.metrics,
        "config": mv.config,
        "training_samples": len(mv.training_samples or []),
        "train_seconds": mv.train_seconds,
        "round": mv.round.number if mv.round else None,
        "created_at": mv.created_at.isoformat(),
    }


def stop_status(*, campaign: Campaign) -> dict[str, Any]:
    """Each province's latest numbers and decision for ``stop_status --json`` and its API: the
    dashboard's own rows (``learning.dashboard.province_rows``), so the two cannot disagree."""
    from learning.dashboard import dashboard_thresholds, province_rows

    latest_round = Round.objects.filter(campaign=campaign).order_by("-number").first()
    return {
        "campaign": campaign.slug,
        "thresholds": dashboard_thresholds(campaign=campaign),
        "latest_round": latest_round.number if latest_round else None,
        "provinces": sorted(province_rows(campaign=campaign), key=lambda r: r["adcode"]),
    }
