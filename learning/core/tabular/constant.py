"""A constant classifier: the honest model of labels that hold one class only.

When every training label is the same class there is nothing to learn and nothing to stratify,
so a learned classifier cannot be fitted; this predictor answers that class for every row with
probability 1. It is saved as its own bundle kind (no ``model.json``), and its metrics say what
it is: ``constant`` (the class), ``accuracy`` on the labels beside the majority-class
``baseline_accuracy`` (the same number: the constant *is* the trivial baseline), and the counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from learning.core.bundle import BundleError, bundle_open, bundle_writer
from learning.core.tabular.matrix import feature_matrix


@dataclass
class ConstantClassifier:
    """Predicts :attr:`classes` ``[0]`` for every row (same interface as a fitted classifier)."""

    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    importance: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.classes) != 1:
            raise ValueError(f"a constant classifier has one class, got {list(self.classes)}")

    @property
    def constant(self) -> str:
        return self.classes[0]

    def check_features(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return feature_matrix(x, self.feature_names)

    def predict_proba(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """One column (the constant class), 1 for every row."""
        return np.ones((self.check_features(x).shape[0], 1), dtype=np.float64)

    def predict(self, x: npt.ArrayLike) -> list[str]:
        return [self.constant] * self.check_features(x).shape[0]

    def save(self, dest: str | os.PathLike[str], *, kind: str, overwrite: bool = False) -> Path:
        with bundle_writer(dest, kind=kind, overwrite=overwrite) as tmp:
            meta = {"feature_names": list(self.feature_names), "classes": list(self.classes),
                    "constant": self.constant}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            (tmp / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=float))
        return Path(dest)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, kind: str) -> ConstantClassifier:
        bundle = bundle_open(path, kind=kind)
        meta = bundle.read_json("meta.json")
        try:
            names = tuple(str(n) for n in meta["feature_names"])
            classes = (str(meta["constant"]),)
        except (KeyError, TypeError) as e:
            raise BundleError(f"bundle {path}: meta.json lacks feature_names/constant") from e
        return cls(feature_names=names, classes=classes, metrics=bundle.read_json("metrics.json"))


def constant_fit(labels: Sequence[str], *, feature_names: Sequence[str]) -> ConstantClassifier:
    """The constant classifier of labels that all hold one class (canonical strings)."""
    present = sorted(set(labels))
    if len(present) != 1:
        raise ValueError(f"a constant classifier needs labels of one class, got {present}")
    only, n = present[0], len(labels)
    metrics: dict[str, Any] = {
        "constant": only,
        "accuracy": 1.0,
        "baseline_accuracy": 1.0,
        "n_train": n,
        "n_test": 0,
        "class_counts": {only: n},
        "evaluation": f"all {n} labels were {only!r}: nothing to learn or to hold out; the "
                      "model is the majority-class baseline itself",
    }
    return ConstantClassifier(feature_names=tuple(feature_names), classes=(only,),
                              metrics=metrics)
