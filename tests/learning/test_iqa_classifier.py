"""Coverage-type classifier: learns distinguishable images, bundles round-trip, corruption fails."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from learning.core.bundle import BundleError
from learning.core.cli import main
from learning.core.iqa.classifier import (
    COVERAGE_TYPES,
    CoverageType,
    IQAClassifier,
    IQAConfig,
)


def synthetic_blocks(n_per_class: int,
                     seed: int = 0) -> tuple[list[np.ndarray], list[CoverageType]]:
    """Green field texture, brown tilled texture, white cloud, light-grey snow, black fill."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n_per_class):
        stripes = (np.sin(np.arange(48) / rng.uniform(1.5, 3.0))[None, :, None] * 30)
        green = np.clip(np.array([60, 140, 50]) + stripes + rng.normal(0, 10, (48, 48, 3)), 0, 255)
        brown = np.clip(np.array([150, 120, 80]) + stripes + rng.normal(0, 10, (48, 48, 3)), 0, 255)
        white = np.clip(245 + rng.normal(0, 4, (48, 48, 3)), 0, 255)
        grey = np.clip(190 + rng.normal(0, 15, (48, 48, 3)), 0, 255)
        black = np.clip(rng.normal(2, 2, (48, 48, 3)), 0, 255)
        for img, lab in zip((green, brown, white, grey, black), COVERAGE_TYPES, strict=True):
            images.append(img.astype(np.uint8))
            labels.append(lab)
    return images, labels


def test_coverage_types_are_the_papers_five_in_order() -> None:
    assert [c.value for c in COVERAGE_TYPES] == [
        "planting", "non_planting", "cloudy", "snow_ice", "nodata"]
    assert CoverageType("snow_ice") is CoverageType.SNOW_ICE


def test_config_forbids_unknown_keys() -> None:
    with pytest.raises(ValueError):
        IQAConfig(epochs=2, depth=3)  # type: ignore[call-arg]  # the typo is the test


def test_training_lowers_loss_and_learns_the_types() -> None:
    images, labels = synthetic_blocks(8)
    clf = IQAClassifier(IQAConfig.tiny(epochs=6), device="cpu")
    hist = clf.train(images, labels)
    assert hist["epoch_losses"][-1] < 0.7 * hist["epoch_losses"][0]
    test_images, test_labels = synthetic_blocks(3, seed=1)
    ev = clf.evaluate(test_images, test_labels)
    assert ev.confusion.shape == (5, 5)
    assert ev.confusion.sum() == len(test_images) == ev.n
    assert np.trace(ev.confusion) / ev.n == pytest.approx(ev.accuracy)
    assert ev.accuracy >= 0.6  # chance is 0.2
    pred = clf.predict(test_images[:5])
    assert pred.probabilities.shape == (5, 5)
    np.testing.assert_allclose(pred.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert all(isinstance(c, CoverageType) for c in pred.labels)


def test_training_stops_when_asked_before_the_next_step() -> None:
    """A round cancelled (or its lease lost) stops the coverage classifier's training at the
    next step, as it stops the segmenter's (``fit(should_stop=...)``)."""
    images, labels = synthetic_blocks(2)
    clf = IQAClassifier(IQAConfig.tiny(epochs=3), device="cpu")
    asked = []

    def stop_after_two() -> bool:
        asked.append(1)
        return len(asked) > 2

    hist = clf.train(images, labels, should_stop=stop_after_two)
    assert hist["stopped"] is True and len(hist["step_losses"]) == 2
    full = IQAClassifier(IQAConfig.tiny(epochs=3), device="cpu").train(images, labels)
    assert full["stopped"] is False and len(full["step_losses"]) > 2
    assert not clf.model.training  # left in eval mode


def test_unknown_label_is_refused() -> None:
    images, _ = synthetic_blocks(1)
    with pytest.raises(ValueError, match="unknown coverage type"):
        IQAClassifier(IQAConfig.tiny(epochs=1)).train(images[:1], ["rainy"])


def test_bundle_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    images, labels = synthetic_blocks(2)
    clf = IQAClassifier(IQAConfig.tiny(epochs=1), device="cpu")
    clf.train(images, labels)
    dest = clf.save(tmp_path / "iqa", metrics={"val_accuracy": 0.5})
    for name in ("weights.safetensors", "config.json", "class_map.json", "normalisation.json",
                 "metrics.json", "manifest.json"):
        assert (dest / name).is_file()
    assert json.loads((dest / "manifest.json").read_text())["kind"] == "iqa-resnet"
    loaded = IQAClassifier.load(dest)
    np.testing.assert_array_equal(loaded.predict(images).probabilities,
                                  clf.predict(images).probabilities)
    assert loaded.config == clf.config


def test_corrupt_bundle_raises_bundle_error(tmp_path: Path) -> None:
    clf = IQAClassifier(IQAConfig.tiny(epochs=1), device="cpu")
    dest = clf.save(tmp_path / "iqa")
    weights = dest / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="corrupt"):
        IQAClassifier.load(dest)
    with pytest.raises(BundleError):
        IQAClassifier.load(tmp_path / "nothing-here")


def _write_dataset(folder: Path, images: list[np.ndarray], labels: list[str]) -> Path:
    folder.mkdir()
    with (folder / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "coverage_type"])
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            cv2.imwrite(str(folder / f"b{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            w.writerow([f"b{i}.png", lab])
    return folder


def test_cli_train_iqa(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, labels = synthetic_blocks(2)
    d = _write_dataset(tmp_path / "data", images, [c.value for c in labels])
    cfg = tmp_path / "cfg.json"
    cfg.write_text(IQAConfig.tiny(epochs=2).model_dump_json())
    rc = main(["train-iqa", "--images", str(d), "--labels", str(d / "labels.csv"),
               "--config", str(cfg), "--out", str(tmp_path / "b"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["n_train"] + out["n_val"] == len(images)
    assert len(out["val_confusion"]) == 5
    IQAClassifier.load(tmp_path / "b")


def test_cli_train_iqa_bad_label_exits_2_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, _ = synthetic_blocks(1)
    d = _write_dataset(tmp_path / "data", images, ["planting"] * 4 + ["foggy"])
    rc = main(["train-iqa", "--images", str(d), "--labels", str(d / "labels.csv"),
               "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "foggy" in err
