"""Writes of block labels: verdict and coverage type per source and person, the integration
decision per block.

A label is set, not versioned: each person has one current verdict (and coverage type) per block
and source, replaced by their next one; the block has one integration decision, replaced by the
next lead's. Every change is audited with the label before and after, and carries its
provenance (who, when, source, model version, round). An optional ``op_id`` makes a retried
request (offline outbox) return the first result instead of writing again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotation.models import (
    AuditAction,
    CoverageLabel,
    IntegrationLabel,
    LabelProvenance,
    VerdictLabel,
)
from annotation.selectors import (
    PredictionMissing,
    block_prediction_current,
    label_data,
    prediction_provenance,
)
from annotation.services.audit import block_audit_record, operation_remember, operation_replay
from annotation.services.samples import _fingerprint
from learning.product.models import BlockIntegration
from mapping.models import Block, ImagerySource


@dataclass(frozen=True)
class LabelWrite:
    label: dict[str, Any]
    replayed: bool = False


def _label_set(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource | None,
    model: type[LabelProvenance],
    lookup: dict[str, Any],
    values: dict[str, Any],
    action: str,
    object_type: str,
    op_id: uuid.UUID | None,
    claim: dict[str, Any],
) -> LabelWrite:
    # The request as the browser sent it (its claimed provenance included), not as it is stored:
    # a retry of an operation queued before a new round is the same operation.
    fingerprint = _fingerprint(
        action=action, block=block.pk, source=source.slug if source else None, **claim
    )
    with transaction.atomic():
        if op_id is not None:
            replay = operation_replay(
                op_id=op_id, user=user, action=action, fingerprint=fingerprint
            )
            if replay is not None:
                return LabelWrite(label=replay, replayed=True)
        manager = model.objects  # type: ignore[attr-defined]  # abstract base: subclasses have it
        label = manager.select_for_update().filter(**lookup).first()
        created = False
        if label is None:
            try:
                with transaction.atomic():
                    label = manager.create(**{**lookup, **values, "user": user})
                created = True
            except IntegrityError:
                # The same person's other tab (or another lead) created it meanwhile.
                label = manager.select_for_update().get(**lookup)
        before = None if created else label_data(label)
        # The same label again changes nothing: it keeps the time it was really decided.
        unchanged = (
            not created
            and label.user_id == user.pk
            and all(getattr(label, f) == v for f, v in values.items())
        )
        if not created and not unchanged:
            for field, value in values.items():
                setattr(label, field, value)
            label.user = user
            label.save()
        after = label_data(label)
        if not unchanged:
            block_audit_record(
                user=user,
                block_id=block.pk,
                source_id=source.pk if source else None,
                action=action,
                object_type=object_type,
                object_id=label.pk,
                before=before,
                after=after,
                op_id=op_id,
            )
        if op_id is not None:
            operation_remember(
                op_id=op_id,
                user=user,
                block_id=block.pk,
                action=action,
                fingerprint=fingerprint,
                result=after,
            )
    return LabelWrite(label=after)


class PredictionChanged(Exception):
    """The verdict names another model version than the block's current prediction."""


class NothingToJudge(Exception):
    """A verdict on a block that shows no prediction on the source."""


def verdict_label_set(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource,
    verdict: str,
    model_version: str = "",
    round_number: int | None = None,
    op_id: uuid.UUID | None = None,
) -> LabelWrite:
    """The user's verdict on the block's current prediction shown on ``source``.

    A verdict judges a prediction: without a current prediction on the source it is refused
    (NothingToJudge). Its provenance (model version, round) is that prediction's, whatever the
    browser sent; a browser that names an older version judged a prediction no longer shown,
    and is refused (PredictionChanged) so that its verdict is not filed against the new one.
    """
    try:
        current = block_prediction_current(block=block, source=source)
    except PredictionMissing as e:
        raise NothingToJudge(f"there is no prediction to judge on {source.slug}: {e}") from e
    if model_version and model_version != current.model_version.name:
        raise PredictionChanged(
            f"you judged the prediction of {model_version}, but the block now shows "
            f"{current.model_version.name}'s: reload the block and judge again"
        )
    return _label_set(
        user=user,
        block=block,
        source=source,
        model=VerdictLabel,
        lookup={"block": block, "source": source, "user": user},
        values={
            "verdict": verdict,
            "model_version": current.model_version.name,
            "round_number": current.round_number,
        },
        action=AuditAction.VERDICT_SET,
        object_type="verdict_label",
        op_id=op_id,
        claim={"verdict": verdict, "model_version": model_version, "round_number": round_number},
    )


def coverage_label_set(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource,
    coverage_type: str,
    model_version: str = "",
    round_number: int | None = None,
    op_id: uuid.UUID | None = None,
) -> LabelWrite:
    """The user's coverage type of the block's image on ``source``. Its provenance is the
    prediction the browser names, if this block has one of it, else the current one (see
    ``prediction_provenance``; ProvenanceUnknown for a version that never predicted it)."""
    version, made_in = prediction_provenance(block=block, source=source, claimed=model_version)
    return _label_set(
        user=user,
        block=block,
        source=source,
        model=CoverageLabel,
        lookup={"block": block, "source": source, "user": user},
        values={"coverage_type": coverage_type, "model_version": version, "round_number": made_in},
        action=AuditAction.COVERAGE_SET,
        object_type="coverage_label",
        op_id=op_id,
        claim={
            "coverage_type": coverage_type,
            "model_version": model_version,
            "round_number": round_number,
        },
    )


def _integration_provenance(*, block: Block) -> tuple[str, int | None]:
    row = (
        BlockIntegration.objects.filter(block=block, model_version__isnull=False)
        .select_related("model_version__round")
        .first()
    )
    if row is not None and row.model_version is not None:
        mv = row.model_version
        return mv.name, mv.round.number if mv.round is not None else None
    return prediction_provenance(block=block, source=None)


def integration_label_set(
    *,
    user: AbstractBaseUser,
    block: Block,
    decision: str,
    model_version: str = "",
    round_number: int | None = None,
    op_id: uuid.UUID | None = None,
) -> LabelWrite:
    """The block's integration decision; replaces the previous one, whoever made it. Its
    provenance is decided here: the integration model whose decision is in force on the block,
    else the block's current prediction (what the browser sends is not taken)."""
    version, made_in = _integration_provenance(block=block)
    return _label_set(
        user=user,
        block=block,
        source=None,
        model=IntegrationLabel,
        lookup={"block": block},
        values={"decision": decision, "model_version": version, "round_number": made_in},
        action=AuditAction.INTEGRATION_SET,
        object_type="integration_label",
        op_id=op_id,
        claim={"decision": decision, "model_version": model_version, "round_number": round_number},
    )
