"""The replay of the labelling loop: both arms, the app's pick, the CLI's file and plot."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import rasterio

from learning.core.cli import main
from learning.core.replay import (
    ReplayConfig,
    all_cropland,
    mean_confidence,
    replay,
    replay_combine,
    select_by_confidence,
)
from learning.core.segmentation.training import TrainOptions
from learning.core.segmentation.unet import UNetEngine, UNetSegConfig

GREEN, BROWN = (40, 160, 50), (150, 110, 70)


@dataclass(frozen=True)
class T:
    name: str
    dataset: str
    group: str
    image: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.uint8]


def _tile(i: int, rng: np.random.Generator, size: int = 48, prefix: str = "t") -> T:
    """Green cropland fields (random rectangles) on brown, with a little noise."""
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(0, 3))):
        y, x = rng.integers(0, size - 16, 2)
        h, w = rng.integers(8, 24, 2)
        mask[y:y + h, x:x + w] = 1
    img = np.where(mask[..., None] == 1, np.array(GREEN), np.array(BROWN)).astype(np.int16)
    img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    return T(f"{prefix}{i:02d}", "synth", f"g{i}", img, mask)


def _tiles(n: int, seed: int, prefix: str = "t") -> list[T]:
    rng = np.random.default_rng(seed)
    return [_tile(i, rng, prefix=prefix) for i in range(n)]


def _engine() -> UNetEngine:
    return UNetEngine(UNetSegConfig.tiny(init_seed=0), device="cpu")


OPTIONS = TrainOptions(epochs=1, steps_per_epoch=15, batch_size=4, crop_size=32, lr=5e-3,
                       warmup_steps=0, jitter=0.0)
CFG = ReplayConfig(initial=4, per_round=3, rounds=2, window=64, overlap=16)


def test_both_arms_share_the_start_and_grow_by_k_per_round() -> None:
    pool, val = _tiles(14, 0), _tiles(4, 99, prefix="v")
    seen: list[tuple[str, int]] = []
    out = replay(pool, val, make_engine=_engine, train_options=OPTIONS, config=CFG,
                 on_round=lambda arm, p: seen.append((arm, p["round"])))
    sel, rnd = out["arms"]["selection"], out["arms"]["random"]
    assert [p["labels"] for p in sel] == [p["labels"] for p in rnd] == [4, 7, 10]
    # Round 0 is one model trained once on the same initial tiles.
    assert sel[0]["iou"] == rnd[0]["iou"] and sel[0]["added"] == rnd[0]["added"]
    assert len(seen) == 6
    # Each arm adds tiles it did not have; nothing from the validation set is ever added.
    for arm in (sel, rnd):
        names = [n if isinstance(n, str) else n["tile"] for p in arm for n in p["added"]]
        assert len(names) == len(set(names)) == 10
        assert not set(names) & {t.name for t in val}
    assert out["all_cropland"]["iou"] == pytest.approx(
        sum(int(t.mask.sum()) for t in val) / sum(t.mask.size for t in val))
    reach = out["labels_to_reach_random_final"]
    assert reach["random"]["labels"] <= 10
    assert out["target_iou"] == rnd[-1]["iou"]
    assert out["savings"]["rounds"][0]["labels_active"] == 4
    # Training a real model on the synthetic pattern beats the constant guess.
    assert sel[-1]["iou"] > out["all_cropland"]["iou"]
    json.dumps(out)  # JSON-ready


def test_the_selection_arm_takes_the_least_confident_tiles() -> None:
    pool = _tiles(10, 1)
    engine = _engine()
    engine.train([(t.image, t.mask) for t in pool[:3]], options=OPTIONS)
    unlabelled = list(range(3, 10))
    picks = select_by_confidence(engine, pool, unlabelled, n=3, cfg=CFG,
                                 rng=np.random.default_rng(0))
    conf = {i: mean_confidence(engine.predict_block(pool[i].image, window=64, overlap=16)[1])
            for i in unlabelled}
    assert [i for i, _ in picks] == sorted(unlabelled, key=lambda i: (conf[i], i))[:3]
    assert [s for _, s in picks] == pytest.approx([1 - conf[i] for i, _ in picks], abs=1e-6)


def test_replay_refuses_too_few_tiles() -> None:
    with pytest.raises(ValueError, match="at least 7 training tiles"):
        replay(_tiles(5, 0), _tiles(2, 1), make_engine=_engine, train_options=OPTIONS,
               config=CFG)
    assert all_cropland(_tiles(2, 1))["iou"] > 0


def _real_folder(root: Path) -> Path:
    """A gid15/ folder as the real data has it: manifest, GeoTIFF images, PNG masks."""
    folder = root / "real" / "gid15"
    (folder / "images").mkdir(parents=True)
    (folder / "masks_cropland").mkdir()
    rows = []
    for t in _tiles(24, 5):
        scene = f"scene{int(t.name[1:]) % 8}"
        with rasterio.open(folder / "images" / f"{t.name}.tif", "w", driver="GTiff",
                           width=48, height=48, count=3, dtype="uint8") as ds:
            ds.write(np.moveaxis(t.image, -1, 0))
        cv2.imwrite(str(folder / "masks_cropland" / f"{t.name}.png"), t.mask)
        rows.append({"name": t.name, "image": f"images/{t.name}.tif",
                     "mask_cropland": f"masks_cropland/{t.name}.png", "scene_label": scene})
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "real"


@pytest.mark.parametrize("split", ["folds", "scenes"])
def test_cli_replay_writes_the_result_and_plot(split: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    real = _real_folder(tmp_path)
    save, png = tmp_path / "replay.json", tmp_path / "replay.png"
    rc = main(["replay", "--real-data", str(real), "--datasets", "gid15", "--engine", "unet",
               "--preset", "tiny", "--initial", "4", "--per-round", "3", "--rounds", "1",
               "--budget", "1", "--save", str(save), "--plot", str(png), "--json",
               "--no-progress", "--split", split])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads(save.read_text())
    assert stored["engine"]["name"] == "unet" and stored["engine"]["preset"] == "tiny"
    assert stored["data"]["split"].startswith("scene-group fold" if split == "folds" else "whole")
    assert stored["train_options"]["budget_clock"] == "cpu"
    assert printed["saved"] == str(save)
    assert [p["labels"] for p in stored["arms"]["random"]] == [4, 7]
    # The validation tiles are whole scene groups that never appear in training.
    val = set(stored["validation_tiles"])
    scene = {f"t{i:02d}": f"scene{i % 8}" for i in range(24)}
    assert val and {scene[n] for n in val}.isdisjoint(
        {scene[n if isinstance(n, str) else n["tile"]]
         for arm in stored["arms"].values() for p in arm for n in p["added"]})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _run(seed: int, sel: list[float], rnd: list[float], base: float) -> dict:
    def arm(ious: list[float]) -> list[dict]:
        return [{"round": r, "labels": 4 + 3 * r, "iou": v} for r, v in enumerate(ious)]

    return {"config": {"seed": seed}, "train_options": {}, "n_pool": 20, "n_validation": 6,
            "all_cropland": {"iou": base}, "arms": {"selection": arm(sel), "random": arm(rnd)},
            "seconds": 10.0, "validation_tiles": ["a"]}


def test_seeds_combine_into_mean_curves_with_each_seed_and_the_paired_difference() -> None:
    a = _run(0, [0.5, 0.7, 0.8], [0.5, 0.6, 0.7], 0.4)
    b = _run(1, [0.3, 0.4, 0.6], [0.3, 0.5, 0.5], 0.6)
    out = replay_combine([a, b])
    assert out["seeds"] == [0, 1]
    sel, rnd = out["arms"]["selection"], out["arms"]["random"]
    assert [p["labels"] for p in sel] == [4, 7, 10]
    assert [p["iou"] for p in sel] == pytest.approx([0.4, 0.55, 0.7])
    assert [p["iou"] for p in rnd] == pytest.approx([0.4, 0.55, 0.6])
    assert sel[1]["iou_seeds"] == [0.7, 0.4] and sel[1]["iou_sd"] == pytest.approx(0.2121, 1e-3)
    d = out["difference"]
    assert [x["mean"] for x in d] == pytest.approx([0.0, 0.0, 0.1])
    assert (d[1]["min"], d[1]["max"], d[1]["selection_better"]) == pytest.approx((-0.1, 0.1, 1))
    assert out["all_cropland"]["iou"] == pytest.approx(0.5)
    # Read off the mean curves: random's final 0.6 is reached by selection at 7 + 3 * 0.05/0.15.
    assert out["target_iou"] == pytest.approx(0.6)
    assert out["labels_to_reach_random_final"]["selection"]["interpolated"] == pytest.approx(8)
    assert out["labels_to_reach_random_final"]["random"]["labels"] == 10
    assert "validation_tiles" not in out["runs"][0]
    assert replay_combine([a]) == a  # one seed: as it was
    c = _run(2, [0.5, 0.6], [0.5, 0.6], 0.5)
    with pytest.raises(ValueError, match="different rounds"):
        replay_combine([a, c])


def test_cli_replay_several_seeds_in_worker_processes(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    real = _real_folder(tmp_path)
    save, png = tmp_path / "replay.json", tmp_path / "replay.png"
    rc = main(["replay", "--real-data", str(real), "--datasets", "gid15", "--engine", "unet",
               "--preset", "tiny", "--initial", "4", "--per-round", "3", "--rounds", "1",
               "--budget", "1", "--save", str(save), "--plot", str(png), "--json",
               "--no-progress", "--seeds", "2", "--workers", "2"])
    assert rc == 0
    stored = json.loads(save.read_text())
    assert stored["seeds"] == [0, 1]
    assert [r["config"]["seed"] for r in stored["runs"]] == [0, 1]
    # Each seed validates on its own fold.
    assert stored["data"]["split"] == ("seed 0: scene-group fold 1 of 5 (as bench segmenter); "
                                       "seed 1: scene-group fold 2 of 5 (as bench segmenter)")
    for name in ("selection", "random"):
        for i, p in enumerate(stored["arms"][name]):
            seeds = [r["arms"][name][i]["iou"] for r in stored["runs"]]
            assert p["iou_seeds"] == seeds and p["iou"] == pytest.approx(sum(seeds) / 2)
    assert len(stored["difference"]) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(capsys.readouterr().out)["seeds"] == [0, 1]
    assert main(["replay", "--real-data", str(real), "--seeds", "0", "--no-save"]) == 2
    assert "--seeds and --workers must be at least 1" in capsys.readouterr().err


def test_cli_replay_bad_input_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--real-data", str(tmp_path / "nope"), "--no-save"]) == 2
    assert "does not exist" in capsys.readouterr().err
    real = _real_folder(tmp_path)
    assert main(["replay", "--real-data", str(real), "--datasets", "gid15", "--engine", "x",
                 "--no-save"]) == 2
    assert "unknown engine 'x'" in capsys.readouterr().err
    assert main(["replay", "--real-data", str(real), "--datasets", "gid15", "--initial", "0",
                 "--no-save"]) == 2
    assert "bad replay option" in capsys.readouterr().err
    assert main(["replay", "--real-data", str(real), "--datasets", "gid15", "--steps", "0",
                 "--no-save"]) == 2
    assert "steps_per_epoch" in capsys.readouterr().err
