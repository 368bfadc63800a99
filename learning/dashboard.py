"""Read-only selectors for the per-province stopping dashboard and its CSV/JSON export.

Every number on the dashboard comes from here: the page, the JSON and CSV exports (and
``stop_status --json`` where its shape allows) read the same rows, so they cannot disagree.
The rows are what the rounds recorded (:class:`ProvinceRoundResult`) and where each province
stands (:class:`ProvinceStatus`); nothing is recomputed here except percentages.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.gis.geos import MultiPolygon
from django.core.cache import cache
from django.db.models import Count, Max, Q, Sum
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rasterio.enums import Resampling

from annotation.models import Sample, SamplePolygon, SampleSplit
from learning.core.savings import (
    LabelledBlock,
    Method,
    annotation_savings,
    block_pixels,
    selection_curves,
)
from learning.core.segmentation.data import rasterize_polygons
from learning.core.stopping import (
    CRITERION_NAMES,
    OUTCOME_NAMES,
    Decision,
    Outcome,
    StoppingRules,
    decision_phrase,
)
from learning.models import (
    ModelKind,
    ModelVersion,
    ProvinceDecision,
    ProvinceRoundResult,
    ProvinceStatus,
    Round,
    RoundState,
)
from mapping.models import (
    AdminLevel,
    AdminUnit,
    Block,
    BlockImage,
    BlockImageStatus,
    Campaign,
    ImagerySource,
    OfficialStatistic,
)
from mapping.phrase import Phrase

User = AbstractBaseUser | AnonymousUser
CRITERIA = ("iou", "correctness", "area")
# A figure that could be traced to the survey (exactly or as a rounded figure) is "verified";
# every other status is marked on the dashboard.
VERIFIED_STATUSES = ("VERIFIED", "VERIFIED_ROUNDED")
PAPER_LABELLED_PERCENT = 0.14  # CropLayer labelled about 0.14 % of all blocks
NOT_EVALUATED = _("not evaluated yet")
# How a province's correctness was measured (a round stores it beside the criterion).
BASIS_LABELS = {
    "predicted": _("predicted by the correctness model"),
    "verdicts": _("from the interpreters' verdicts"),
    "systematic sample verdicts": _("from the interpreters' verdicts on the systematic sample"),
}
NO_BASIS = "none"  # nothing measured it: the reason says so, no basis is shown
OUTCOMES = {o.value for o in Outcome}
# The dashboard's decisions to the stopping rules' (a province "exhausted" is excluded).
CORE_DECISION = {
    ProvinceDecision.CONTINUE.value: Decision.CONTINUE,
    ProvinceDecision.CONVERGED.value: Decision.CONVERGED,
    ProvinceDecision.EXCLUDED.value: Decision.EXHAUSTED,
}


def decision_label(decision: str) -> str:
    """A decision in the reader's language ("not evaluated yet" for none)."""
    if decision in ProvinceDecision.values:
        return str(ProvinceDecision(decision).label)
    return str(NOT_EVALUATED) if decision in ("", "not_evaluated") else decision


def _reason_text(value: dict[str, Any]) -> str:
    """A stored reason in the reader's language: from its phrase when the round stored one
    (rounds since the phrases), else the English text it stored."""
    phrase = Phrase.from_dict(value.get("phrase"))
    if phrase is not None:
        try:
            return phrase.render(gettext)
        except (KeyError, TypeError, ValueError):  # a catalogue entry that lost a parameter
            return phrase.render()
    return str(value.get("reason", ""))

# Columns of the CSV export, in order (the JSON rows carry the same keys plus nested detail).
CSV_COLUMNS = (
    "adcode", "name_zh", "name_en", "round", "decision", "reason",
    "iou", "iou_samples", "iou_outcome", "iou_reason", "iou_min",
    "correctness", "correctness_samples", "correctness_outcome", "correctness_reason",
    "correctness_min",
    "area_mapbox_ha", "area_google_ha", "official_ha", "official_status", "official_verified",
    "area_mapbox_pct", "area_google_pct", "area_ratio", "area_outcome", "area_reason",
    "area_ratio_min",
    "supplementary_rounds", "max_supplementary_rounds",
    "iou_ci_low", "iou_ci_high", "correctness_ci_low", "correctness_ci_high",
    "area_scope", "coverage_share",
)


