"""Integration decisions per block of converged provinces: the model's, and leads' overrides.

The integration model (``learning.core.tabular.integration``) reads both sources' 16 block
features and their correctness P(TP) from the current segmenter's predictions and scores. Its
decision and probability are stored per block in
:class:`learning.product.models.BlockIntegration`. A lead's override replaces the decision in
force (the model's answer stays beside it, and later model runs do not overwrite it) and writes
``annotation.IntegrationLabel`` too, so the override becomes a training label for the next
integration model (trained in :mod:`learning.services.integration_training`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.models import IntegrationDecision
from annotation.services.labels import integration_label_set
from learning.core.tabular.integration import DECISIONS, IntegrationModel, integration_vector
from learning.models import BlockPrediction, ModelKind, ModelVersion, ProvinceDecision
from learning.product.core.decision import decision_check
from learning.product.models import BlockIntegration, IntegrationSource
from learning.services.integration_training import (
    SOURCE_SLUGS,
    score_block_features,
    score_p_tp,
)
from mapping.models import Block, Campaign

CHUNK = 500
Progress = Callable[[int, int], None]


class IntegrationError(Exception):
    """A reason the integration cannot run (shown to the user as a 400)."""


def integration_model_current(*, campaign: Campaign) -> ModelVersion:
    mv = ModelVersion.objects.filter(
        campaign=campaign, kind=ModelKind.INTEGRATION, is_current=True
    ).first()
    if mv is None:
        raise IntegrationError(
            "the campaign has no current integration model; train one in a learning round "
            "(it needs integration labels on both sources)"
        )
    return mv


def segmenter_current(*, campaign: Campaign) -> ModelVersion:
    mv = ModelVersion.objects.filter(
        campaign=campaign, kind=ModelKind.SEGMENTER, is_current=True
    ).first()
    if mv is None:
        raise IntegrationError("the campaign has no current segmenter, so no predictions")
    return mv


def converged_blocks(
    *, campaign: Campaign, province_adcodes: list[int] | None = None
) -> QuerySet[Block]:
    """Blocks of the campaign's provinces whose stopping rules say converged."""
    qs = Block.objects.filter(
        campaign=campaign,
        province__isnull=False,
        province_id__in=campaign.province_statuses.filter(
            decision=ProvinceDecision.CONVERGED
        ).values("province_id"),
    )
    if province_adcodes:
        qs = qs.filter(province__adcode__in=province_adcodes)
    return qs


@dataclass(frozen=True)
class IntegrationRun:
    blocks: int
    decided: int
    kept_lead: int
    incomplete: int
    counts: dict[str, int]
    model: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "blocks": self.blocks,
            "decided": self.decided,
            "kept_lead": self.kept_lead,
            "incomplete": self.incomplete,
            "counts": self.counts,
            "model": self.model,
        }


