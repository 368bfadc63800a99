"""Round throughput (issue 15, item 4): the predict pipeline's overhead over the bare model.

One block image, as a round predicts it: read the block GeoTIFF, cut overlapping windows, run
the model, blend (stitch) the windows, write the mask + probability GeoTIFF, turn the mask into
polygons (what the predict stage stores), then the block's 16 features (the scoring stage).
Baseline in the same run: the bare model forward on the same windows in the same batches,
timed twice: inside the pipeline (CPU time between hooks on the module around each forward)
and on its own (``model(x)`` under ``no_grad``, inputs prepared beforehand), the two
alternating ``repeats`` times; medians. All times are this process's CPU seconds: the machine
is shared, and wall time would measure the other jobs. On a loaded machine the separate bare
run differs from the forward inside the pipeline by several per cent either way (caches, other
processes), more than the overhead itself; the hooks measure the very forwards the pipeline ran.

``ratio`` = predict-stage time / its own forwards (1.10 is the goal: overhead ≤ 10 %);
``ratio_with_features`` adds the scoring stage's features (a cpu-queue task in a round) as a
round computes them: from the mask, with the image's quality statistics stored on its row;
``ratio_first_pass`` adds those statistics too (``image_quality``: computed once per image, in
the first round that predicts it; the whole country's one pass pays them once per image);
``overhead_vs_separate_bare_pct`` is the same against the separate bare run.
``real_block_model_free_cpu_s``: the steps around the model at the size of a real block with the
model replaced by a constant (what a GPU leaves to the CPU per block image).

The image is a synthetic field pattern (rectangular fields of varied colour, cropland on about
half) at the size of a real zoom-16 block at 30°N (``BENCH_INFER_SIZE=WxH`` to change; --quick:
1024×1024); polygons and features are computed from the field mask itself, since an untrained
model's mask is not field-shaped. Model: the default U-Net (what ``auto`` picks on a CPU) with
its weights as built (speed does not depend on them); ``BENCH_INFER_ENGINE=mask2former`` for
the other. FLOPs per window and per block are counted with ``torch.utils.flop_counter`` for
both engines (one window each) for docs/national_inference.md.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WINDOW, OVERLAP = 512, 128  # RoundConfig's defaults (the pipeline passes both)
BOUNDS = (112.50, 30.00, 112.55, 30.05)  # a 0.05° block near 30°N


def field_scene(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of rectangular fields and its 0/1 cropland mask."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.uint8)
    y = 0
    while y < height:
        fh = int(rng.integers(30, 140))
        x = 0
        while x < width:
            fw = int(rng.integers(30, 160))
            crop = rng.random() < 0.5
            base = rng.integers(60, 140, 3) + (np.array([0, 40, 0]) if crop else 0)
            img[y:y + fh, x:x + fw] = np.clip(base, 0, 255)
            mask[y:y + fh, x:x + fw] = crop
            x += fw
        y += fh
    noise = rng.normal(0, 8, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8), mask


def _engine(kind: str) -> Any:
    import torch

    torch.set_num_threads(1)
    if kind == "mask2former":
        from learning.core.segmentation.mask2former import Mask2FormerEngine

        return Mask2FormerEngine(device="cpu")
    from learning.core.segmentation.unet import UNetEngine

    return UNetEngine(device="cpu")


def window_flops(engine: Any, window: int = WINDOW) -> int:
    """FLOPs (multiply-add = 2) of one forward of one ``window``² RGB window."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = engine._pixels(np.zeros((1, window, window, 3), np.uint8))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        if engine.name == "mask2former":
            engine.model(pixel_values=x)
        else:
            engine.model(x)
    return int(counter.get_total_flops())


def _windows(image: np.ndarray) -> list[tuple[int, int]]:
    from learning.core.segmentation.inference import _starts

    h, w = image.shape[:2]
    stride = WINDOW - OVERLAP
    return [(y, x) for y in _starts(max(h, WINDOW), WINDOW, stride)
            for x in _starts(max(w, WINDOW), WINDOW, stride)]


def _bare_forward(engine: Any, image: np.ndarray, batch_size: int) -> float:
    """Seconds of ``model(x)`` alone over the pipeline's windows and batches."""
    import torch

    boxes = _windows(image)
    batches = [
        engine._pixels(np.stack([image[y:y + WINDOW, x:x + WINDOW]
                                 for y, x in boxes[i:i + batch_size]]))
        for i in range(0, len(boxes), batch_size)
    ]
    t0 = time.process_time()
    with torch.no_grad():
        for x in batches:
            if engine.name == "mask2former":
                engine.model(pixel_values=x)
            else:
                engine.model(x)
    return time.process_time() - t0