def dashboard_provinces(*, campaign: Campaign) -> list[AdminUnit]:
    """The campaign's provinces (or those its blocks lie in), plus any that have results."""
    ids = set(campaign.provinces.values_list("pk", flat=True))
    if not ids:
        ids = set(
            Block.objects.filter(campaign=campaign, province__isnull=False)
            .values_list("province_id", flat=True)
            .distinct()
        )
    ids |= set(
        ProvinceRoundResult.objects.filter(round__campaign=campaign).values_list(
            "province_id", flat=True
        )
    )
    ids |= set(
        ProvinceStatus.objects.filter(campaign=campaign).values_list("province_id", flat=True)
    )
    return list(
        AdminUnit.objects.filter(pk__in=ids, level=AdminLevel.PROVINCE)
        .defer("geometry")
        .order_by("adcode")
    )


def _criteria(reasons: Any) -> dict[str, dict[str, Any]]:
    """Per criterion ``{outcome, reason, value, threshold}`` from a result's ``reasons``.

    Accepts the shapes a round may store: ``{"iou": {...}, ...}``, ``{"iou": "text", ...}`` or
    ``StopDecision.to_dict()`` (``{"criteria": [{"name": "iou", ...}, ...]}``).
    """
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(reasons, dict):
        return out
    items: list[tuple[str, Any]] = []
    if isinstance(reasons.get("criteria"), list):
        items = [(c.get("name", ""), c) for c in reasons["criteria"] if isinstance(c, dict)]
    else:
        items = [(k, v) for k, v in reasons.items() if k in CRITERIA]
    for name, value in items:
        if name not in CRITERIA:
            continue
        if isinstance(value, dict):
            outcome = value.get("outcome", "")
            basis = value.get("basis", "") or ""
            out[name] = {
                "outcome": outcome,
                "reason": _reason_text(value),
                "value": value.get("value"),
                "threshold": value.get("threshold"),
                # e.g. correctness "predicted" (by the model) or "verdicts" (by people)
                "basis": basis,
                "label": gettext(CRITERION_NAMES[name]),
                "outcome_label": (
                    gettext(OUTCOME_NAMES[Outcome(outcome)]) if outcome in OUTCOMES else outcome
                ),
                "basis_label": "" if basis == NO_BASIS else str(BASIS_LABELS.get(basis, basis)),
                "phrased": Phrase.from_dict(value.get("phrase")) is not None,
            }
        else:
            out[name] = {"outcome": "", "reason": str(value), "value": None, "threshold": None,
                         "basis": "", "label": gettext(CRITERION_NAMES[name]),
                         "outcome_label": "", "basis_label": "", "phrased": False}
    # The rules' own order, whatever the store did to the keys (PostgreSQL's jsonb sorts them
    # by length: iou, area, correctness), so reasons read the same on every database.
    return {name: out[name] for name in CRITERIA if name in out}


def judged_text(judged: Any, basis: str) -> str:
    """Which predictions a correctness figure judged, in the reader's language: "verdicts on
    round 3's predictions (model seg-r3)". The verdicts are given before round N starts, so a
    round's correctness from verdicts is the previous round's model's ("" if not recorded)."""
    if not isinstance(judged, list) or not judged:
        return ""
    rounds = sorted({j.get("round") for j in judged if isinstance(j, dict)
                     and j.get("round") is not None})
    models = sorted({str(j.get("model")) for j in judged if isinstance(j, dict)
                     and j.get("model")})
    if not rounds:
        return ""
    params = {"rounds": ", ".join(str(r) for r in rounds),
              "models": ", ".join(models) if models else "–"}
    if basis == "predicted":
        if len(rounds) == 1:
            return gettext("predicted on round %(rounds)s's predictions (model %(models)s)"
                           ) % params
        return gettext("predicted on the predictions of rounds %(rounds)s (models %(models)s)"
                       ) % params
    if len(rounds) == 1:
        return gettext("verdicts on round %(rounds)s's predictions (model %(models)s)") % params
    return gettext("verdicts on the predictions of rounds %(rounds)s (models %(models)s)"
                   ) % params


def _decision_reason(result: ProvinceRoundResult, decision: str) -> str:
    """Why the province got ``decision`` in the reader's language, rebuilt from the criteria the
    round stored with their phrases ("" for a round from before the phrases)."""
    crit = _criteria(result.reasons)
    if decision not in CORE_DECISION or not crit or not all(c["phrased"] for c in crit.values()):
        return ""
    open_ = [(n, Outcome(c["outcome"])) for n, c in crit.items()
             if c["outcome"] in OUTCOMES and c["outcome"] != Outcome.PASSED]
    th = _thresholds(result.thresholds)
    return decision_phrase(CORE_DECISION[decision], open_, result.supplementary_rounds,
                           int(th["max_supplementary_rounds"])).render(gettext)


