"""The final block mask an integration decision selects, and a block's area fraction.

Decisions are :class:`learning.core.integration_decision.IntegrationDecision`, the one
vocabulary the database, the integration model and this module share; the mask comes from
:func:`learning.core.tabular.integration.merge_masks`, so the product and the integration
model's training share one merge rule.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from learning.core.features.region import IGNORE
from learning.core.integration_decision import DECISIONS, IntegrationDecision
from learning.core.tabular.integration import merge_masks

U8 = npt.NDArray[np.uint8]


def decision_check(decision: str) -> IntegrationDecision:
    """The decision if it is one of :data:`DECISIONS` (stored names only), else ValueError
    naming the choices."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown integration decision {decision!r}; expected one of {DECISIONS}")
    return IntegrationDecision(decision)


def needed_sources(decision: str) -> tuple[str, ...]:
    """Which sources' masks a decision reads (``mapbox``/``google``)."""
    d = decision_check(decision)
    if d is IntegrationDecision.ONLY_MAPBOX:
        return ("mapbox",)
    if d is IntegrationDecision.ONLY_GOOGLE:
        return ("google",)
    return ("mapbox", "google") if d is IntegrationDecision.MERGE_BOTH else ()


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
    return merge_masks(d, a, b)


def area_fraction(mask: npt.NDArray[np.generic]) -> float:
    """Cropland pixels / valid (non-255) pixels; NaN for a block without a valid pixel."""
    valid = int(np.count_nonzero(mask != IGNORE))
    if valid == 0:
        return float("nan")
    return int(np.count_nonzero(mask == 1)) / valid
