"""The integration decision: which source(s) make a block's final map (one vocabulary).

The values are the ones the database stores (integration labels and block integrations); the
Django ``TextChoices`` (``annotation.models.IntegrationDecision``) are built from this enum.
Integration-model bundles trained before the vocabulary was unified name their classes
``mapbox``/``google``/``merge``; :meth:`IntegrationDecision._missing_` reads those names too.
"""

from __future__ import annotations

import enum


class IntegrationDecision(enum.StrEnum):
    """Which source's cropland to keep for a block (DOMAIN.md, Integration decisions)."""

    NEITHER = "neither"
    ONLY_MAPBOX = "only_mapbox"
    ONLY_GOOGLE = "only_google"
    MERGE_BOTH = "merge_both"

    @classmethod
    def _missing_(cls, value: object) -> IntegrationDecision | None:
        legacy = LEGACY_NAMES.get(value) if isinstance(value, str) else None
        return cls(legacy) if legacy is not None else None


# The names of the first integration-model bundles (and their ``metrics["constant"]``).
LEGACY_NAMES: dict[str, str] = {
    "mapbox": IntegrationDecision.ONLY_MAPBOX.value,
    "google": IntegrationDecision.ONLY_GOOGLE.value,
    "merge": IntegrationDecision.MERGE_BOTH.value,
}

DECISIONS: tuple[str, ...] = tuple(d.value for d in IntegrationDecision)


def decision_canonical(value: object) -> object:
    """The stored name of a decision given in either vocabulary; anything else unchanged (so
    that a caller's own check names the bad value)."""
    return LEGACY_NAMES.get(value, value) if isinstance(value, str) else value