def _thresholds(stored: Any) -> dict[str, Any]:
    """The thresholds the round applied; the default rules fill what it did not store."""
    rules = StoppingRules().model_dump(
        include={"iou_min", "correctness_min", "area_ratio_min", "max_supplementary_rounds"}
    )
    if isinstance(stored, dict):
        rules.update({k: stored[k] for k in rules if stored.get(k) is not None})
    return rules


def _pct(area: float | None, official: float | None) -> float | None:
    if area is None or not official:
        return None
    return 100.0 * area / official


def result_numbers(result: ProvinceRoundResult) -> dict[str, Any]:
    """The numbers of one round's result for one province, as the dashboard shows them."""
    crit = _criteria(result.reasons)
    th = _thresholds(result.thresholds)
    pcts = [
        p for p in (_pct(result.area_mapbox_ha, result.official_ha),
                    _pct(result.area_google_ha, result.official_ha)) if p is not None
    ]
    row: dict[str, Any] = {
        "round": result.round.number,
        "decision": result.decision,
        "iou": result.iou,
        "iou_samples": result.iou_samples,
        "correctness": result.correctness,
        "correctness_samples": result.correctness_samples,
        "area_mapbox_ha": result.area_mapbox_ha,
        "area_google_ha": result.area_google_ha,
        "official_ha": result.official_ha,
        "official_status": result.official_status,
        "area_mapbox_pct": _pct(result.area_mapbox_ha, result.official_ha),
        "area_google_pct": _pct(result.area_google_ha, result.official_ha),
        # The stopping rule takes the better of the two sources.
        "area_ratio": max(pcts) / 100.0 if pcts else None,
        "supplementary_rounds": result.supplementary_rounds,
        "max_supplementary_rounds": th["max_supplementary_rounds"],
        "iou_min": th["iou_min"],
        "correctness_min": th["correctness_min"],
        "area_ratio_min": th["area_ratio_min"],
        "criteria": crit,
    }
    # What the official figure counts (mapping/services/area_reference.py): the province, the
    # counties the campaign covers, or nothing comparable (with the province's coverage share).
    ref = (result.reasons or {}).get("area", {}) if isinstance(result.reasons, dict) else {}
    ref = ref.get("reference") if isinstance(ref, dict) else None
    ref = ref if isinstance(ref, dict) else {}
    row["area_scope"] = ref.get("scope", "province" if result.official_ha else "")
    row["coverage_share"] = ref.get("coverage_share")
    row["coverage_percent"] = (
        100.0 * float(row["coverage_share"]) if row["coverage_share"] is not None else None
    )
    row["area_counties"] = ref.get("counties", [])
    row["area_comparable"] = crit.get("area", {}).get("outcome") != "not_comparable"
    # 95 % confidence intervals the round stored (learning/core/intervals.py).
    for name in ("iou", "correctness"):
        stored = result.reasons.get(name) if isinstance(result.reasons, dict) else None
        ci = stored.get("ci") if isinstance(stored, dict) else None
        ok = isinstance(ci, list) and len(ci) == 2
        row[f"{name}_ci_low"] = float(ci[0]) if ok else None
        row[f"{name}_ci_high"] = float(ci[1]) if ok else None
    stored = result.reasons.get("iou") if isinstance(result.reasons, dict) else None
    row["iou_blocks"] = stored.get("blocks") if isinstance(stored, dict) else None
    # Which predictions the correctness judged (round, model version, count): verdicts judge
    # the predictions shown before this round started, i.e. the previous round's model's.
    stored = result.reasons.get("correctness") if isinstance(result.reasons, dict) else None
    judged = stored.get("judged") if isinstance(stored, dict) else None
    row["correctness_judged"] = judged if isinstance(judged, list) else []
    row["correctness_judged_text"] = judged_text(
        judged, str(stored.get("basis", "")) if isinstance(stored, dict) else ""
    )
    for name in CRITERIA:
        row[f"{name}_outcome"] = crit.get(name, {}).get("outcome", "")
        row[f"{name}_reason"] = crit.get(name, {}).get("reason", "")
    return row


