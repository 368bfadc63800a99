"""Semantic correctness model: XGBoost over a block's 16 features -> interpreter verdict.

The verdict classes are :class:`Verdict` (TP, FP, Noise, Artifact). The **block correctness
rate** of a set of blocks is the share whose most probable verdict is TP; ``p_tp`` gives each
block's probability of TP, which also feeds the integration model.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from learning.core.features.block import FEATURE_NAMES, BlockFeatures
from learning.core.tabular import TabularClassifier, train_classifier

KIND = "correctness-xgb"


class Verdict(enum.StrEnum):
    """An interpreter's verdict on a predicted block (DOMAIN.md, Verdicts)."""

    TP = "tp"
    FP = "fp"
    NOISE = "noise"
    ARTIFACT = "artifact"


VERDICTS: tuple[str, ...] = tuple(v.value for v in Verdict)


class CorrectnessModel:
    """A trained correctness classifier (wraps :class:`TabularClassifier`)."""

    def __init__(self, clf: TabularClassifier) -> None:
        if clf.feature_names != FEATURE_NAMES:
            raise ValueError("a correctness model must use the 16 block features in order")
        self.clf = clf

    @property
    def metrics(self) -> dict[str, Any]:
        return self.clf.metrics

    @property
    def importance(self) -> dict[str, dict[str, float]]:
        return self.clf.importance

    def predict(self, x: npt.ArrayLike | Sequence[BlockFeatures]) -> list[Verdict]:
        return [Verdict(v) for v in self.clf.predict(_matrix(x))]

    def predict_proba(self, x: npt.ArrayLike | Sequence[BlockFeatures]) -> npt.NDArray[np.float64]:
        """Probabilities with one column per :data:`VERDICTS` entry (0 for unseen classes)."""
        raw = self.clf.predict_proba(_matrix(x))
        out = np.zeros((raw.shape[0], len(VERDICTS)))
        for j, c in enumerate(self.clf.classes):
            out[:, VERDICTS.index(c)] = raw[:, j]
        return out

    def p_tp(self, x: npt.ArrayLike | Sequence[BlockFeatures]) -> npt.NDArray[np.float64]:
        """P(verdict = TP) per block."""
        return self.predict_proba(x)[:, VERDICTS.index(Verdict.TP.value)]

    def correctness_rate(self, x: npt.ArrayLike | Sequence[BlockFeatures]) -> float:
        """Share of blocks whose most probable verdict is TP; NaN for no blocks."""
        pred = self.predict(x)
        return float(np.mean([v is Verdict.TP for v in pred])) if pred else float("nan")

    def save(self, dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        return self.clf.save(dest, kind=KIND, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CorrectnessModel:
        return cls(TabularClassifier.load(path, kind=KIND))


def _matrix(x: npt.ArrayLike | Sequence[BlockFeatures]) -> npt.NDArray[np.float64]:
    if isinstance(x, Sequence) and x and isinstance(x[0], BlockFeatures):
        return np.stack([f.to_vector() for f in x])  # type: ignore[union-attr]  # checked above
    return np.asarray(x, dtype=np.float64)


def correctness_train(x: npt.ArrayLike | Sequence[BlockFeatures],
                      verdicts: Sequence[Verdict | str], *, seed: int = 0,
                      test_size: float = 0.2, params: dict[str, Any] | None = None,
                      ) -> CorrectnessModel:
    """Train on rows of the 16 features (:data:`FEATURE_NAMES` order) and their verdicts.

    Metrics add ``correctness_rate_test`` (predicted) and ``correctness_rate_true`` (labelled)
    on the hold-out part, and ``mean_p_tp_test``.
    """
    from sklearn.model_selection import train_test_split

    arr = _matrix(x)
    clf = train_classifier(arr, verdicts, feature_names=FEATURE_NAMES, classes=VERDICTS,
                           seed=seed, test_size=test_size, params=params)
    model = CorrectnessModel(clf)
    # Recreate the same hold-out split to report rates on it.
    y = [str(getattr(v, "value", v)).strip().lower() for v in verdicts]
    _, x_te, _, y_te = train_test_split(arr, y, test_size=test_size, random_state=seed,
                                        stratify=y)
    clf.metrics["correctness_rate_test"] = model.correctness_rate(x_te)
    clf.metrics["correctness_rate_true"] = float(np.mean([v == Verdict.TP.value for v in y_te]))
    clf.metrics["mean_p_tp_test"] = float(model.p_tp(x_te).mean())
    return model
