"""Tabular XGBoost models over block features: shared training, evaluation and bundle I/O.

``correctness`` (verdict per block and source) and ``integration`` (which source(s) to keep per
block) are thin wrappers over :func:`train_classifier` and :class:`TabularClassifier`.

Training: labels are checked (no missing label, at least two classes, at least two samples per
class), split 80/20 stratified with a fixed seed, fitted with a small fixed XGBoost
configuration (``n_jobs=1``; NaN features are treated as missing), and evaluated on the held-out
part: accuracy beside the trivial baseline (``baseline_accuracy``: always answering the training
part's most frequent class), ``classification_report`` (as a dict), confusion matrix and permutation
importance (accuracy drop, ``sklearn.inspection.permutation_importance``). A bundle holds the
model (``model.json`` from ``save_model``), ``meta.json`` (feature names, class map, params),
``metrics.json``, ``importance.json`` and ``importance.png``.
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

FloatMatrix = npt.NDArray[np.float64]
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": 4,
    "learning_rate": 0.1,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "tree_method": "hist",
    "n_jobs": 1,
}


@dataclass
class TabularClassifier:
    """A fitted XGBoost classifier with its feature names and class labels (in code order)."""

    model: Any  # xgboost.XGBClassifier
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    importance: dict[str, dict[str, float]] = field(default_factory=dict)

    def check_features(self, x: npt.ArrayLike) -> FloatMatrix:
        return feature_matrix(x, self.feature_names)

    def predict_proba(self, x: npt.ArrayLike) -> FloatMatrix:
        """Class probabilities, columns in :attr:`classes` order."""
        return np.asarray(self.model.predict_proba(self.check_features(x)), dtype=np.float64)

    def predict(self, x: npt.ArrayLike) -> list[str]:
        """The most probable class label of each row."""
        proba = self.predict_proba(x)
        return [self.classes[i] for i in proba.argmax(axis=1)]

    def save(self, dest: str | os.PathLike[str], *, kind: str, overwrite: bool = False) -> Path:
        """Write the model as a bundle of ``kind`` at ``dest``."""
        with bundle_writer(dest, kind=kind, overwrite=overwrite) as tmp:
            self.model.save_model(str(tmp / "model.json"))
            meta = {"feature_names": list(self.feature_names), "classes": list(self.classes),
                    "params": self.model.get_params()}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
            (tmp / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=float))
            (tmp / "importance.json").write_text(json.dumps(self.importance, indent=2))
            if self.importance:
                _importance_plot(self.importance, tmp / "importance.png", title=kind)
        return Path(dest)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, kind: str) -> TabularClassifier:
        """Open and verify a bundle of ``kind`` and load its model."""
        import xgboost as xgb

        bundle = bundle_open(path, kind=kind)
        meta = bundle.read_json("meta.json")
        try:
            names = tuple(str(n) for n in meta["feature_names"])
            classes = tuple(str(c) for c in meta["classes"])
        except (KeyError, TypeError) as e:
            raise BundleError(f"bundle {path}: meta.json lacks feature_names/classes") from e
        model = xgb.XGBClassifier()
        try:
            model.load_model(str(bundle.file("model.json")))
        except xgb.core.XGBoostError as e:
            raise BundleError(f"bundle {path}: model.json cannot be loaded ({e})") from e
        return cls(model=model, feature_names=names, classes=classes,
                   metrics=bundle.read_json("metrics.json"),
                   importance=bundle.read_json("importance.json"))


def encode_labels(labels: Sequence[object], classes: Sequence[str]) -> npt.NDArray[np.int64]:
    """Map label strings (or enum members) to their index in ``classes``; clear errors."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(labels), dtype=np.int64)
    for j, raw in enumerate(labels):
        value = getattr(raw, "value", raw)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            raise ValueError(f"label of row {j} is missing (NaN/None)")
        key = str(value).strip().lower()
        if key not in index:
            raise ValueError(f"row {j}: unknown label {raw!r}; expected one of {list(classes)}")
        out[j] = index[key]
    return out


def train_classifier(x: npt.ArrayLike, labels: Sequence[object], *,
                     feature_names: Sequence[str], classes: Sequence[str], seed: int = 0,
                     test_size: float = 0.2, params: dict[str, Any] | None = None,
                     importance_repeats: int = 5) -> TabularClassifier:
    """Fit, evaluate on a stratified hold-out and return the classifier with metrics."""
    import xgboost as xgb
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
    from sklearn.model_selection import train_test_split

    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(feature_names):
        raise ValueError(f"expected a table with {len(feature_names)} feature columns, "
                         f"got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError("features must be finite or NaN (missing), found infinity")
    if len(labels) != arr.shape[0]:
        raise ValueError(f"{arr.shape[0]} feature rows but {len(labels)} labels")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    y_full = encode_labels(labels, classes)
    present = np.unique(y_full)
    if present.size < 2:
        only = classes[int(present[0])] if present.size else "none"
        raise ValueError(f"need at least two classes to train, found only {only!r}")
    counts = np.bincount(y_full, minlength=len(classes))
    rare = [classes[i] for i in present if counts[i] < 2]
    if rare:
        raise ValueError(f"classes {rare} have fewer than 2 samples; cannot stratify the split")
    # XGBoost wants labels 0..K-1: keep only the classes that occur, in the canonical order.
    kept = tuple(classes[i] for i in present)
    remap = np.full(len(classes), -1, dtype=np.int64)
    remap[present] = np.arange(present.size)
    y = remap[y_full]
    x_tr, x_te, y_tr, y_te = train_test_split(arr, y, test_size=test_size, random_state=seed,
                                              stratify=y)
    all_params = {**DEFAULT_PARAMS, **(params or {}), "random_state": seed}
    if present.size == 2:
        all_params.setdefault("objective", "binary:logistic")
    else:
        all_params.setdefault("objective", "multi:softprob")
    model = xgb.XGBClassifier(**all_params)
    model.fit(x_tr, y_tr)
    pred = model.predict(x_te)
    label_ids = list(range(len(kept)))
    report = classification_report(y_te, pred, labels=label_ids, target_names=list(kept),
                                   output_dict=True, zero_division=0)
    majority = int(np.bincount(y_tr).argmax())
    metrics: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_te, pred)),
        "baseline_accuracy": float(np.mean(y_te == majority)),
        "baseline_class": kept[majority],
        "n_train": int(len(y_tr)),
        "n_test": int(len(y_te)),
        "class_counts": {c: int(counts[classes.index(c)]) for c in kept},
        "report": report,
        "confusion_matrix": confusion_matrix(y_te, pred, labels=label_ids).tolist(),
        "seed": seed,
        "test_size": test_size,
    }
    imp = permutation_importance(model, x_te, y_te, scoring="accuracy",
                                 n_repeats=importance_repeats, random_state=seed, n_jobs=1)
    importance = {
        name: {"mean": float(imp.importances_mean[i]), "std": float(imp.importances_std[i])}
        for i, name in enumerate(feature_names)
    }
    return TabularClassifier(model=model, feature_names=tuple(feature_names), classes=kept,
                             metrics=metrics, importance=importance)


def _importance_plot(importance: dict[str, dict[str, float]], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importance.items(), key=lambda kv: kv[1]["mean"])
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v["mean"] for _, v in items],
            xerr=[v["std"] for _, v in items], color="#4c8c4a")
    ax.set_xlabel("accuracy drop when permuted")
    ax.set_title(f"Permutation importance ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