def _empty_numbers() -> dict[str, Any]:
    th = _thresholds(None)
    row: dict[str, Any] = {c: None for c in CSV_COLUMNS}
    row.update({
        "round": None, "decision": "", "iou_samples": 0, "correctness_samples": 0,
        "supplementary_rounds": 0, "criteria": {}, **th,
        "area_scope": "", "coverage_share": None, "coverage_percent": None, "area_counties": [],
        "area_comparable": True, "iou_ci_low": None, "iou_ci_high": None,
        "correctness_ci_low": None, "correctness_ci_high": None, "iou_blocks": None,
        "correctness_judged": [], "correctness_judged_text": "",
    })
    for name in CRITERIA:
        row[f"{name}_outcome"] = row[f"{name}_reason"] = ""
    return row


def _joined_reason(reasons: Any) -> str:
    if isinstance(reasons, dict) and (reasons.get("phrase") or reasons.get("reason")):
        return _reason_text(reasons)
    return "; ".join(c["reason"] for c in _criteria(reasons).values() if c["reason"])


def province_rows(*, campaign: Campaign) -> list[dict[str, Any]]:
    """One row per province: its standing decision and the numbers of its latest result."""
    provinces = dashboard_provinces(campaign=campaign)
    statuses = {
        s.province_id: s
        for s in ProvinceStatus.objects.filter(campaign=campaign).select_related(
            "last_result__round"
        )
    }
    latest: dict[int, ProvinceRoundResult] = {}
    for r in (
        ProvinceRoundResult.objects.filter(round__campaign=campaign)
        .select_related("round")
        .order_by("round__number")
    ):
        latest[r.province_id] = r
    official = {
        s.province_id: s for s in OfficialStatistic.objects.filter(campaign=campaign)
    }
    rows = []
    for p in provinces:
        status = statuses.get(p.pk)
        result = (status.last_result if status and status.last_result else None) or latest.get(
            p.pk
        )
        row = result_numbers(result) if result else _empty_numbers()
        stat = official.get(p.pk)
        if row["official_ha"] is None and stat is not None:
            row["official_ha"] = float(stat.hectares)
        if not row["official_status"] and stat is not None:
            row["official_status"] = stat.status
        row["official_verified"] = (
            row["official_status"] in VERIFIED_STATUSES if row["official_status"] else None
        )
        row["official_unverified"] = row["official_verified"] is False
        # The demo's own figures are never official: marked wherever the figure is shown.
        row["official_demo"] = row["official_status"] == "DEMO"
        if status is not None:
            row["decision"] = status.decision
            row["supplementary_rounds"] = status.supplementary_rounds
        row["evaluated"] = result is not None
        if not row["decision"]:  # never evaluated: still to do, like ProvinceStatus's default
            row["decision"] = ProvinceDecision.CONTINUE.value
        row["decision_label"] = str(ProvinceDecision(row["decision"]).label)
        row["reason"] = (
            (_decision_reason(result, row["decision"]) if result else "")
            or (status.reason if status and status.reason else "")
            or (_joined_reason(result.reasons) if result else str(NOT_EVALUATED))
        )
        row.update({
            "adcode": p.adcode, "name_zh": p.name_zh, "name_en": p.name_en,
            # The names ``stop_status --json`` uses for the same things.
            "province": p.name_en or p.name_zh, "province_zh": p.name_zh,
        })
        rows.append(row)
    return rows


def province_history(*, campaign: Campaign) -> dict[int, list[dict[str, Any]]]:
    """Per province adcode, its results round by round (for the charts)."""
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in (
        ProvinceRoundResult.objects.filter(round__campaign=campaign)
        .select_related("round", "province")
        .order_by("round__number")
    ):
        n = result_numbers(r)
        out[r.province.adcode].append({
            k: n[k] for k in ("round", "decision", "iou", "iou_samples", "correctness",
                              "correctness_samples", "area_mapbox_pct", "area_google_pct",
                              "area_ratio")
        })
    return dict(out)


