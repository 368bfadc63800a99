"""The model registry: register a trained bundle as a version, mark one version current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from learning.core.bundle import BundleError, bundle_open
from learning.models import ModelKind, ModelVersion, Round
from learning.services.round import dispatch
from mapping.models import Campaign


class ModelVersionError(ValueError):
    """The version cannot be registered or made current; the message says why."""


def bundle_relpath(*, campaign: Campaign, kind: str, name: str) -> str:
    return str(Path("models") / campaign.slug / kind / name)


def model_version_register(
    *,
    campaign: Campaign,
    kind: str,
    name: str,
    bundle_path: str,
    rnd: Round | None = None,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    training_samples: list[int] | None = None,
    train_seconds: float | None = None,
) -> ModelVersion:
    """Register a bundle that is completely written (its manifest and checksums verify).

    Idempotent: registering the same name again returns the existing version, so a training
    task delivered twice registers one version.
    """
    existing = ModelVersion.objects.filter(campaign=campaign, kind=kind, name=name).first()
    if existing is not None:
        return existing
    try:
        bundle_open(Path(settings.DATA_DIR) / bundle_path)
    except BundleError as e:
        raise ModelVersionError(f"refusing to register {name}: {e}") from e
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                campaign=campaign,
                kind=kind,
                name=name,
                bundle_path=bundle_path,
                round=rnd,
                config=config or {},
                metrics=metrics or {},
                training_samples=training_samples or [],
                train_seconds=train_seconds,
            )
    except IntegrityError:
        return ModelVersion.objects.get(campaign=campaign, kind=kind, name=name)


def model_version_set_current(*, model_version: ModelVersion) -> ModelVersion:
    """Make this version the one used for predictions shown to annotators (one per kind).

    The bundle is verified first: a corrupt or half-copied bundle never becomes current.
    """
    try:
        bundle_open(Path(settings.DATA_DIR) / model_version.bundle_path)
    except BundleError as e:
        raise ModelVersionError(f"{model_version.name} cannot be made current: {e}") from e
    with transaction.atomic():
        ModelVersion.objects.filter(
            campaign_id=model_version.campaign_id, kind=model_version.kind, is_current=True
        ).exclude(pk=model_version.pk).update(is_current=False)
        ModelVersion.objects.filter(pk=model_version.pk).update(is_current=True)
    model_version.refresh_from_db()
    return model_version


def model_version_make_current(*, model_version: ModelVersion) -> ModelVersion:
    """:func:`model_version_set_current` on a person's request (the registry API). A segmenter
    made current this way also queues the overview map's low-zoom sums for a worker, as a
    round's end counts them: otherwise the first lead to open the map after it waits for a
    sum over every prediction (about 2 s on a national campaign, issue 15)."""
    mv = model_version_set_current(model_version=model_version)
    if mv.kind == ModelKind.SEGMENTER:
        campaign_id = mv.campaign_id
        transaction.on_commit(lambda: dispatch.overview_sums_enqueue(campaign_id))
    return mv


def model_version_current(*, campaign: Campaign | int, kind: str) -> ModelVersion | None:
    cid = campaign if isinstance(campaign, int) else campaign.pk
    return ModelVersion.objects.filter(campaign_id=cid, kind=kind, is_current=True).first()