class ForwardClock:
    """CPU seconds spent inside ``model.forward`` (hooks on the module), so the forward the
    pipeline itself ran is measured in the same run as the steps around it."""

    def __init__(self, model: Any) -> None:
        self.seconds, self._t0 = 0.0, 0.0
        model.register_forward_pre_hook(self._start)
        model.register_forward_hook(self._stop)

    def _start(self, *_: Any) -> None:
        self._t0 = time.process_time()

    def _stop(self, *_: Any) -> None:
        self.seconds += time.process_time() - self._t0


def _pipeline(engine: Any, src: Path, dest: Path, truth: np.ndarray) -> dict[str, float]:
    """The predict stage's steps on one block file (and the scoring stage's features)."""
    from learning.core.features.block import block_features_compute
    from learning.core.iqa.quality import quality_features
    from learning.core.segmentation.inference import read_block, write_prediction
    from learning.services.round.predict import mask_geometry

    t: dict[str, float] = {}
    t0 = time.process_time()
    block = read_block(src)
    t["read"] = time.process_time() - t0
    t0 = time.process_time()
    mask, prob = engine.predict_block(block.image, window=WINDOW, overlap=OVERLAP)
    t["windows_model_stitch"] = time.process_time() - t0
    t0 = time.process_time()
    write_prediction(dest, mask=mask, confidence=prob, crs=block.crs, transform=block.transform)
    t["write"] = time.process_time() - t0
    t0 = time.process_time()
    mask_geometry(truth, block.transform)
    t["polygons"] = time.process_time() - t0
    t0 = time.process_time()
    quality = quality_features(block.image)
    t["image_quality"] = time.process_time() - t0
    t0 = time.process_time()
    block_features_compute(image=quality, mask=truth, pixel_size_m=(2.4, 2.4), dem=None,
                           coverage_type=None, other_mask=None, dem_nan_policy="omit")
    t["features"] = time.process_time() - t0
    return t


def model_free_overhead(width: int, height: int, work: Path) -> dict[str, float]:
    """CPU seconds of the predict stage's steps other than the model at a given block size:
    the model replaced by a constant (what a GPU leaves to the CPU, per block)."""
    import rasterio
    from rasterio.transform import from_bounds

    from learning.core.segmentation.inference import sliding_window_proba

    image, truth = field_scene(width, height, seed=1)
    src = work / "full.tif"
    with rasterio.open(src, "w", driver="GTiff", width=width, height=height, count=3,
                       dtype="uint8", crs="EPSG:4326",
                       transform=from_bounds(*BOUNDS, width, height), tiled=True,
                       blockxsize=256, blockysize=256, compress="deflate") as ds:
        ds.write(np.moveaxis(image, -1, 0))

    class Constant:
        name = "constant"

        def predict_block(self, img: np.ndarray, *, window: int, overlap: int) -> Any:
            prob = sliding_window_proba(
                img, lambda b: np.full(b.shape[:3], 0.5, np.float32), window=window,
                overlap=overlap, batch_size=2)
            return (prob >= 0.5).astype(np.uint8), prob

    return _pipeline(Constant(), src, work / "full-pred.tif", truth)


def _django() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-var-"))
    os.environ.setdefault("CROPLAYER_VAR_DIR", str(tmp))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
    import django

    django.setup()