def decision_log(*, campaign: Campaign, limit: int = 500) -> list[dict[str, Any]]:
    """Every decision a round took for a province, newest first; ``changed`` marks a change."""
    previous: dict[int, str] = {}
    entries = []
    for r in (
        ProvinceRoundResult.objects.filter(round__campaign=campaign)
        .select_related("round", "province")
        .order_by("round__number", "province__adcode")
    ):
        reasons = r.reasons if isinstance(r.reasons, dict) else {}
        entries.append({
            "round": r.round.number,
            "at": (r.round.finished_at or r.created_at).isoformat(),
            "adcode": r.province.adcode,
            "province": r.province.name_zh,
            "province_en": r.province.name_en,
            "decision": r.decision,
            "decision_label": decision_label(r.decision),
            "previous": previous.get(r.province_id, ""),
            "previous_label": decision_label(previous[r.province_id])
            if r.province_id in previous else "",
            "changed": previous.get(r.province_id) != r.decision,
            "reason": _joined_reason(reasons),
        })
        previous[r.province_id] = r.decision
    entries.reverse()
    return entries[:limit]


def labelled_share(*, campaign: Campaign) -> dict[str, Any]:
    """Blocks labelled so far (a sample on any source) against all blocks of the campaign."""
    total = Block.objects.filter(campaign=campaign).count()
    labelled = (
        Sample.objects.filter(block__campaign=campaign).values("block_id").distinct().count()
    )
    return {
        "labelled_blocks": labelled,
        "total_blocks": total,
        "labelled_percent": 100.0 * labelled / total if total else None,
        "paper_labelled_percent": PAPER_LABELLED_PERCENT,
    }


def systematic_summary(*, campaign: Campaign) -> dict[str, Any]:
    """The systematic validation sample: its blocks, and how many carry verdicts (one per
    source expected) and an integration decision."""
    from annotation.models import IntegrationLabel, VerdictLabel
    from learning.models import SystematicSampleBlock

    blocks = SystematicSampleBlock.objects.filter(campaign=campaign).values("block_id")
    n = blocks.count()
    return {
        "blocks": n,
        "verdicts": VerdictLabel.objects.filter(block_id__in=blocks).count(),
        "integration_labels": IntegrationLabel.objects.filter(block_id__in=blocks).count(),
        "sources": ImagerySource.objects.filter(images__block__campaign=campaign)
        .distinct()
        .count(),
    }


def active_learning_curve(*, campaign: Campaign) -> list[dict[str, Any]]:
    """Per finished round: labels it trained on and the IoU it reached over its provinces.

    Labels are the segmenter's training samples when the round recorded them, else the samples
    that existed when the round started. IoU is the sample-weighted mean of the provinces'
    validation IoUs (each province's IoU is pooled over its own held-out blocks).
    """
    points = []
    rounds = (
        Round.objects.filter(campaign=campaign, state=RoundState.DONE)
        .prefetch_related("province_results")
        .order_by("number")
    )
    for rnd in rounds:
        results = [
            r for r in rnd.province_results.all() if r.iou is not None and r.iou_samples > 0
        ]
        if not results:
            continue
        weight = sum(r.iou_samples for r in results)
        iou = sum(float(r.iou) * r.iou_samples for r in results) / weight
        seg = (
            ModelVersion.objects.filter(round=rnd, kind=ModelKind.SEGMENTER)
            .order_by("-created_at")
            .first()
        )
        pooled = (seg.metrics or {}).get("iou_overall") if seg is not None else None
        if isinstance(pooled, int | float) and not isinstance(pooled, bool):
            iou = float(pooled)  # the engine pooled it over every held-out block
        if seg is not None and seg.training_samples:
            labels = len(seg.training_samples)
        else:
            cutoff = rnd.started_at or rnd.created_at
            labels = Sample.objects.filter(
                block__campaign=campaign, created_at__lte=cutoff
            ).count()
        points.append({"round": rnd.number, "labels": labels, "iou": iou,
                       "iou_samples": weight})
    return points


SIM_SIZE = 48  # pixels per block side in the simulation (the stand-in needs no detail)
SIM_MAX_TRAIN = 300  # the first 300 labelled blocks of the order; enough for the curve's shape
SIM_STEPS = 6
SIM_REPEATS = 5
SIM_NOTE = _(
    "Simulation on the labelled blocks: a per-pixel logistic regression on colour and texture "
    "(a cheap stand-in for the segmenter) is re-fitted on the first n blocks in the order they "
    "were labelled (the active-learning order) and on random orders of the same blocks, and "
    "scored by pixel IoU on the held-out validation blocks. Points above the measured random "
    "curve come from a fitted saturating curve a·n/(n+k); below its first point only an upper "
    "bound is given. The ratio compares the two orders; the stand-in's IoU is not the "
    "segmenter's."
)
# How each row's random-order figure was found (the core's Method), and the core's refusal
# when there is nothing to simulate yet: the cached simulation keeps the core's words, the page
# shows them in the request's language.
SIM_METHODS = {
    Method.MEASURED.value: _("measured"),
    Method.FITTED.value: _("fitted curve"),
    Method.UNREACHABLE.value: _("not reached"),
    Method.BELOW_MEASURED.value: _("below the first random point"),
}
SIM_ERRORS = {
    "the simulation needs labelled training and validation blocks": _(
        "the simulation needs labelled training and validation blocks"
    ),
}


