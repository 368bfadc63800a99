"""Integration decisions as stored by the web app, and the final block mask they select.

The web app stores decisions with the names of ``annotation.IntegrationDecision``
(``neither``, ``only_mapbox``, ``only_google``, ``merge_both``); the learning core's integration
model uses ``neither``/``mapbox``/``google``/``merge``. This module translates between the two
and applies :func:`learning.core.tabular.integration.merge_masks`, so the product and the
integration model's training share one merge rule.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from learning.core.features.region import IGNORE
from learning.core.tabular.integration import IntegrationDecision, merge_masks

NEITHER = "neither"
ONLY_MAPBOX = "only_mapbox"
ONLY_GOOGLE = "only_google"
MERGE_BOTH = "merge_both"
DECISIONS: tuple[str, ...] = (NEITHER, ONLY_MAPBOX, ONLY_GOOGLE, MERGE_BOTH)

TO_CORE: dict[str, IntegrationDecision] = {
    NEITHER: IntegrationDecision.NEITHER,
    ONLY_MAPBOX: IntegrationDecision.MAPBOX,
    ONLY_GOOGLE: IntegrationDecision.GOOGLE,
    MERGE_BOTH: IntegrationDecision.MERGE,
}
FROM_CORE: dict[str, str] = {v.value: k for k, v in TO_CORE.items()}

U8 = npt.NDArray[np.uint8]


def decision_check(decision: str) -> str:
    """The decision if it is one of :data:`DECISIONS`, else ValueError naming the choices."""
    if decision not in TO_CORE:
        raise ValueError(f"unknown integration decision {decision!r}; expected one of {DECISIONS}")
    return decision


def needed_sources(decision: str) -> tuple[str, ...]:
    """Which sources' masks a decision reads (``mapbox``/``google``)."""
    d = decision_check(decision)
    if d == ONLY_MAPBOX:
        return ("mapbox",)
    if d == ONLY_GOOGLE:
        return ("google",)
    return ("mapbox", "google") if d == MERGE_BOTH else ()


def final_block_mask(
    *,
    decision: str,
    mapbox: npt.NDArray[np.generic] | None,
    google: npt.NDArray[np.generic] | None,
    shape: tuple[int, int] | None = None,
) -> U8:
    """The block's final mask: 1 cropland, 0 other, 255 no usable pixel.

    Merge is the union of the two masks; Neither is all 0 (255 only where both sources are
    ignored). A missing mask is allowed only where the decision does not read it: Neither with
    no masks at all needs ``shape`` and gives an all-0 block.
    """
    d = decision_check(decision)
    present = {"mapbox": mapbox, "google": google}
    missing = [s for s in needed_sources(d) if present[s] is None]
    if missing:
        raise ValueError(f"decision {d} needs the {' and '.join(missing)} mask")
    if mapbox is None and google is None:
        if shape is None:
            raise ValueError("a block without masks needs its shape")
        return np.zeros(shape, dtype=np.uint8)
    # A single present mask stands in for the absent one, which the decision does not read.
    a = mapbox if mapbox is not None else google
    b = google if google is not None else mapbox
    assert a is not None and b is not None  # one of them is present (checked above)
    return merge_masks(TO_CORE[d], a, b)


def area_fraction(mask: npt.NDArray[np.generic]) -> float:
    """Cropland pixels / valid (non-255) pixels; NaN for a block without a valid pixel."""
    valid = int(np.count_nonzero(mask != IGNORE))
    if valid == 0:
        return float("nan")
    return int(np.count_nonzero(mask == 1)) / valid
