"""Block feature pipeline per 2304x2304 block: OpenCV/histogram fast path vs skimage/np.median.

Input: a realistic block at the workflow's 2.4 m: real LoveDA tiles (0.3 m) downsampled 8x to
128 px and mosaicked 18 x 18 (image and cropland mask), and a second "source" mask made from a
shifted mosaic for the IoU. Without shared data, a synthetic block of smoothed-noise fields.
The baseline computes the same numbers the straightforward way (skimage ``label`` +
``regionprops`` area/solidity/Euler number, ``euler_number``, scipy Sobel, ``np.median``,
scipy morphology for ED, numpy IoU); the run checks both give the same features.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from learning.core.features.block import (  # noqa: E402
    FEATURE_NAMES,
    BlockFeatures,
    block_features_compute,
)
from learning.core.features.terrain import DemWindow, terrain_features  # noqa: E402

SHARED = Path(os.environ.get("CROPLAYER_SHARED_DATA", ROOT.parent / "shared" / "data"))
PIXEL_M = 2.4
TILE = 128


def _mosaic(n_tiles: int, shift: int = 0) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8],
                                                   str]:
    folder = SHARED / "real" / "loveda"
    names = sorted(p.name for p in (folder / "masks_cropland").glob("*.png"))
    if not names:
        return _synthetic(n_tiles * TILE, shift)
    imgs, masks = [], []
    for name in names:
        bgr = cv2.imread(str(folder / "images" / name), cv2.IMREAD_COLOR)
        m = cv2.imread(str(folder / "masks_cropland" / name), cv2.IMREAD_UNCHANGED)
        imgs.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (TILE, TILE),
                               interpolation=cv2.INTER_AREA))
        masks.append(cv2.resize(m, (TILE, TILE), interpolation=cv2.INTER_NEAREST))
    size = n_tiles * TILE
    image = np.zeros((size, size, 3), np.uint8)
    mask = np.zeros((size, size), np.uint8)
    for i in range(n_tiles):
        for j in range(n_tiles):
            k = (i * n_tiles + j + shift) % len(names)
            image[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] = imgs[k]
            mask[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] = masks[k]
    return image, mask, "loveda mosaic (8x downsampled, 2.4 m)"


def _synthetic(size: int, seed: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], str]:
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.normal(size=(size, size)).astype(np.float32), (0, 0), 6)
    mask = (field > 0.02).astype(np.uint8)
    image = rng.integers(40, 200, size=(size, size, 3), dtype=np.uint8)
    image[mask == 1, 1] = np.minimum(image[mask == 1, 1] + 40, 255)
    return image, mask, "synthetic smoothed-noise fields"


def baseline(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8],
             other: npt.NDArray[np.uint8], dem: DemWindow) -> dict[str, float]:
    """The same features computed with skimage, scipy and np.median."""
    from scipy import ndimage as ndi
    from skimage.measure import euler_number, label, regionprops

    terrain = terrain_features(dem)
    valid = image.any(axis=2)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    gx = ndi.sobel(grey, axis=1, mode="mirror")
    gy = ndi.sobel(grey, axis=0, mode="mirror")
    hls = cv2.cvtColor(image, cv2.COLOR_RGB2HLS_FULL)
    fg = mask == 1
    props = regionprops(label(fg, connectivity=2))
    areas = np.array([p.area for p in props], dtype=np.float64)
    hulls = np.array([p.area_convex for p in props], dtype=np.float64)
    eulers = np.array([p.euler_number for p in props], dtype=np.float64)
    n_valid = np.count_nonzero(mask != 255)
    touches_zero = ndi.binary_dilation(mask == 0, structure=ndi.generate_binary_structure(2, 1))
    both = (mask != 255) & (other != 255)
    inter = np.count_nonzero(fg & (other == 1) & both)
    union = np.count_nonzero((fg | (other == 1)) & both)
    return {
        "elevation_median": terrain.elevation,
        "slope_median": terrain.slope,
        "tri_median": terrain.tri,
        "roughness_median": terrain.roughness,
        "coverage_type": 0.0,
        "sharpness": float(np.median(np.hypot(gx, gy)[valid])),
        "hue_median": float(np.median(hls[..., 0][valid])) * 360 / 256,
        "saturation_median": float(np.median(hls[..., 2][valid])) / 255,
        "lightness_median": float(np.median(hls[..., 1][valid])) / 255,
        "area_m2": float(np.count_nonzero(fg)) * PIXEL_M**2,
        "area_fraction": np.count_nonzero(fg) / n_valid,
        "solidity_mean": float(np.mean(areas / hulls)),
        "solidity_total": float(areas.sum() / hulls.sum()),
        "euler_mean": float(eulers.mean()),
        "euler_total": float(euler_number(fg, connectivity=2)),
        "iou_sources": inter / union if union else 1.0,
        "edge_density": np.count_nonzero(fg & touches_zero) / n_valid,
    }


def fast(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8],
         other: npt.NDArray[np.uint8], dem: DemWindow) -> BlockFeatures:
    return block_features_compute(image=image, mask=mask, pixel_size_m=PIXEL_M, dem=dem,
                                  coverage_type="planting", other_mask=other)


def _best_of(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(quick: bool) -> dict[str, Any]:
    n_tiles = 6 if quick else 18
    image, mask, kind = _mosaic(n_tiles)
    _, other, _ = _mosaic(n_tiles, shift=7)
    rng = np.random.default_rng(0)
    dem = DemWindow(elevation=rng.normal(500, 40, size=(9, 9)), xres=30.0, yres=30.0,
                    geographic=False, center_lat=30.0)
    t_fast, feats = _best_of(lambda: fast(image, mask, other, dem), 7)
    t_base, ref = _best_of(lambda: baseline(image, mask, other, dem), 2)
    got = dict(zip(FEATURE_NAMES, feats.to_vector().tolist(), strict=True))
    got["edge_density"] = feats.edge_density
    worst = max(abs(got[k] - ref[k]) / max(abs(ref[k]), 1e-9) for k in ref)
    if worst > 1e-6:
        raise AssertionError(f"fast and baseline features differ (rel {worst:.3g}): {got} {ref}")
    n_comp = int(np.max(cv2.connectedComponents((mask == 1).view(np.uint8), connectivity=8)[0]))
    return {
        "input": f"{mask.shape[0]}x{mask.shape[1]} block, {kind}, {n_comp - 1} components",
        "fast_ms": round(t_fast * 1000, 1),
        "baseline_ms": round(t_base * 1000, 1),
        "ratio": round(t_base / t_fast, 1),
        "max_relative_difference": worst,
        "features": got,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