def _sample_pixels(samples: list[Sample]) -> tuple[list[LabelledBlock], int]:
    """Each sample's image (read decimated) and rasterised polygons as simulation pixels."""
    images = {
        (i.block_id, i.source_id): i
        for i in BlockImage.objects.filter(
            status=BlockImageStatus.OK,
            block_id__in=[s.block_id for s in samples],
            source_id__in={s.source_id for s in samples},
        )
    }
    polygons: dict[int, list[Any]] = defaultdict(list)
    for p in SamplePolygon.objects.filter(sample__in=samples).only("sample_id", "geometry"):
        polygons[p.sample_id].append(shapely.from_wkb(bytes(p.geometry.wkb)))
    out, skipped = [], 0
    for s in samples:
        image = images.get((s.block_id, s.source_id))
        path = Path(settings.DATA_DIR) / image.path if image else None
        if path is None or not path.is_file():
            skipped += 1
            continue
        side = 2 * SIM_SIZE
        with rasterio.open(path) as src:
            rgb = src.read([1, 2, 3], out_shape=(3, side, side), resampling=Resampling.average)
            valid = src.dataset_mask(out_shape=(side, side)) > 0
            transform = src.transform * Affine.scale(src.width / side, src.height / side)
        mask = rasterize_polygons(polygons[s.pk], transform=transform, shape=(side, side))
        out.append(block_pixels(np.ascontiguousarray(rgb.transpose(1, 2, 0)), mask,
                                size=SIM_SIZE, valid=valid))
    return out, skipped


def savings_simulation(*, campaign: Campaign) -> dict[str, Any]:
    """The random-vs-labelling-order simulation (cached until a sample changes)."""
    samples = Sample.objects.filter(block__campaign=campaign)
    # The split is part of the key: holding samples out for validation changes the result but
    # bumps no sample version.
    agg = samples.aggregate(
        n=Count("id"),
        last=Max("id"),
        versions=Sum("version"),
        held_out=Count("id", filter=Q(split=SampleSplit.VALIDATION)),
    )
    key = (
        f"learning:savings:{campaign.pk}:{agg['n']}:{agg['last']}:{agg['versions']}"
        f":{agg['held_out']}"
    )
    cached = cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    ordered = list(samples.order_by("created_at", "pk"))
    train_samples = [s for s in ordered if s.split == SampleSplit.TRAIN][:SIM_MAX_TRAIN]
    val_samples = [s for s in ordered if s.split == SampleSplit.VALIDATION]
    result: dict[str, Any] = {"train_blocks": len(train_samples),
                              "validation_blocks": len(val_samples), "repeats": SIM_REPEATS,
                              "error": ""}
    try:
        train, skipped_t = _sample_pixels(train_samples)
        validation, skipped_v = _sample_pixels(val_samples)
        result["skipped_without_image"] = skipped_t + skipped_v
        steps = sorted({int(round(x)) for x in np.linspace(1, len(train), SIM_STEPS)}
                       ) if train else []
        curves = selection_curves(train, validation, steps=steps, repeats=SIM_REPEATS, seed=0)
        savings = annotation_savings(curves.active, curves.random)
        result.update({
            "active_curve": [{"labels": n, "iou": y} for n, y in curves.active],
            "random_curve": [{"labels": n, "iou": y} for n, y in curves.random],
            **savings.to_dict(),
        })
    except ValueError as e:
        result["error"] = str(e)
    cache.set(key, result, timeout=24 * 3600)
    return result


