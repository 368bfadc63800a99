"""The evaluating stage: per province, pixel IoU on held-out samples, correctness, mapped
area against the official figure, and the stopping rules' decision.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

import numpy as np
import shapely
from django.db.models import Count, Q, Sum
from django.utils import timezone

from annotation.models import VerdictLabel
from learning.core.intervals import bootstrap_iou_interval, wilson_interval
from learning.core.segmentation.data import rasterize_polygons
from learning.core.segmentation.metrics import IoUCounts, iou_counts
from learning.core.stopping import Decision, ProvinceMeasurements, province_stop_check
from learning.models import (
    BlockPrediction,
    BlockScore,
    ModelVersion,
    ProvinceDecision,
    ProvinceRoundResult,
    ProvinceStatus,
    Round,
    RoundState,
    SystematicSampleBlock,
)
from learning.services.config import round_config_parse
from learning.services.data import json_safe, read_prediction, validation_samples
from learning.services.round.machine import round_get, stage_enter
from learning.services.round.progress import round_log, round_timing_add
from mapping.services.area_reference import area_reference

# Fewer verdicts than this on a province's systematic blocks say too little on their own.
SYSTEMATIC_MIN_VERDICTS = 10


def _source_area(slug: str) -> str | None:
    s = slug.lower()
    return "mapbox" if "mapbox" in s else "google" if "google" in s else None


def round_evaluate_run(*, round_id: int) -> None:
    """Per province: pixel IoU on held-out samples, correctness, area per source vs official,
    the stopping rules; writes ProvinceRoundResult and ProvinceStatus (idempotent)."""
    rnd = round_get(round_id)
    if rnd.state != RoundState.EVALUATING:
        return
    cfg = round_config_parse(rnd.config)
    rules = cfg.rules
    seg_mv = ModelVersion.objects.get(pk=rnd.checkpoint["segmenter"])
    t0 = time.monotonic()
    per_province_iou: dict[str, Any] = {}
    overall = IoUCounts(0, 0, 0, 0)
    for i, province in enumerate(rnd.provinces.all().order_by("adcode")):
        counts = IoUCounts(0, 0, 0, 0)
        n_iou = 0
        per_block: dict[int, IoUCounts] = defaultdict(lambda: IoUCounts(0, 0, 0, 0))
        for sample in validation_samples(campaign_id=rnd.campaign_id, province_id=province.pk):
            pred = BlockPrediction.objects.filter(
                block=sample.block, source=sample.source, model_version=seg_mv
            ).first()
            if pred is None:
                continue
            mask, _, transform = read_prediction(pred.mask_path)
            polys = [shapely.from_wkb(bytes(p.geometry.wkb)) for p in sample.polygons.all()]
            truth = rasterize_polygons(polys, transform=transform, shape=mask.shape)
            c = iou_counts(mask, truth)
            counts = counts + c
            per_block[sample.block_id] = per_block[sample.block_id] + c
            n_iou += 1
        overall = overall + counts
        iou = None if n_iou == 0 or np.isnan(counts.iou) else float(counts.iou)
        if n_iou and iou is None:
            iou = 1.0  # no cropland in truth or prediction on any held-out block: all correct
        correctness, n_corr, corr_how, judged = _correctness(
            rnd=rnd, province_id=province.pk, segmenter=seg_mv.name
        )
        # The official figure for the land the campaign covers, and the mapped area of the
        # same land (mapping/services/area_reference.py).
        ref = area_reference(campaign=rnd.campaign, province=province)
        areas, has = _province_areas(rnd=rnd, seg=seg_mv, province=province, ref=ref)
        used = ProvinceRoundResult.objects.filter(
            province=province, round__campaign_id=rnd.campaign_id, round__number__lt=rnd.number
        ).count()
        m = ProvinceMeasurements(
            province=str(province.adcode),
            iou=iou,
            iou_samples=n_iou,
            correctness=correctness,
            correctness_samples=n_corr,
            area_mapbox_ha=areas["mapbox"] if "mapbox" in has else None,
            area_google_ha=areas["google"] if "google" in has else None,
            official_area_ha=ref.official_ha if ref.official_ha else None,
            official_status=ref.status or None,
            official_scope=ref.scope,
            coverage_share=ref.coverage_share,
            supplementary_rounds=used,
        )
        decision = province_stop_check(m, rules)
        outcome = {
            Decision.CONVERGED: ProvinceDecision.CONVERGED,
            Decision.EXHAUSTED: ProvinceDecision.EXCLUDED,
            Decision.CONTINUE: ProvinceDecision.CONTINUE,
        }[decision.decision]
        reasons = {c["name"]: c for c in decision.to_dict()["criteria"]}  # type: ignore[union-attr]
        reasons["correctness"]["basis"] = corr_how
        reasons["correctness"]["judged"] = judged
        reasons["area"]["reference"] = ref.as_dict()
        # 95 % intervals beside the numbers: blocks resampled for IoU, Wilson for correctness.
        iou_ci = bootstrap_iou_interval(
            [(b.tp, b.fp, b.fn) for _, b in sorted(per_block.items())], seed=cfg.seed
        )
        corr_ci = (
            wilson_interval(int(round(correctness * n_corr)), n_corr)
            if correctness is not None and n_corr
            else None
        )
        reasons["iou"]["ci"] = list(iou_ci) if iou_ci else None
        reasons["iou"]["blocks"] = len(per_block)
        reasons["correctness"]["ci"] = list(corr_ci) if corr_ci else None
        result, _ = ProvinceRoundResult.objects.update_or_create(
            round=rnd,
            province=province,
            defaults=dict(
                iou=iou,
                iou_samples=n_iou,
                correctness=correctness,
                correctness_samples=n_corr,
                area_mapbox_ha=m.area_mapbox_ha,
                area_google_ha=m.area_google_ha,
                official_ha=m.official_area_ha,
                official_status=ref.status,
                supplementary_rounds=used,
                decision=outcome,
                reasons=json_safe(reasons),
                thresholds=json_safe(json.loads(rules.model_dump_json())),
            ),
        )
        ProvinceStatus.objects.update_or_create(
            campaign_id=rnd.campaign_id,
            province=province,
            defaults=dict(
                decision=outcome,
                supplementary_rounds=used,
                reason=decision.reason,
                last_result=result,
            ),
        )
        per_province_iou[str(province.adcode)] = {"iou": iou, "samples": n_iou, **counts.as_dict()}
        Round.objects.filter(pk=round_id).update(stage_done=i + 1, heartbeat_at=timezone.now())
        round_log(
            rnd=round_id,
            message=f"{province.name_en or province.name_zh}: {outcome} ({decision.reason})",
        )
    metrics = dict(seg_mv.metrics)
    metrics["iou_per_province"] = json_safe(per_province_iou)
    scored_any = overall.tp + overall.fp + overall.fn > 0
    metrics["iou_overall"] = json_safe(overall.iou) if scored_any else None
    ModelVersion.objects.filter(pk=seg_mv.pk).update(metrics=metrics)
    round_timing_add(round_id=round_id, stage=RoundState.EVALUATING, seconds=time.monotonic() - t0)
    stage_enter(
        round_id=round_id,
        from_state=RoundState.EVALUATING,
        total=rnd.provinces.count(),
        message="selecting the next blocks",
    )


def _province_areas(
    *, rnd: Round, seg: ModelVersion, province: Any, ref: Any
) -> tuple[dict[str, float], set[str]]:
    """The round's mapped cropland area of the province per source kind (mapbox, google), over
    the land its official figure counts: one SQL sum per source, not a loop over blocks."""
    mapped = BlockPrediction.objects.filter(round=rnd, model_version=seg, block__province=province)
    if ref.county_ids is not None:
        mapped = mapped.filter(block__county_id__in=ref.county_ids)
    areas: dict[str, float] = defaultdict(float)
    has: set[str] = set()
    for slug, area in (
        mapped.values_list("source__slug").annotate(area=Sum("cropland_area_ha")).order_by()
    ):
        key = _source_area(slug)
        if key:
            areas[key] += float(area)
            has.add(key)
    return areas, has


def _share(qs: Any, hit: Any) -> tuple[int, int]:
    """How many rows of ``qs`` there are and how many match ``hit`` (one SQL aggregate)."""
    agg = qs.aggregate(n=Count("id"), hit=Count("id", filter=Q(hit)))
    return int(agg["n"]), int(agg["hit"])


def _judged(verdicts: Any) -> list[dict[str, Any]]:
    """Which predictions the verdicts judged: per round and model version of the judged
    prediction (each verdict records them), with the number of verdicts on each."""
    rows = (
        verdicts.order_by()
        .values("round_number", "model_version")
        .annotate(n=Count("id"))
        .order_by("round_number", "model_version")
    )
    return [{"round": r["round_number"], "model": r["model_version"], "n": r["n"]} for r in rows]


def _correctness(
    *, rnd: Round, province_id: int, segmenter: str
) -> tuple[float | None, int, str, list[dict[str, Any]]]:
    """Share of the province's predictions judged correct, how it was measured, and which
    predictions it judged (round, model version, count).

    First choice: the interpreters' verdicts on the province's blocks of the systematic
    validation sample (an unbiased sample, judged by people: the paper's measure), once it has
    ``SYSTEMATIC_MIN_VERDICTS``; then the correctness model over every predicted block; then
    the verdicts on any of the province's blocks (biased towards the blocks chosen to label).
    Verdicts are given before a round starts, so they judge an earlier round's predictions
    (round N's correctness is round N-1's model's, as the dashboard says); the correctness
    model judges this round's predictions (``segmenter``).
    """
    sample = VerdictLabel.objects.filter(
        block__campaign_id=rnd.campaign_id,
        block__province_id=province_id,
        block__in=SystematicSampleBlock.objects.filter(campaign_id=rnd.campaign_id).values(
            "block_id"
        ),
    )
    n, tp = _share(sample, Q(verdict="tp"))
    if n >= SYSTEMATIC_MIN_VERDICTS:
        return tp / n, n, "systematic sample verdicts", _judged(sample)
    n, right = _share(
        BlockScore.objects.filter(
            prediction__round=rnd, prediction__block__province_id=province_id
        ).exclude(p_incorrect=None),
        Q(p_incorrect__lt=0.5),
    )
    if n:
        return right / n, n, "predicted", [{"round": rnd.number, "model": segmenter, "n": n}]
    anywhere = VerdictLabel.objects.filter(
        block__campaign_id=rnd.campaign_id, block__province_id=province_id
    )
    n, tp = _share(anywhere, Q(verdict="tp"))
    if n:
        return tp / n, n, "verdicts", _judged(anywhere)
    return None, 0, "none", []
