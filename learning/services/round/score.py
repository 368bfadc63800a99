"""The scoring stage: the 16 block features per prediction (fanned out in batches), then the
correctness model, retrained when verdicts changed, gives each prediction its p_incorrect; the
integration model trains on the leads' decisions after it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import cv2

from annotation.models import VerdictLabel
from learning.core.features.block import BlockFeatures, block_features_compute
from learning.core.tabular.correctness import VERDICTS, correctness_train
from learning.models import (
    BlockPrediction,
    BlockScore,
    ModelKind,
    ModelVersion,
    Round,
    RoundBatch,
    RoundState,
)
from learning.services.config import RoundConfig, round_config_parse
from learning.services.data import (
    block_image_row,
    data_path,
    json_safe,
    labels_fingerprint,
    pixel_size_m,
    read_prediction,
)
from learning.services.image_quality import image_quality_of, image_quality_stored
from learning.services.integration_training import integration_model_train
from learning.services.registry import bundle_relpath, model_version_current, model_version_register
from learning.services.round import dispatch
from learning.services.round.common import block_image_read_or_none, bundle_load
from learning.services.round.machine import round_fail, round_get, stage_check, stage_enter
from learning.services.round.progress import (
    Heartbeat,
    lease_claim,
    lease_release,
    round_heartbeat,
    round_log,
    round_timing_add,
)
from mapping.services.terrain import DemError, block_dem_window

log = logging.getLogger(__name__)


def feature_items(*, rnd: Round, cfg: RoundConfig, items: list[int]) -> int:
    done = 0
    dem_cache: dict[int, Any] = {}
    for pred in (
        BlockPrediction.objects.filter(pk__in=items)
        .select_related("block", "source", "score")
        .order_by("pk")
    ):
        stage_check(rnd.pk, RoundState.SCORING)
        score = getattr(pred, "score", None) or BlockScore.objects.create(
            prediction=pred, round=rnd
        )
        if score.features:
            continue
        # The image's quality statistics were stored when it was first predicted: the image
        # itself is read only for a row that lacks them (older rows, a refetched image).
        row = block_image_row(block=pred.block, source=pred.source)
        quality = image_quality_stored(image=row) if row is not None else None
        if quality is None:
            img = block_image_read_or_none(
                rnd=rnd, block=pred.block, source=pred.source, image=row
            )
            if img is None or row is None:
                continue
            quality = image_quality_of(image=row, pixels=img.image)
        mask, _, _ = read_prediction(pred.mask_path)
        other = (
            BlockPrediction.objects.filter(block=pred.block, model_version=pred.model_version)
            .exclude(source=pred.source)
            .order_by("source__slug")
            .first()
        )
        other_mask = None
        if other is not None:
            other_mask = read_prediction(other.mask_path)[0]
            if other_mask.shape != mask.shape:
                other_mask = cv2.resize(
                    other_mask, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST
                )
        if pred.block_id not in dem_cache:
            try:
                dem_cache[pred.block_id] = block_dem_window(block=pred.block)
            except DemError:
                dem_cache[pred.block_id] = None
        feats = block_features_compute(
            image=quality,
            mask=mask,
            pixel_size_m=pixel_size_m(block=pred.block, shape=mask.shape),
            dem=dem_cache[pred.block_id],
            coverage_type=score.coverage_type or None,
            other_mask=other_mask,
            dem_nan_policy="omit",
        )
        BlockScore.objects.filter(pk=score.pk).update(features=json_safe(feats.to_dict()))
        done += 1
    round_heartbeat(round_id=rnd.pk)
    return done


def _features_of(score: BlockScore) -> Any:
    row = {
        k: (float("nan") if v is None and k != "coverage_type" else v)
        for k, v in score.features.items()
    }
    return BlockFeatures.from_mapping(row)


def round_score_run(*, round_id: int) -> dict[str, Any]:
    """Retrain the correctness model when verdicts changed; p_incorrect for every prediction."""
    rnd = round_get(round_id)
    if rnd.state != RoundState.SCORING:
        return {"skipped": rnd.state}
    if RoundBatch.objects.filter(round=rnd, stage=RoundState.SCORING, done_at=None).exists():
        return {"skipped": "features not finished"}
    cfg = round_config_parse(rnd.config)
    token = lease_claim(
        round_id=round_id, state=RoundState.SCORING, stale_after_s=cfg.stale_after_s
    )
    if token is None:
        return {"busy": True}
    beat = Heartbeat(round_id=round_id, token=token, every=cfg.heartbeat_every_s)
    beat.start()
    t0 = time.monotonic()
    try:
        mv = _train_correctness(rnd=rnd, cfg=cfg)
        scored = 0
        if mv is not None:
            model = bundle_load(ModelKind.CORRECTNESS, mv.bundle_path)
            scores = list(
                BlockScore.objects.filter(prediction__round=rnd).exclude(features={}).order_by("pk")
            )
            if scores:
                probs = model.predict_proba([_features_of(s) for s in scores])
                classes = list(VERDICTS)
                for s, p in zip(scores, probs, strict=True):
                    s.verdict_probs = {
                        c: round(float(v), 6) for c, v in zip(classes, p, strict=True)
                    }
                    s.p_incorrect = round(1.0 - float(s.verdict_probs.get("tp", 0.0)), 6)
                    s.correctness_model = mv
                BlockScore.objects.bulk_update(
                    scores, ["verdict_probs", "p_incorrect", "correctness_model"], batch_size=500
                )
                scored = len(scores)
        round_log(
            rnd=round_id,
            message=f"correctness predicted for {scored} predictions"
            if mv
            else "no correctness model yet (too few verdicts): p_incorrect unknown",
        )
        # The integration model reads P(TP), so it trains after the correctness scores; its
        # labels are the leads' integration decisions, overrides on the review map included.
        trained = integration_model_train(
            campaign=rnd.campaign,
            name=f"integration-r{rnd.number}",
            rnd=rnd,
            seed=cfg.seed,
            min_labels=cfg.integration_min_labels,
        )
        round_log(rnd=round_id, message=trained.message)
    except Exception as e:
        log.exception("scoring of round %s failed", round_id)
        round_fail(round_id=round_id, reason=f"scoring failed: {type(e).__name__}: {e}")
        return {"failed": True}
    finally:
        beat.end()
        lease_release(round_id=round_id, token=token)
    round_timing_add(round_id=round_id, stage="correctness", seconds=time.monotonic() - t0)
    n_prov = rnd.provinces.count()
    if stage_enter(
        round_id=round_id,
        from_state=RoundState.SCORING,
        total=n_prov,
        message=f"evaluating {n_prov} province(s)",
    ):
        dispatch.round_advance_enqueue(round_id)
    return {"scored": True}


def _train_correctness(*, rnd: Round, cfg: RoundConfig) -> ModelVersion | None:
    current = model_version_current(campaign=rnd.campaign_id, kind=ModelKind.CORRECTNESS)
    latest: dict[tuple[int, int], VerdictLabel] = {}
    for v in VerdictLabel.objects.filter(block__campaign_id=rnd.campaign_id).order_by(
        "updated_at", "pk"
    ):
        latest[(v.block_id, v.source_id)] = v
    labels = sorted(latest.values(), key=lambda v: v.pk)
    fp = labels_fingerprint([(v.pk, v.verdict, v.updated_at) for v in labels])
    if current is not None and current.config.get("labels_fingerprint") == fp:
        round_log(rnd=rnd.pk, message=f"correctness model {current.name}: no new verdicts")
        return current
    name = f"correctness-r{rnd.number}"
    existing = ModelVersion.objects.filter(
        campaign=rnd.campaign, kind=ModelKind.CORRECTNESS, name=name
    ).first()
    if existing is not None:
        return existing
    rows, verdicts, used = [], [], []
    for v in labels:
        score = (
            BlockScore.objects.filter(
                prediction__block_id=v.block_id, prediction__source_id=v.source_id
            )
            .exclude(features={})
            .order_by("-prediction__round_id", "-pk")
            .first()
        )
        if score is not None:
            rows.append(_features_of(score))
            verdicts.append(v.verdict)
            used.append(v.pk)
    if len(rows) < cfg.correctness_min_verdicts:
        round_log(
            rnd=rnd.pk,
            message=f"correctness model not retrained: {len(rows)} verdicts "
            f"with features (< {cfg.correctness_min_verdicts})",
        )
        return current
    t0 = time.monotonic()
    try:
        model = correctness_train(rows, verdicts, seed=cfg.seed)
    except ValueError as e:  # e.g. one verdict class only
        round_log(rnd=rnd.pk, message=f"correctness model not retrained: {e}")
        return current
    rel = bundle_relpath(campaign=rnd.campaign, kind=ModelKind.CORRECTNESS, name=name)
    model.save(data_path(rel), overwrite=True)
    mv = model_version_register(
        campaign=rnd.campaign,
        kind=ModelKind.CORRECTNESS,
        name=name,
        bundle_path=rel,
        rnd=rnd,
        config={"labels_fingerprint": fp, "seed": cfg.seed},
        metrics=json_safe(model.metrics),
        training_samples=used,
        train_seconds=round(time.monotonic() - t0, 2),
    )
    round_log(
        rnd=rnd.pk,
        message=f"correctness model {name} trained on {len(rows)} verdicts "
        f"(accuracy {model.metrics.get('accuracy', float('nan')):.3f})",
    )
    return mv
