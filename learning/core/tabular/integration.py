"""Integration model: which source(s) to keep per block, and the merge rule that applies it.

Inputs (:data:`INTEGRATION_FEATURE_NAMES`, 29 in this order): for each source, Mapbox then
Google, the 11 per-source non-terrain features of the paper's Table 5 (coverage type,
sharpness, hue, saturation, lightness, area, area fraction, solidity mean/total, Euler
mean/total) prefixed ``mapbox_``/``google_``; then the shared IoU between the two masks and the 4
terrain features (elevation, slope, TRI, roughness, the same for both sources); then each
source's correctness model P(TP), ``mapbox_p_tp`` and ``google_p_tp``. The paper counts "12 per
source" because each source's row carries the IoU; it is kept once here so that permutation
importance is not split between two identical columns. 2 x 11 + 1 + 4 + 2 = 29, within the
paper's 28-30.

Decisions are :class:`~learning.core.integration_decision.IntegrationDecision` (neither,
only_mapbox, only_google, merge_both; the first bundles' mapbox/google/merge are read too).
:func:`merge_masks` turns a decision and the two masks into the final block mask.

When every label holds one decision (a demo whose masks are poor everywhere: "neither" on every
block) no classifier can be fitted; :func:`integration_train` then returns a constant model of
that decision (bundle kind :data:`CONSTANT_KIND`, ``metrics["constant"]`` names it), so the
converged provinces can still be integrated, and the registry shows it for what it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from learning.core.bundle import bundle_open
from learning.core.features.block import SOURCE_NAMES, TERRAIN_NAMES, BlockFeatures
from learning.core.features.region import IGNORE, check_mask
from learning.core.integration_decision import DECISIONS, IntegrationDecision, decision_canonical
from learning.core.tabular import TabularClassifier, encode_labels, train_classifier
from learning.core.tabular.constant import ConstantClassifier, constant_fit

KIND = "integration-xgb"
CONSTANT_KIND = "integration-constant"
SOURCES = ("mapbox", "google")


__all__ = ["DECISIONS", "IntegrationDecision"]  # re-exported: the model's classes
INTEGRATION_FEATURE_NAMES: tuple[str, ...] = (
    *(f"mapbox_{n}" for n in SOURCE_NAMES),
    *(f"google_{n}" for n in SOURCE_NAMES),
    "iou_sources",
    *TERRAIN_NAMES,
    "mapbox_p_tp",
    "google_p_tp",
)


def integration_vector(mapbox: BlockFeatures, google: BlockFeatures, *, mapbox_p_tp: float,
                       google_p_tp: float) -> npt.NDArray[np.float64]:
    """The 29 inputs of one block from both sources' features and correctness P(TP).

    Terrain and IoU are taken from the Mapbox record (both records hold the same block); NaN
    there falls back to the Google record's value.
    """
    vm = dict(zip(mapbox.names(), mapbox.to_vector().tolist(), strict=True))
    vg = dict(zip(google.names(), google.to_vector().tolist(), strict=True))
    shared = [vm[n] if not np.isnan(vm[n]) else vg[n] for n in ("iou_sources", *TERRAIN_NAMES)]
    return np.array([*(vm[n] for n in SOURCE_NAMES), *(vg[n] for n in SOURCE_NAMES), *shared,
                     mapbox_p_tp, google_p_tp], dtype=np.float64)


class IntegrationModel:
    """A trained integration classifier (wraps :class:`TabularClassifier`), or the constant
    model of one-decision labels (:class:`ConstantClassifier`)."""

    def __init__(self, clf: TabularClassifier | ConstantClassifier) -> None:
        if clf.feature_names != INTEGRATION_FEATURE_NAMES:
            raise ValueError("an integration model must use INTEGRATION_FEATURE_NAMES in order")
        self.clf = clf

    @property
    def metrics(self) -> dict[str, Any]:
        return self.clf.metrics

    @property
    def constant(self) -> IntegrationDecision | None:
        """The one decision of a constant model; None for a learned one."""
        if isinstance(self.clf, ConstantClassifier):
            return IntegrationDecision(self.clf.constant)
        return None

    def predict(self, x: npt.ArrayLike) -> list[IntegrationDecision]:
        return [IntegrationDecision(v) for v in self.clf.predict(x)]

    def predict_proba(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Probabilities with one column per :data:`DECISIONS` entry (0 for unseen classes)."""
        raw = self.clf.predict_proba(x)
        out = np.zeros((raw.shape[0], len(DECISIONS)))
        for j, c in enumerate(self.clf.classes):
            out[:, DECISIONS.index(IntegrationDecision(c).value)] = raw[:, j]
        return out

    def save(self, dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        kind = CONSTANT_KIND if isinstance(self.clf, ConstantClassifier) else KIND
        return self.clf.save(dest, kind=kind, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IntegrationModel:
        if bundle_open(path, verify=False).kind == CONSTANT_KIND:
            return cls(ConstantClassifier.load(path, kind=CONSTANT_KIND))
        return cls(TabularClassifier.load(path, kind=KIND))


def integration_train(x: npt.ArrayLike, decisions: Sequence[IntegrationDecision | str], *,
                      seed: int = 0, test_size: float = 0.2,
                      params: dict[str, Any] | None = None) -> IntegrationModel:
    """Train on rows of :data:`INTEGRATION_FEATURE_NAMES` and the interpreters' decisions.

    Labels of one decision only give the constant model of that decision (checked like any
    input: a table of the right width, one label per row)."""
    arr = np.asarray(x, dtype=np.float64)
    labels = [decision_canonical(getattr(d, "value", d)) for d in decisions]
    ids = encode_labels(labels, DECISIONS)
    if ids.size and np.unique(ids).size == 1:
        if arr.ndim != 2 or arr.shape != (ids.size, len(INTEGRATION_FEATURE_NAMES)):
            raise ValueError(f"expected a table of {ids.size} rows and "
                             f"{len(INTEGRATION_FEATURE_NAMES)} feature columns, got {arr.shape}")
        return IntegrationModel(constant_fit([DECISIONS[int(ids[0])]] * ids.size,
                                             feature_names=INTEGRATION_FEATURE_NAMES))
    clf = train_classifier(x, labels, feature_names=INTEGRATION_FEATURE_NAMES,
                           classes=DECISIONS, seed=seed, test_size=test_size, params=params)
    return IntegrationModel(clf)


def merge_masks(decision: IntegrationDecision | str, mapbox_mask: npt.NDArray[np.generic],
                google_mask: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """The final block mask for a decision: 1 = cropland, 0 = other, 255 = no usable pixel.

    - neither: 0 wherever either source has a valid pixel, 255 where both are ignored;
    - only_mapbox / only_google: that source's mask unchanged (its 255 stays 255);
    - merge_both: the union of cropland; a pixel ignored in one source takes the other's value, and
      is 255 only where both are ignored.
    """
    d = IntegrationDecision(getattr(decision, "value", decision))
    a = check_mask(mapbox_mask, "mapbox mask")
    b = check_mask(google_mask, "google mask")
    if a.shape != b.shape:
        raise ValueError(f"masks must be on the same grid, got {a.shape} and {b.shape}")
    both_ignored = (a == IGNORE) & (b == IGNORE)
    if d is IntegrationDecision.ONLY_MAPBOX:
        return a.copy()
    if d is IntegrationDecision.ONLY_GOOGLE:
        return b.copy()
    if d is IntegrationDecision.NEITHER:
        out = np.zeros_like(a)
    else:
        out = ((a == 1) | (b == 1)).astype(np.uint8)
    out[both_ignored] = IGNORE
    return out