def run(quick: bool) -> dict[str, Any]:
    import rasterio
    from rasterio.transform import from_bounds

    from mapping.geo.grid import block_raster

    _django()
    kind = os.environ.get("BENCH_INFER_ENGINE", "unet")
    if "BENCH_INFER_SIZE" in os.environ:
        width, height = (int(v) for v in os.environ["BENCH_INFER_SIZE"].lower().split("x"))
    elif quick:
        width = height = 1024
    else:
        r = block_raster(BOUNDS, 16)
        width, height = r.width, r.height
    repeats = int(os.environ.get("BENCH_INFER_REPEATS", "2" if quick else "1"))
    image, truth = field_scene(width, height)
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    try:
        src = work / "block.tif"
        with rasterio.open(src, "w", driver="GTiff", width=width, height=height, count=3,
                           dtype="uint8", crs="EPSG:4326",
                           transform=from_bounds(*BOUNDS, width, height),
                           tiled=True, blockxsize=256, blockysize=256, compress="deflate") as ds:
            ds.write(np.moveaxis(image, -1, 0))
        engine = _engine(kind)
        batch = 4 if engine.name == "mask2former" else 2  # the engines' predict_block default
        flops = {kind: window_flops(engine)}
        other = "mask2former" if kind == "unet" else "unet"
        if os.environ.get("BENCH_INFER_OTHER_FLOPS", "1") == "1":
            flops[other] = window_flops(_engine(other))
        # Warm-up (imports, allocator, first-call costs) on one window's worth of the block.
        warm = work / "warm.tif"
        with rasterio.open(warm, "w", driver="GTiff", width=WINDOW, height=WINDOW, count=3,
                           dtype="uint8", crs="EPSG:4326",
                           transform=from_bounds(*BOUNDS, WINDOW, WINDOW)) as ds:
            ds.write(np.moveaxis(image[:WINDOW, :WINDOW], -1, 0))
        _pipeline(engine, warm, work / "warm-pred.tif", truth[:WINDOW, :WINDOW])
        clock = ForwardClock(engine.model)
        inner = []
        runs, bare = [], []
        for i in range(repeats):
            clock.seconds = 0.0
            runs.append(_pipeline(engine, src, work / f"pred{i}.tif", truth))
            inner.append(clock.seconds)
            bare.append(_bare_forward(engine, image, batch))
        r = block_raster(BOUNDS, 16)
        full = model_free_overhead(r.width, r.height, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    fwd = statistics.median(bare)
    fwd_inner = statistics.median(inner)
    predict_stage = med["read"] + med["windows_model_stitch"] + med["write"] + med["polygons"]
    with_features = predict_stage + med["features"]
    first_pass = with_features + med["image_quality"]
    n_windows = len(_windows(image))
    return {
        "engine": kind,
        "image_px": [width, height],
        "windows": n_windows,
        "window": WINDOW,
        "overlap": OVERLAP,
        "batch_windows": batch,
        "repeats": repeats,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "bare_forward_s": round(fwd, 3),
        "forward_inside_pipeline_s": round(fwd_inner, 3),
        "stage_s": {k: round(v, 3) for k, v in med.items()},
        "predict_stage_s": round(predict_stage, 3),
        "overhead_s": round(predict_stage - fwd_inner, 3),
        "overhead_pct": round(100 * (predict_stage - fwd_inner) / fwd_inner, 1),
        "overhead_vs_separate_bare_pct": round(100 * (predict_stage - fwd) / fwd, 1),
        "overhead_with_features_s": round(with_features - fwd_inner, 3),
        "overhead_with_features_pct": round(100 * (with_features - fwd_inner) / fwd_inner, 1),
        "overhead_first_pass_s": round(first_pass - fwd_inner, 3),
        "overhead_first_pass_pct": round(100 * (first_pass - fwd_inner) / fwd_inner, 1),
        "seconds_per_image_cpu": round(predict_stage, 3),
        "real_block_px": [r.width, r.height],
        "real_block_windows": len(_windows(np.empty((r.height, r.width, 3), np.uint8))),
        "real_block_model_free_cpu_s": {k: round(v, 3) for k, v in full.items()},
        "real_block_model_free_predict_stage_cpu_s": round(
            sum(v for k, v in full.items() if k not in ("features", "image_quality")), 3),
        "flops_per_window": flops,
        "flops_per_block": {k: v * n_windows for k, v in flops.items()},
        "flops_per_real_block": {
            k: v * len(_windows(np.empty((r.height, r.width, 3), np.uint8)))
            for k, v in flops.items()},
        "goal_overhead_le_10pct": predict_stage <= 1.10 * fwd_inner,
        "ratio": round(predict_stage / fwd_inner, 3),
        "ratio_with_features": round(with_features / fwd_inner, 3),
        "ratio_first_pass": round(first_pass / fwd_inner, 3),
        "goal_with_features_le_10pct": with_features <= 1.10 * fwd_inner,
        "goal_first_pass_le_10pct": first_pass <= 1.10 * fwd_inner,
        "note": (
            "CPU seconds of this process (time.process_time: the machine is shared, wall time "
            "measures the other jobs); ratio = predict stage (read + windows/model/stitch + "
            "write mask and probability + polygons) / bare model forward on the same "
            "windows and batches (same run, medians); CPU, 1 thread"
        ),
    }
