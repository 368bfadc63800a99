"""Integration-model training: the leads' integration labels and both sources' scored
predictions in, a registered integration model version out (beside the other model training).

The integration run and the leads' overrides that use the model are the final product's
(``learning.product.services.integration``); the adapter from a prediction score to the model's
inputs (:func:`score_block_features`, :func:`score_p_tp`) is shared by both.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import F

from annotation.models import IntegrationLabel
from learning.core.features.block import FEATURE_NAMES, BlockFeatures
from learning.core.tabular.integration import integration_train, integration_vector
from learning.models import BlockPrediction, ModelKind, ModelVersion
from learning.services.data import data_path, json_safe, labels_fingerprint
from learning.services.registry import bundle_relpath, model_version_current, model_version_register
from mapping.models import Campaign

SOURCE_SLUGS = ("mapbox", "google")


def score_block_features(score: Any) -> BlockFeatures:
    """The 16 block features of a prediction from its score (NaN where one is missing)."""
    raw = dict(score.features or {}) if score is not None else {}
    row = {n: raw.get(n) for n in FEATURE_NAMES}  # a missing feature is NaN (XGBoost: missing)
    return BlockFeatures.from_mapping(row)


def score_p_tp(score: Any) -> float:
    """P(TP) of a prediction from its score: the verdict probabilities, else 1 - p_incorrect."""
    if score is None:
        return math.nan
    probs = {str(k).lower(): v for k, v in (score.verdict_probs or {}).items()}
    if probs.get("tp") is not None:
        return float(probs["tp"])
    return 1.0 - score.p_incorrect if score.p_incorrect is not None else math.nan


@dataclass(frozen=True)
class IntegrationTraining:
    """What :func:`integration_model_train` did: a new version, the current one, or nothing."""

    model_version: ModelVersion | None
    trained: bool
    message: str


def _latest_scores(*, block_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per block, each source's newest prediction score that has features."""
    out: dict[int, dict[str, Any]] = {}
    preds = (
        BlockPrediction.objects.filter(block_id__in=block_ids, source__slug__in=SOURCE_SLUGS)
        .exclude(score__features={})
        .exclude(score__isnull=True)
        .select_related("source", "score")
        .order_by("block_id", "source_id", F("round_id").desc(nulls_last=True), "-pk")
    )
    for p in preds:
        out.setdefault(p.block_id, {}).setdefault(p.source.slug, p.score)
    return out


def integration_model_train(
    *,
    campaign: Campaign,
    name: str,
    rnd: Any = None,
    seed: int = 0,
    min_labels: int = 8,
) -> IntegrationTraining:
    """Train the integration model on the leads' integration labels (overrides included).

    A label becomes a training row when both sources of its block have a scored prediction (the
    newest one of each source: its 16 features and P(TP)). Nothing is trained when the labels
    did not change since the current model (a fingerprint in its config), when there are fewer
    than ``min_labels`` usable rows, or when the decisions cannot be split (a decision seen
    once): the current model, if any, stays. Labels of one decision only give a constant model
    of that decision (``metrics["constant"]``): the demo's poor first masks are "neither"
    everywhere, and a converged province must still be integrated and exported; the next round
    with a second decision trains a learned model. Idempotent by ``name``.
    """
    current = model_version_current(campaign=campaign, kind=ModelKind.INTEGRATION)
    labels = list(IntegrationLabel.objects.filter(block__campaign=campaign).order_by("pk"))
    fp = labels_fingerprint([(v.pk, v.decision, v.updated_at) for v in labels])
    if current is not None and current.config.get("labels_fingerprint") == fp:
        return IntegrationTraining(
            current, False, f"integration model {current.name}: no new labels"
        )
    existing = ModelVersion.objects.filter(
        campaign=campaign, kind=ModelKind.INTEGRATION, name=name
    ).first()
    if existing is not None:
        return IntegrationTraining(existing, False, f"integration model {name} already trained")
    scores = _latest_scores(block_ids=[v.block_id for v in labels])
    rows, decisions, used = [], [], []
    for v in labels:
        pair = scores.get(v.block_id, {})
        if len(pair) < 2:
            continue
        ms, gs = pair["mapbox"], pair["google"]
        rows.append(
            integration_vector(
                score_block_features(ms), score_block_features(gs), mapbox_p_tp=score_p_tp(ms),
                google_p_tp=score_p_tp(gs),
            )
        )
        decisions.append(v.decision)
        used.append(v.pk)
    if len(rows) < min_labels:
        return IntegrationTraining(
            current,
            False,
            f"integration model not trained: {len(rows)} integration labels with scored "
            f"predictions on both sources (< {min_labels})",
        )
    t0 = time.monotonic()
    try:
        model = integration_train(np.vstack(rows), decisions, seed=seed)
    except ValueError as e:  # one decision only, or a decision seen once
        return IntegrationTraining(current, False, f"integration model not trained: {e}")
    rel = bundle_relpath(campaign=campaign, kind=ModelKind.INTEGRATION, name=name)
    model.save(data_path(rel), overwrite=True)
    mv = model_version_register(
        campaign=campaign,
        kind=ModelKind.INTEGRATION,
        name=name,
        bundle_path=rel,
        rnd=rnd,
        config={"labels_fingerprint": fp, "seed": seed},
        metrics=json_safe(model.metrics),
        training_samples=used,
        train_seconds=round(time.monotonic() - t0, 2),
    )
    if model.constant is not None:
        message = (
            f"integration model {name} is constant: all {len(rows)} labels were "
            f"{model.constant.value!r}, so it decides {model.constant.value!r} on every block "
            "(nothing to learn; it is the trivial baseline)"
        )
    else:
        message = (
            f"integration model {name} trained on {len(rows)} labels (accuracy "
            f"{model.metrics.get('accuracy', float('nan')):.3f}, always answering "
            f"{model.metrics.get('baseline_class')!r}: "
            f"{model.metrics.get('baseline_accuracy', float('nan')):.3f})"
        )
    return IntegrationTraining(mv, True, message)


