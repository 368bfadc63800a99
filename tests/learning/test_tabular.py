"""Correctness and integration XGBoost models: learnable synthetic data, bundles, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from learning.core.bundle import BundleError
from learning.core.features.block import FEATURE_NAMES
from learning.core.tabular.correctness import CorrectnessModel, Verdict, correctness_train
from learning.core.tabular.integration import (
    DECISIONS,
    INTEGRATION_FEATURE_NAMES,
    IntegrationDecision,
    IntegrationModel,
    integration_train,
    integration_vector,
    merge_masks,
)

FAST = {"n_estimators": 60}


def correctness_data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Verdicts driven by area fraction, solidity, cloudiness and Euler number, with noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURE_NAMES)))
    i = {name: k for k, name in enumerate(FEATURE_NAMES)}
    x[:, i["coverage_type"]] = rng.integers(0, 5, n)
    x[:, i["area_fraction"]] = rng.random(n)
    x[rng.random(n) < 0.05, i["slope_median"]] = np.nan  # missing DEM values are allowed
    verdict = np.full(n, "tp", dtype=object)
    verdict[x[:, i["area_fraction"]] < 0.25] = "fp"
    verdict[(x[:, i["euler_mean"]] < -0.8) & (x[:, i["area_fraction"]] >= 0.25)] = "noise"
    verdict[x[:, i["coverage_type"]] == 2] = "artifact"
    flip = rng.random(n) < 0.05
    verdict[flip] = rng.choice(["tp", "fp", "noise", "artifact"], flip.sum())
    return x, verdict.tolist()


def integration_data(n: int = 600, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(INTEGRATION_FEATURE_NAMES)))
    i = {name: k for k, name in enumerate(INTEGRATION_FEATURE_NAMES)}
    for name in ("mapbox_coverage_type", "google_coverage_type"):
        x[:, i[name]] = rng.integers(0, 5, n)
    pm, pg = rng.random(n), rng.random(n)
    x[:, i["mapbox_p_tp"]], x[:, i["google_p_tp"]] = pm, pg
    d = np.where(pm > pg, "mapbox", "google").astype(object)
    d[(pm < 0.3) & (pg < 0.3)] = "neither"
    d[(pm > 0.6) & (pg > 0.6) & (x[:, i["slope_median"]] > 0)] = "merge"
    flip = rng.random(n) < 0.05
    d[flip] = rng.choice(["neither", "mapbox", "google", "merge"], flip.sum())
    return x, d.tolist()


@pytest.fixture(scope="module")
def correctness_model() -> CorrectnessModel:
    x, y = correctness_data()
    return correctness_train(x, y, seed=3, params=FAST)


def test_correctness_learns(correctness_model: CorrectnessModel) -> None:
    m = correctness_model.metrics
    assert m["n_train"] == 480 and m["n_test"] == 120
    assert m["accuracy"] > 0.8  # chance is ~0.4 (majority class)
    assert set(m["report"]) >= {"tp", "fp", "noise", "artifact", "macro avg"}
    assert 0 <= m["correctness_rate_test"] <= 1
    assert abs(m["correctness_rate_test"] - m["correctness_rate_true"]) < 0.15
    imp = correctness_model.importance
    assert list(imp) == list(FEATURE_NAMES)
    top = sorted(imp, key=lambda k: imp[k]["mean"], reverse=True)[:3]
    assert "area_fraction" in top and "coverage_type" in top


def test_correctness_predictions(correctness_model: CorrectnessModel) -> None:
    x, _ = correctness_data(50, seed=9)
    proba = correctness_model.predict_proba(x)
    assert proba.shape == (50, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    p_tp = correctness_model.p_tp(x)
    pred = correctness_model.predict(x)
    assert all(isinstance(v, Verdict) for v in pred)
    rate = correctness_model.correctness_rate(x)
    assert rate == np.mean([v is Verdict.TP for v in pred])
    # A block with everything mapped right: high P(TP); a cloudy block: artifact.
    clear = np.zeros(16)
    clear[FEATURE_NAMES.index("area_fraction")] = 0.7
    cloudy = clear.copy()
    cloudy[FEATURE_NAMES.index("coverage_type")] = 2
    assert correctness_model.p_tp(clear)[0] > 0.5 > correctness_model.p_tp(cloudy)[0]
    assert correctness_model.predict(cloudy) == [Verdict.ARTIFACT]
    assert p_tp.shape == (50,)


def test_correctness_bundle_roundtrip(correctness_model: CorrectnessModel,
                                      tmp_path: Path) -> None:
    dest = correctness_model.save(tmp_path / "corr")
    for name in ("model.json", "meta.json", "metrics.json", "importance.json",
                 "importance.png", "manifest.json"):
        assert (dest / name).is_file(), name
    assert (dest / "importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = CorrectnessModel.load(dest)
    x, _ = correctness_data(80, seed=5)
    np.testing.assert_array_equal(loaded.predict_proba(x), correctness_model.predict_proba(x))
    assert loaded.metrics["accuracy"] == correctness_model.metrics["accuracy"]
    meta = json.loads((dest / "meta.json").read_text())
    assert meta["classes"] == ["tp", "fp", "noise", "artifact"]
    assert meta["feature_names"] == list(FEATURE_NAMES)


def test_corrupt_and_wrong_bundles(correctness_model: CorrectnessModel, tmp_path: Path) -> None:
    dest = correctness_model.save(tmp_path / "corr")
    with pytest.raises(BundleError, match="expected 'integration-xgb'"):
        IntegrationModel.load(dest)
    with (dest / "model.json").open("a") as f:
        f.write(" ")
    with pytest.raises(BundleError, match="checksum"):
        CorrectnessModel.load(dest)
    with pytest.raises(BundleError, match="not a model bundle"):
        CorrectnessModel.load(tmp_path)


@pytest.mark.parametrize(
    ("x_shape", "labels", "match"),
    [
        ((40, 15), ["tp", "fp"] * 20, "16 feature columns"),
        ((40, 16), ["tp", "fp"] * 19 + ["tp", None], "missing"),
        ((40, 16), ["tp", "fp"] * 19 + ["tp", float("nan")], "missing"),
        ((40, 16), ["tp"] * 40, "at least two classes"),
        ((40, 16), ["tp"] * 39 + ["fp"], "fewer than 2 samples"),
        ((40, 16), ["tp", "maybe"] * 20, "unknown label"),
        ((40, 16), ["tp", "fp"] * 10, "40 feature rows but 20 labels"),
    ],
)
def test_bad_training_inputs(x_shape: tuple[int, int], labels: list[object], match: str) -> None:
    x = np.random.default_rng(0).normal(size=x_shape)
    with pytest.raises(ValueError, match=match):
        correctness_train(x, labels, params=FAST)  # type: ignore[arg-type]


def test_wrong_feature_count_at_prediction(correctness_model: CorrectnessModel) -> None:
    with pytest.raises(ValueError, match="expected 16 features"):
        correctness_model.predict(np.zeros((3, 12)))
    with pytest.raises(ValueError, match="infinity"):
        correctness_model.predict(np.full((1, 16), np.inf))


def test_two_verdict_classes_are_enough(tmp_path: Path) -> None:
    x, y = correctness_data(200)
    y2 = ["tp" if v == "tp" else "fp" for v in y]
    model = correctness_train(x, y2, params=FAST)
    assert model.clf.classes == ("tp", "fp")
    proba = model.predict_proba(x[:5])
    assert proba.shape == (5, 4) and (proba[:, 2:] == 0).all()
    loaded = CorrectnessModel.load(model.save(tmp_path / "b"))
    np.testing.assert_array_equal(loaded.predict_proba(x[:5]), proba)


def test_integration_learns_and_roundtrips(tmp_path: Path) -> None:
    x, y = integration_data()
    model = integration_train(x, y, seed=1, params=FAST)
    assert len(INTEGRATION_FEATURE_NAMES) == 29
    assert model.metrics["accuracy"] > 0.75  # chance ~0.3
    loaded = IntegrationModel.load(model.save(tmp_path / "integ"))
    np.testing.assert_array_equal(loaded.predict_proba(x[:40]), model.predict_proba(x[:40]))
    assert all(isinstance(d, IntegrationDecision) for d in loaded.predict(x[:3]))
    with pytest.raises(ValueError, match="29 feature columns"):
        integration_train(x[:, :28], y)


def test_integration_vector_layout() -> None:
    from learning.core.features.block import BlockFeatures

    base = dict.fromkeys(FEATURE_NAMES, 1.0)
    base["coverage_type"] = "planting"
    mb = BlockFeatures(**{**base, "area_m2": 10.0, "slope_median": 5.0})  # type: ignore[arg-type]
    gg = BlockFeatures(**{**base, "area_m2": 20.0, "coverage_type": "snow_ice"})  # type: ignore[arg-type]
    v = integration_vector(mb, gg, mapbox_p_tp=0.9, google_p_tp=0.2)
    named = dict(zip(INTEGRATION_FEATURE_NAMES, v.tolist(), strict=True))
    assert named["mapbox_area_m2"] == 10 and named["google_area_m2"] == 20
    assert named["google_coverage_type"] == 3 and named["slope_median"] == 5
    assert named["mapbox_p_tp"] == 0.9 and named["google_p_tp"] == 0.2


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ("neither", [[0, 0, 0, 255]]),
        (IntegrationDecision.ONLY_MAPBOX, [[1, 0, 255, 255]]),
        ("google", [[0, 1, 1, 255]]),
        ("merge", [[1, 1, 1, 255]]),
    ],
)
def test_merge_rule(decision: str, expected: list[list[int]]) -> None:
    mapbox = np.array([[1, 0, 255, 255]], np.uint8)
    google = np.array([[0, 1, 1, 255]], np.uint8)
    out = merge_masks(decision, mapbox, google)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_merge_rule_bad_inputs() -> None:
    a = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError):
        merge_masks("both", a, a)
    with pytest.raises(ValueError, match="same grid"):
        merge_masks("merge", a, np.zeros((2, 3), np.uint8))


def test_one_decision_gives_a_constant_integration_model(tmp_path: Path) -> None:
    """Labels of one decision cannot fit a classifier: the model is the constant of that
    decision, says so in its metrics (beside the baseline it equals) and its bundle kind, and
    round-trips."""
    from learning.core.tabular.integration import CONSTANT_KIND

    x, _ = integration_data()
    model = integration_train(x[:30], ["neither"] * 30)
    assert model.constant is IntegrationDecision.NEITHER
    m = model.metrics
    assert (m["constant"], m["accuracy"], m["baseline_accuracy"], m["n_train"]) == (
        "neither", 1.0, 1.0, 30)
    assert model.predict(x[30:33]) == [IntegrationDecision.NEITHER] * 3
    proba = model.predict_proba(x[30:33])
    assert proba.shape == (3, 4) and (proba[:, 0] == 1).all() and (proba[:, 1:] == 0).all()
    dest = model.save(tmp_path / "const")
    assert json.loads((dest / "manifest.json").read_text())["kind"] == CONSTANT_KIND
    loaded = IntegrationModel.load(dest)
    assert loaded.constant is IntegrationDecision.NEITHER and loaded.metrics == m
    np.testing.assert_array_equal(loaded.predict_proba(x[:5]), model.predict_proba(x[:5]))
    with pytest.raises(ValueError, match="29 feature columns"):
        integration_train(x[:30, :28], ["neither"] * 30)
    with pytest.raises(ValueError, match="unknown label"):
        integration_train(x[:2], ["neither", "both"])
    # A learned model is never constant, and its accuracy has the majority baseline beside it.
    xs, ys = integration_data()
    learned = integration_train(xs, ys, seed=1, params=FAST)
    assert learned.constant is None
    assert 0 < learned.metrics["baseline_accuracy"] < learned.metrics["accuracy"]
    assert learned.metrics["baseline_class"] in DECISIONS
