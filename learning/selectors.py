"""Reads of the learning app: rounds, model versions, the queue's selection, stop status."""

from __future__ import annotations

from typing import Any

from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Value

from learning.core.stopping import StoppingRules
from learning.models import (
    BlockSelection,
    ModelVersion,
    ProvinceRoundResult,
    ProvinceStatus,
    Round,
    RoundState,
)
from learning.services.config import round_config_parse
from learning.services.rounds import campaign_provinces, round_event
from mapping.models import Campaign


def latest_selection_round_id(*, campaign: Campaign) -> int | None:
    """The newest finished round of the campaign that selected blocks."""
    return (
        Round.objects.filter(campaign=campaign, state=RoundState.DONE, selections__isnull=False)
        .order_by("-number")
        .values_list("pk", flat=True)
        .first()
    )


def selection_rank_subquery(*, campaign: Campaign) -> Any:
    """An expression for ``Block`` querysets: the block's rank in the latest selection (None
    when the block was not selected), for the annotators' self-claim queue."""
    round_id = latest_selection_round_id(campaign=campaign)
    if round_id is None:
        return Value(None, output_field=IntegerField())
    return Subquery(
        BlockSelection.objects.filter(round_id=round_id, block=OuterRef("pk")).values("rank")[:1],
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


def model_version_data(mv: ModelVersion) -> dict[str, Any]:
    return {
        "id": mv.pk,
        "kind": mv.kind,
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


def _pct(area: float | None, official: float | None) -> float | None:
    if area is None or not official:
        return None
    return round(100.0 * area / official, 2)


def stop_status(*, campaign: Campaign) -> dict[str, Any]:
    """Each province's latest numbers and decision: the dashboard's table and
    ``stop_status --json`` (IoU with sample count, correctness with count, area % per source
    of the official figure and its status, rounds used, decision, reason per criterion)."""
    latest_round = Round.objects.filter(campaign=campaign).order_by("-number").first()
    rules = (
        round_config_parse(latest_round.config).rules if latest_round else StoppingRules()
    )
    statuses = {
        s.province_id: s
        for s in ProvinceStatus.objects.filter(campaign=campaign).select_related(
            "last_result", "last_result__round"
        )
    }
    rows = []
    for prov in sorted(campaign_provinces(campaign=campaign), key=lambda p: p.adcode):
        st = statuses.get(prov.pk)
        r: ProvinceRoundResult | None = st.last_result if st else None
        rows.append(
            {
                "adcode": prov.adcode,
                "province": prov.name_en or prov.name_zh,
                "province_zh": prov.name_zh,
                "round": r.round.number if r else None,
                "iou": r.iou if r else None,
                "iou_samples": r.iou_samples if r else 0,
                "correctness": r.correctness if r else None,
                "correctness_samples": r.correctness_samples if r else 0,
                "area_mapbox_ha": r.area_mapbox_ha if r else None,
                "area_google_ha": r.area_google_ha if r else None,
                "official_ha": r.official_ha if r else None,
                "area_mapbox_pct": _pct(r.area_mapbox_ha, r.official_ha) if r else None,
                "area_google_pct": _pct(r.area_google_ha, r.official_ha) if r else None,
                "official_status": r.official_status if r else None,
                "official_unverified": bool(r and r.official_status not in
                                            ("VERIFIED", "VERIFIED_ROUNDED")),
                "supplementary_rounds": st.supplementary_rounds if st else 0,
                "max_supplementary_rounds": rules.max_supplementary_rounds,
                "decision": st.decision if st else "continue",
                "reason": st.reason if st else "not evaluated yet",
                "criteria": r.reasons if r else {},
            }
        )
    return {
        "campaign": campaign.slug,
        "thresholds": {
            "iou_min": rules.iou_min,
            "correctness_min": rules.correctness_min,
            "area_ratio_min": rules.area_ratio_min,
            "max_supplementary_rounds": rules.max_supplementary_rounds,
        },
        "latest_round": latest_round.number if latest_round else None,
        "provinces": rows,
    }


def province_history(*, campaign: Campaign, adcode: int) -> list[dict[str, Any]]:
    """One province's results across rounds (for charts and the decision log)."""
    return [
        {
            "round": r.round.number,
            "iou": r.iou,
            "iou_samples": r.iou_samples,
            "correctness": r.correctness,
            "correctness_samples": r.correctness_samples,
            "area_mapbox_pct": _pct(r.area_mapbox_ha, r.official_ha),
            "area_google_pct": _pct(r.area_google_ha, r.official_ha),
            "decision": r.decision,
            "reasons": r.reasons,
            "created_at": r.created_at.isoformat(),
        }
        for r in ProvinceRoundResult.objects.filter(
            round__campaign=campaign, province__adcode=adcode
        )
        .select_related("round")
        .order_by("round__number")
    ]
