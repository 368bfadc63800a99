"""The real-data check end to end (slow): train on real tiles under a time budget, then
evaluate the saved bundle on a labelled folder with the separate ``evaluate`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def _run(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "learning", *args, "--json"], cwd=ROOT, text=True,
                       capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_train_on_real_tiles_then_evaluate_bundle(shared_data, tmp_path):
    out = _run("train-segmenter", "--real-data", str(shared_data / "real"), "--preset", "tiny",
               "--time-budget", "240", "--crop-size", "128", "--batch-size", "4",
               "--val-fraction", "0.2",
               "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "bundle"),
               "--no-progress")
    assert out["n_train"] > 100 and out["n_val"] > 20
    assert out["steps"] > 50
    assert 0.0 < out["val_iou"] <= 1.0
    counts = out["val_counts"]
    assert counts["tp"] > 0 and counts["tp"] + counts["fn"] > 0

    # A labelled folder of real GID tiles: evaluate the saved bundle from disk only.
    images, masks = tmp_path / "img", tmp_path / "msk"
    images.mkdir()
    masks.mkdir()
    gid = shared_data / "real" / "gid15"
    names = sorted(p.stem for p in (gid / "images").glob("gid15_dry_cropland_*.tif"))[:4]
    for n in names:
        Image.open(gid / "images" / f"{n}.tif").convert("RGB").save(images / f"{n}.png")
        m = np.asarray(Image.open(gid / "masks_cropland" / f"{n}.png"))
        Image.fromarray(m).save(masks / f"{n}.png")
    ev = _run("evaluate", "--bundle", str(tmp_path / "bundle"), "--images", str(images),
              "--masks", str(masks))
    assert 0.0 <= ev["iou"] <= 1.0
    assert ev["tp"] + ev["fp"] + ev["fn"] + ev["tn"] > 0