def integration_run(
    *,
    campaign: Campaign,
    province_adcodes: list[int] | None = None,
    progress: Progress | None = None,
) -> IntegrationRun:
    """Decide every block of the converged provinces with the current integration model.

    A block needs the current segmenter's prediction on both sources (else it is counted as
    incomplete and left without a decision). Safe to run again: rows are updated in place, and a
    lead's override stays in force (only the model's own answer beside it is refreshed).
    """
    mv = integration_model_current(campaign=campaign)
    model = IntegrationModel.load(Path(settings.DATA_DIR) / mv.bundle_path)
    seg = segmenter_current(campaign=campaign)
    block_ids = list(
        converged_blocks(campaign=campaign, province_adcodes=province_adcodes)
        .order_by("row", "col")
        .values_list("pk", flat=True)
    )
    if not block_ids:
        raise IntegrationError("no blocks in converged provinces (check the province statuses)")
    counts = dict.fromkeys(IntegrationDecision.values, 0)
    decided = kept = incomplete = 0
    for start in range(0, len(block_ids), CHUNK):
        chunk = block_ids[start : start + CHUNK]
        preds: dict[int, dict[str, BlockPrediction]] = {}
        for p in BlockPrediction.objects.filter(
            block_id__in=chunk, model_version=seg, source__slug__in=SOURCE_SLUGS
        ).select_related("source", "score"):
            preds.setdefault(p.block_id, {})[p.source.slug] = p
        rows, complete = [], []
        for bid in chunk:
            pair = preds.get(bid, {})
            if len(pair) < 2:
                incomplete += 1
                continue
            m, g = pair["mapbox"], pair["google"]
            ms, gs = getattr(m, "score", None), getattr(g, "score", None)
            rows.append(
                integration_vector(
                    score_block_features(ms), score_block_features(gs), mapbox_p_tp=score_p_tp(ms),
                    google_p_tp=score_p_tp(gs),
                )
            )
            complete.append((bid, m, g))
        if rows:
            proba = model.predict_proba(np.vstack(rows))
            with transaction.atomic():
                for (bid, m, g), p in zip(complete, proba, strict=True):
                    j = int(np.argmax(p))
                    decision = DECISIONS[j]
                    kept += _store(
                        block_id=bid,
                        decision=decision,
                        prob=float(p[j]),
                        probs={d: float(v) for d, v in zip(DECISIONS, p, strict=True)},
                        mv=mv,
                        mapbox=m,
                        google=g,
                        counts=counts,
                    )
                    decided += 1
        if progress is not None:
            progress(min(start + CHUNK, len(block_ids)), len(block_ids))
    return IntegrationRun(
        blocks=len(block_ids),
        decided=decided,
        kept_lead=kept,
        incomplete=incomplete,
        counts=counts,
        model=mv.name,
    )


def _store(
    *,
    block_id: int,
    decision: str,
    prob: float,
    probs: dict[str, float],
    mv: ModelVersion,
    mapbox: BlockPrediction,
    google: BlockPrediction,
    counts: dict[str, int],
) -> int:
    """Write one block's model decision; returns 1 when a lead's override stays in force."""
    row = BlockIntegration.objects.select_for_update().filter(block_id=block_id).first()
    model_fields = {
        "model_decision": decision,
        "model_probability": prob,
        "probabilities": probs,
        "model_version": mv,
        "mapbox_prediction": mapbox,
        "google_prediction": google,
    }
    if row is not None and row.source == IntegrationSource.LEAD:
        for k, v in model_fields.items():
            setattr(row, k, v)
        row.probability = probs.get(row.decision)
        row.save()
        counts[row.decision] += 1
        return 1
    BlockIntegration.objects.update_or_create(
        block_id=block_id,
        defaults={
            **model_fields,
            "decision": decision,
            "probability": prob,
            "source": IntegrationSource.MODEL,
            "overridden_by": None,
            "overridden_at": None,
        },
    )
    counts[decision] += 1
    return 0


def integration_override(
    *, user: AbstractBaseUser, block: Block, decision: str
) -> BlockIntegration:
    """A lead's decision for the block: in force for the final map, and an integration label
    (``annotation.IntegrationLabel``, audited) for training the next integration model."""
    try:
        decision_check(decision)
    except ValueError as e:
        raise IntegrationError(str(e)) from e
    with transaction.atomic():
        row = BlockIntegration.objects.select_for_update().filter(block=block).first()
        if row is None:
            row = _new_lead_row(block=block)
        row.decision = decision
        row.source = IntegrationSource.LEAD
        row.probability = (row.probabilities or {}).get(decision)
        row.overridden_by = user  # type: ignore[assignment]  # a lead: a real user
        row.overridden_at = timezone.now()
        row.save()
        mv = row.model_version
        integration_label_set(
            user=user,
            block=block,
            decision=decision,
            model_version=mv.name if mv else "",
            round_number=mv.round.number if mv is not None and mv.round is not None else None,
        )
    return row


def _new_lead_row(*, block: Block) -> BlockIntegration:
    """A block the model has not decided: link the current segmenter's predictions, if any."""
    row = BlockIntegration(block=block)
    seg = ModelVersion.objects.filter(
        campaign_id=block.campaign_id, kind=ModelKind.SEGMENTER, is_current=True
    ).first()
    if seg is not None:
        for p in BlockPrediction.objects.filter(
            block=block, model_version=seg, source__slug__in=SOURCE_SLUGS
        ).select_related("source"):
            setattr(row, f"{p.source.slug}_prediction", p)
    return row
