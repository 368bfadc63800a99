"""``python -m learning`` features / train-* / predict-correctness / stop-check via subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from learning.core.features.block import FEATURE_NAMES
from learning.core.tabular.integration import INTEGRATION_FEATURE_NAMES
from tests.learning.test_tabular import correctness_data, integration_data

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "learning", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def ok(*args: str) -> dict[str, Any]:
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def bad(*args: str, match: str) -> str:
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("error: "), line
    assert match in line, line
    return line


def write_tif(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:4326",
              west: float = 104.0, north: float = 30.65) -> Path:
    arr = data if data.ndim == 3 else data[None]
    h, w = arr.shape[1:]
    profile: dict[str, Any] = dict(driver="GTiff", width=w, height=h, count=arr.shape[0],
                                   dtype=str(arr.dtype))
    if crs is not None:
        profile.update(crs=crs, transform=from_origin(west, north, 0.05 / w, 0.05 / h))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(arr)
    return path


@pytest.fixture()
def block(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    image = rng.integers(1, 255, size=(3, 64, 64), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:40, 5:50] = 1
    other = np.zeros_like(mask)
    other[10:40, 5:30] = 1
    return {
        "image": write_tif(tmp_path / "img.tif", image),
        "mask": write_tif(tmp_path / "mask.tif", mask),
        "other": write_tif(tmp_path / "other.tif", other),
    }


def test_features_to_csv_and_json(block: dict[str, Path], tmp_path: Path,
                                  shared_data: Path) -> None:
    dem = shared_data / "dem" / "china_dem_0.2deg.tif"
    out = tmp_path / "f.csv"
    res = ok("features", "--image", str(block["image"]), "--mask", str(block["mask"]),
             "--other-mask", str(block["other"]), "--coverage-type", "planting",
             "--dem", str(dem), "--out", str(out))
    assert res["blocks"] == 1
    rows = list(csv.DictReader(out.open()))
    assert set(FEATURE_NAMES) <= set(rows[0])
    row = rows[0]
    assert row["coverage_type"] == "planting"
    assert float(row["iou_sources"]) == pytest.approx(25 / 45)
    assert float(row["area_fraction"]) == pytest.approx(30 * 45 / 64**2)
    assert float(row["elevation_median"]) > 0  # Chengdu plain, from the real DEM
    # 0.05 deg / 64 px at 30.6 N: about 75 m x 87 m pixels
    assert float(row["area_m2"]) == pytest.approx(30 * 45 * 75.0 * 86.9, rel=0.01)
    jout = tmp_path / "f.json"
    ok("features", "--image", str(block["image"]), "--mask", str(block["mask"]),
       "--out", str(jout))
    data = json.loads(jout.read_text())
    assert data[0]["iou_sources"] is None and data[0]["elevation_median"] is None


def test_features_bad_inputs(block: dict[str, Path], tmp_path: Path, shared_data: Path) -> None:
    out = str(tmp_path / "f.csv")
    two_band = write_tif(tmp_path / "two.tif", np.ones((2, 8, 8), np.uint8))
    bad("features", "--image", str(two_band), "--mask", str(block["mask"]), "--out", out,
        match="expected 3 bands")
    no_crs = write_tif(tmp_path / "nocrs.tif", np.ones((3, 64, 64), np.uint8), crs=None)
    bad("features", "--image", str(no_crs), "--mask", str(block["mask"]), "--out", out,
        match="no CRS")
    empty = write_tif(tmp_path / "empty.tif", np.full((64, 64), 255, np.uint8))
    bad("features", "--image", str(block["image"]), "--mask", str(empty), "--out", out,
        match="no valid pixel")
    wrong = write_tif(tmp_path / "wrong.tif", np.full((64, 64), 7, np.uint8))
    bad("features", "--image", str(block["image"]), "--mask", str(wrong), "--out", out,
        match="only 0, 1 and 255")
    small = write_tif(tmp_path / "small.tif", np.zeros((32, 64), np.uint8))
    bad("features", "--image", str(block["image"]), "--mask", str(small), "--out", out,
        match="32x64")
    sea = write_tif(tmp_path / "sea.tif", np.ones((3, 64, 64), np.uint8), west=125.0,
                    north=30.05)
    dem = shared_data / "dem" / "china_dem_0.2deg.tif"
    bad("features", "--image", str(sea), "--mask", str(block["mask"]), "--dem", str(dem),
        "--out", out, match="no-data cell")
    bad("features", "--image", str(block["image"]), "--mask", str(block["mask"]),
        "--coverage-type", "sunny", "--out", out, match="unknown coverage type")
    bad("features", "--image", str(tmp_path / "missing.tif"), "--mask", str(block["mask"]),
        "--out", out, match="cannot read")


def _write_table(path: Path, x: np.ndarray, names: tuple[str, ...], label: str,
                 labels: list[str], drop: str | None = None) -> Path:
    cols = [n for n in names if n != drop]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*cols, label])
        for row, y in zip(x, labels, strict=True):
            vals = dict(zip(names, row.tolist(), strict=True))
            w.writerow([("" if np.isnan(vals[c]) else vals[c]) for c in cols] + [y])
    return path


def test_train_predict_correctness(tmp_path: Path) -> None:
    x, y = correctness_data(300)
    table = _write_table(tmp_path / "t.csv", x, FEATURE_NAMES, "verdict", y)
    bundle = tmp_path / "bundle"
    res = ok("train-correctness", "--table", str(table), "--out", str(bundle))
    assert res["accuracy"] > 0.7 and res["n_test"] == 60
    assert (bundle / "importance.png").is_file()
    pred = ok("predict-correctness", "--bundle", str(bundle), "--table", str(table))
    assert pred["blocks"] == 300 and 0 < pred["correctness_rate"] < 1
    bad("train-correctness", "--table", str(table), "--out", str(bundle), match="already exists")
    # corrupt bundle
    (bundle / "model.json").write_text("{}")
    bad("predict-correctness", "--bundle", str(bundle), "--table", str(table), match="checksum")
    missing = _write_table(tmp_path / "m.csv", x, FEATURE_NAMES, "verdict", y, drop="slope_median")
    bad("train-correctness", "--table", str(missing), "--out", str(tmp_path / "b2"),
        match="missing column(s): slope_median")
    single = _write_table(tmp_path / "s.csv", x, FEATURE_NAMES, "verdict", ["tp"] * len(y))
    bad("train-correctness", "--table", str(single), "--out", str(tmp_path / "b3"),
        match="at least two classes")
    nan_label = _write_table(tmp_path / "n.csv", x, FEATURE_NAMES, "verdict", [""] + y[1:])
    bad("train-correctness", "--table", str(nan_label), "--out", str(tmp_path / "b4"),
        match="row 0 is missing")


def test_train_integration(tmp_path: Path) -> None:
    x, y = integration_data(300)
    table = _write_table(tmp_path / "t.csv", x, INTEGRATION_FEATURE_NAMES, "decision", y)
    res = ok("train-integration", "--table", str(table), "--out", str(tmp_path / "b"))
    assert res["accuracy"] > 0.6
    bad("train-integration", "--table", str(table), "--out", str(tmp_path / "b"),
        match="already exists")
    corrupt = tmp_path / "c.csv"
    corrupt.write_text("a,b\n1,2\n")
    bad("train-integration", "--table", str(corrupt), "--out", str(tmp_path / "b5"),
        match="missing column(s): mapbox_coverage_type")


def test_stop_check(tmp_path: Path) -> None:
    meas = tmp_path / "m.json"
    meas.write_text(json.dumps({"provinces": [
        {"province": "Henan", "iou": 0.9, "iou_samples": 20, "correctness": 0.9,
         "correctness_samples": 30, "area_mapbox_ha": 7e6, "official_area_ha": 7.5e6,
         "official_status": "VERIFIED"},
        {"province": "Chongqing", "iou": 0.6, "iou_samples": 12, "supplementary_rounds": 3,
         "official_area_ha": 1.87e6, "official_status": "VERIFIED"},
        {"province": "Beijing"},
    ]}))
    res = ok("stop-check", "--measurements", str(meas))
    assert [d["decision"] for d in res["decisions"]] == ["converged", "exhausted", "continue"]
    assert res["summary"] == {"converged": 1, "continue": 1, "exhausted": 1}
    rules = tmp_path / "r.json"
    rules.write_text(json.dumps({"iou_min": 0.95}))
    res2 = ok("stop-check", "--measurements", str(meas), "--rules", str(rules))
    assert res2["decisions"][0]["decision"] == "continue"
    rules.write_text(json.dumps({"iou_minimum": 0.95}))
    bad("stop-check", "--measurements", str(meas), "--rules", str(rules),
        match="iou_minimum: Extra inputs are not permitted")
    meas.write_text(json.dumps([{"province": "X", "iou": 2}]))
    bad("stop-check", "--measurements", str(meas), match="province #1: iou")
    meas.write_text("{not json")
    bad("stop-check", "--measurements", str(meas), match="not valid JSON")


class _Tty:
    """A stderr that says it is a terminal, so the progress bar draws."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only(block: dict[str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from learning.core.cli import main

    args = ["features", "--image", str(block["image"]), str(block["image"]),
            "--mask", str(block["mask"]), str(block["mask"]),
            "--out", str(tmp_path / "f.csv"), "--json"]
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(args) == 0
    assert "features" in tty.text and "2/2" in tty.text and "block" in tty.text
    assert json.loads(capsys.readouterr().out)["blocks"] == 2  # stdout stays JSON
    quiet = _Tty()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main([*args, "--no-progress"]) == 0
    assert quiet.text == ""


def test_training_table_progress_and_bad_config_is_one_line(tmp_path: Path) -> None:
    import cv2

    x, y = integration_data(120)
    table = _write_table(tmp_path / "t.csv", x, INTEGRATION_FEATURE_NAMES, "decision", y)
    r = cli("train-integration", "--table", str(table), "--out", str(tmp_path / "m"))
    assert r.returncode == 0 and r.stderr == ""  # not a terminal: no bar in the pipe
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.full((32, 32, 3), 90, np.uint8))
    labels = tmp_path / "labels.csv"
    labels.write_text("image,coverage_type\na.png,planting\n")
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"epochs": 0, "no_such_key": 1}))
    line = bad("train-iqa", "--images", str(images), "--labels", str(labels), "--config",
               str(cfg), "--out", str(tmp_path / "iqa"), match="bad config")
    assert "epochs" in line and "no_such_key" in line
    cfg.write_text("{not json")
    bad("train-iqa", "--images", str(images), "--labels", str(labels), "--config", str(cfg),
        "--out", str(tmp_path / "iqa"), match="is not JSON")