def replay_result() -> dict[str, Any] | None:
    """The latest real-segmenter replay (``python -m learning replay``), shaped for the
    savings report; None when none was saved, ``{"error": …}`` when the file is unreadable.

    It lives in ``<var dir>/replay/latest.json``: the replay trains a real segmenter on real
    labelled tiles outside any campaign, so it is one file per deployment, not a row.
    """
    from learning.core.cli.replay import REPLAY_FILE

    path = Path(settings.VAR_DIR) / REPLAY_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        arms = raw["arms"]
        sel = {p["round"]: p for p in arms["selection"]}
        rnd = {p["round"]: p for p in arms["random"]}
        rounds = [
            {"round": r, "labels": sel[r]["labels"], "selection_iou": sel[r]["iou"],
             "random_iou": rnd[r]["iou"] if r in rnd else None}
            for r in sorted(sel)
        ]
        reach = raw["labels_to_reach_random_final"]
        engine = raw["engine"]
        out = {
            "engine": str(engine["name"]),
            "preset": str(engine.get("preset", "")),
            "created_at": str(raw.get("created_at", "")),
            "datasets": ", ".join(raw.get("data", {}).get("datasets", [])),
            "n_pool": int(raw["n_pool"]),
            "n_validation": int(raw["n_validation"]),
            "budget_s": raw.get("train_options", {}).get("time_budget_s"),
            "all_cropland_iou": float(raw["all_cropland"]["iou"]),
            "seeds": len(raw.get("seeds") or [0]),
            "target_iou": float(raw["target_iou"]),
            "labels_selection": reach["selection"]["labels"],
            "labels_random": reach["random"]["labels"],
            "rounds": rounds,
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        return {"error": f"{path.name}: {e!r}"}
    a, b = out["labels_selection"], out["labels_random"]
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    out["ratio"] = b / a if numbers and a else None
    return out


PROXY_NOTE = _(
    "Fast fallback: a logistic-regression proxy on this campaign's labelled blocks, not the "
    "segmenter."
)


def savings_summary(*, campaign: Campaign) -> dict[str, Any]:
    """Labelled share, each finished round's (labels, IoU), the real-segmenter replay when one
    was saved (the savings report's basis) and the proxy simulation (the fast fallback)."""
    replay = replay_result()
    usable = replay is not None and "error" not in replay
    return {
        **labelled_share(campaign=campaign),
        "rounds_curve": active_learning_curve(campaign=campaign),
        "basis": "replay" if usable else "proxy",
        "replay": replay,
        "proxy_note": str(PROXY_NOTE),
        "simulation": simulation_in_language(savings_simulation(campaign=campaign)),
    }


def simulation_in_language(sim: dict[str, Any]) -> dict[str, Any]:
    """The cached simulation (shared by every language) with its method note, each row's
    method and a known refusal in the request's language (``method_label`` beside the core's
    ``method``, which the JSON keeps)."""
    def row(r: dict[str, Any] | None) -> dict[str, Any] | None:
        if r is None:
            return None
        label = SIM_METHODS.get(str(r.get("method")))
        return {**r, "method_label": str(label) if label is not None else r.get("method")}

    out = {**sim, "method": str(SIM_NOTE)}
    if out.get("error") in SIM_ERRORS:
        out["error"] = str(SIM_ERRORS[out["error"]])
    for key in ("final", "headline"):
        if key in out:
            out[key] = row(out[key])
    if "rounds" in out:
        out["rounds"] = [row(r) for r in out["rounds"]]
    return out


def provinces_geojson(*, campaign: Campaign, tolerance: float = 0.02) -> dict[str, Any]:
    """The dashboard's provinces as GeoJSON, simplified for the browser (≈2 km at 0.02°)."""
    ids = [p.pk for p in dashboard_provinces(campaign=campaign)]
    features = []
    for unit in AdminUnit.objects.filter(pk__in=ids).order_by("adcode"):
        geom = unit.geometry.simplify(tolerance, preserve_topology=True)
        if geom.geom_type == "Polygon":  # one part left: keep the type the map expects
            geom = MultiPolygon(geom, srid=geom.srid)
        features.append({
            "type": "Feature",
            "id": unit.adcode,
            "properties": {"adcode": unit.adcode, "name_zh": unit.name_zh,
                           "name_en": unit.name_en},
            "geometry": json.loads(geom.geojson),
        })
    return {"type": "FeatureCollection", "features": features}


def dashboard_thresholds(*, campaign: Campaign) -> dict[str, Any]:
    """The thresholds the latest evaluation applied (the defaults before any)."""
    last = (
        ProvinceRoundResult.objects.filter(round__campaign=campaign)
        .order_by("-round__number", "-pk")
        .first()
    )
    return _thresholds(last.thresholds if last else None)


def dashboard_data(*, campaign: Campaign) -> dict[str, Any]:
    """Everything the dashboard shows, as one JSON-ready dict (the JSON export)."""
    rows = province_rows(campaign=campaign)
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r["decision"] if r["evaluated"] else "not_evaluated"] += 1
    return {
        "campaign": campaign.slug,
        "thresholds": dashboard_thresholds(campaign=campaign),
        "counts": dict(counts),
        "count_labels": {k: decision_label(k) for k in counts},
        "provinces": rows,
        "history": {str(k): v for k, v in province_history(campaign=campaign).items()},
        "decision_log": decision_log(campaign=campaign),
        "savings": savings_summary(campaign=campaign),
        "systematic_sample": systematic_summary(campaign=campaign),
    }


# --- a round's live progress -----------------------------------------------------------------

STAGES = (
    RoundState.TRAINING,
    RoundState.PREDICTING,
    RoundState.SCORING,
    RoundState.EVALUATING,
    RoundState.SELECTING,
)
LOG_TAIL = 15


def stage_weights_for(*, rnd: Round) -> dict[str, float]:
    """The overall bar's stage shares for ``rnd``: the median stage seconds of the campaign's
    last finished rounds (``learning.core.progress``), the round's own training budget when it
    has one, default shares for stages never timed."""
    from learning.core.progress import stage_weights

    history = list(
        Round.objects.filter(campaign_id=rnd.campaign_id, state=RoundState.DONE)
        .exclude(pk=rnd.pk)
        .order_by("-number")
        .values_list("timings", flat=True)[:5]
    )
    expected: dict[str, float] = {}
    budget = (rnd.config or {}).get("train_seconds")
    if isinstance(budget, int | float) and not isinstance(budget, bool) and budget > 0:
        expected["training"] = float(budget)
    return stage_weights([t for t in history if isinstance(t, dict)], expected_s=expected)


def round_progress(*, rnd: Round, workers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A snapshot of a round for the progress panel: h3a's progress event (stage counts,
    stage percent, elapsed, stage ETA, log tail) plus the overall percent, labels and whether
    a live worker can take its work.

    The overall percent weights each stage by its measured share of earlier rounds
    (:func:`stage_weights_for`): predicting is most of a round, so a round that has finished
    training is not "20 %" done. The ETA (from ``round_event``) is for the current stage only.
    """
    # The round engine's own event is the base, so websocket, API and worker agree.
    from croplayer_site.liveness import workers_alive
    from learning.core.progress import overall_fraction
    from learning.services.round.progress import round_event

    event = {k: v for k, v in round_event(rnd=rnd).items() if k != "type"}
    state = rnd.state
    stage_fraction = min(1.0, rnd.stage_done / rnd.stage_total) if rnd.stage_total else 0.0
    weights = stage_weights_for(rnd=rnd)
    if state in STAGES or state in (RoundState.DONE, RoundState.QUEUED):
        overall = 100.0 * overall_fraction(state, stage_fraction, weights)
    else:  # failed or cancelled: the share of the stages that had finished
        overall = 100.0 * sum(w for s, w in weights.items() if s in (rnd.timings or {}))
    out = {
        **event,
        "state_label": str(RoundState(state).label),
        "active": rnd.is_active,
        "stage_percent": 100.0 * stage_fraction,
        "overall_percent": overall,
        "stage_weights": weights,
        "cancel_requested": rnd.cancel_requested,
        "log_tail": event.get("log_tail", [])[-LOG_TAIL:],
        "worker_warning": "",
    }
    if rnd.is_active:
        alive = workers if workers is not None else workers_alive()
        out["workers"] = len(alive["workers"])
        out["worker_warning"] = str(worker_warning(alive))
    return out


def worker_warning(alive: dict[str, Any]) -> str:
    """What to tell a user whose round waits: nothing when both queues have a live worker."""
    if not alive["ok"]:
        return str(_("The broker (Redis) does not answer: the round cannot move (%(error)s).")
                   % {"error": alive["error"]})
    if not alive["workers"]:
        return str(_("No live worker: the round waits until one runs "
                     "(celery -A croplayer_site worker -Q cpu,gpu)."))
    missing = sorted({"cpu", "gpu"} - set(alive["queues"]))
    if missing:
        return str(_("No live worker takes the %(queues)s queue: the round waits for one.")
                   % {"queues": ", ".join(missing)})
    return ""
