"""Region properties of a block's cropland mask: area, area fraction, solidity, Euler number, ED.

Input: an ``(H, W)`` ``uint8`` mask with 1 = cropland, 0 = other and 255 = ignore (no-data or
unlabelled; counted neither as cropland nor in the valid block area). Definitions:

- **Components** are 8-connected groups of cropland pixels (skimage's ``label`` default,
  ``connectivity=2``); background (0 and 255 alike) is 4-connected, so a hole is a 4-connected
  group of non-cropland pixels enclosed by one component.
- **area_m2** = cropland pixels x pixel area. **area_fraction** = cropland pixels / valid
  (non-255) pixels; NaN when the block has no valid pixel.
- **Solidity** of a component = its area / the area of its convex hull, with the hull area
  defined as skimage's ``regionprops`` ``area_convex``: the number of pixel centres inside or on
  the convex hull of the component's pixels, each pixel drawn as the diamond of its four edge
  midpoints. **solidity_mean** is the unweighted mean over components; **solidity_total** is
  total cropland area / sum of the components' hull areas (the area-weighted mean). Both are NaN
  for a mask without cropland.
- **Euler number** of a component = 1 - its holes (skimage ``regionprops`` ``euler_number``,
  8-connectivity). **euler_mean** is the mean over components (NaN without components);
  **euler_total** is the sum, which equals ``skimage.measure.euler_number(mask == 1,
  connectivity=2)`` = components - holes of the whole mask (0 without components).
- **edge_density** ED = N / Nt, after the paper's validation section: N = cropland pixels with at
  least one 4-neighbour of value 0 (valid non-cropland; the block edge and 255 pixels do not
  make an edge), Nt = valid pixels. NaN when the block has no valid pixel.

The fast path uses OpenCV: ``connectedComponents`` (Grana's algorithm) for labels and areas,
``findContours`` with the two-level hierarchy for holes (Euler number = 1 - holes per component),
``convexHull`` plus an exact integer scanline count of the pixel centres in each hull;
``tests/learning/test_region.py`` checks it against skimage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

IGNORE = 255
IntArray = npt.NDArray[np.int64]

_NOT_MASK_VALUE = np.ones(256, np.uint8)
_NOT_MASK_VALUE[[0, 1, IGNORE]] = 0
_DIAMOND2 = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.int32)  # in half-pixel units


@dataclass(frozen=True)
class ComponentStats:
    """Per-component pixel counts (index i = component i, in OpenCV label order minus 1)."""

    area: IntArray
    convex_area: IntArray
    euler: IntArray

    @property
    def solidity(self) -> npt.NDArray[np.float64]:
        return self.area / self.convex_area


@dataclass(frozen=True)
class RegionFeatures:
    """Region properties of one block mask (see the module docstring for definitions)."""

    area_m2: float
    area_fraction: float
    solidity_mean: float
    solidity_total: float
    euler_mean: float
    euler_total: float
    edge_density: float
    n_components: int
    cropland_pixels: int
    valid_pixels: int


def check_mask(mask: npt.NDArray[np.generic], name: str = "mask") -> npt.NDArray[np.uint8]:
    """Return ``mask`` as contiguous uint8 after checking shape and values {0, 1, 255}."""
    if mask.ndim != 2 or mask.shape[0] < 1 or mask.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return np.ascontiguousarray(mask, dtype=np.uint8)
    if mask.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0/1, 255 = ignore), got dtype {mask.dtype}")
    m = np.ascontiguousarray(mask)
    if cv2.countNonZero(cv2.LUT(m.reshape(m.shape[0], -1), _NOT_MASK_VALUE)):
        counts = value_counts(m)
        bad = np.flatnonzero(counts[2:255]) + 2
        raise ValueError(f"{name} may hold only 0, 1 and 255, found {bad[:5].tolist()}")
    return m


def count_equal(m: npt.NDArray[np.uint8], value: int) -> int:
    """Number of pixels equal to ``value``."""
    # OpenCV's stubs do not list scalar operands, which compare() accepts.
    return int(cv2.countNonZero(cv2.compare(m, value, cv2.CMP_EQ)))  # type: ignore[call-overload]


def value_counts(m: npt.NDArray[np.uint8]) -> IntArray:
    """Exact count of each of the 256 values of a uint8 array."""
    if m.size < 1 << 24:  # calcHist counts in float32: exact below 2**24, and ~8x faster
        hist = cv2.calcHist([m.reshape(m.shape[0], -1)], [0], None, [256], [0, 256])
        return np.rint(hist.ravel()).astype(np.int64)
    return np.bincount(m.ravel(), minlength=256).astype(np.int64)


def _hull_pixel_counts(hulls: list[npt.NDArray[np.int32]]) -> IntArray:
    """Pixel centres inside or on each convex polygon (vertices in half-pixel units, (x, y)).

    Exact integer scanlines: a centre (c, r) is (2c, 2r) in half-pixel units, so every even row
    y crossing the polygon contributes the even x between its left and right boundary.
    """
    n = len(hulls)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sizes = np.fromiter((len(h) for h in hulls), dtype=np.int64, count=n)
    v = np.concatenate(hulls).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    nxt = np.arange(len(v)) + 1
    ends = starts + sizes
    nxt[ends - 1] = starts  # close each polygon
    comp = np.repeat(np.arange(n), sizes)
    x1, y1 = v[:, 0], v[:, 1]
    x2, y2 = v[nxt, 0], v[nxt, 1]
    # Orient edges upward; horizontal edges add nothing their neighbours do not already cover.
    keep = y1 != y2
    x1, y1, x2, y2, comp = x1[keep], y1[keep], x2[keep], y2[keep], comp[keep]
    swap = y1 > y2
    x1, x2 = np.where(swap, x2, x1), np.where(swap, x1, x2)
    y1, y2 = np.where(swap, y2, y1), np.where(swap, y1, y2)
    ylo = y1 + (y1 % 2)  # first even row
    yhi = y2 - (y2 % 2)
    rows = np.maximum((yhi - ylo) // 2 + 1, 0)
    e = np.repeat(np.arange(len(x1)), rows)
    offs = np.arange(int(rows.sum())) - np.repeat(np.cumsum(rows) - rows, rows)
    y = ylo[e] + 2 * offs
    den = (y2 - y1)[e]
    num = x1[e] * den + (y - y1[e]) * (x2 - x1)[e]
    # x / 2 = num / (2 den): leftmost centre ceil, rightmost floor, exact in integers.
    left = -((-num) // (2 * den))
    right = num // (2 * den)
    key = comp[e] * (1 << 32) + (y >> 1) + (1 << 31)
    order = np.argsort(key, kind="stable")
    key, left, right = key[order], left[order], right[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    lo = np.minimum.reduceat(left, first)
    hi = np.maximum.reduceat(right, first)
    width = np.maximum(hi - lo + 1, 0)
    return np.bincount(key[first] >> 32, weights=width, minlength=n).astype(np.int64)


def _label_components(fg: npt.NDArray[np.uint8]) -> tuple[int, npt.NDArray[np.integer],
                                                          IntArray]:
    """8-connected labels (0 = background), component count and pixel count per component."""
    try:
        # 16-bit labels and a 16-bit histogram are ~3x faster than OpenCV's stats; OpenCV raises
        # when a mask has more than 65535 components, and we fall back to 32-bit labels.
        n_lab, labels = cv2.connectedComponentsWithAlgorithm(fg, 8, cv2.CV_16U, cv2.CCL_GRANA)
        if fg.size >= 1 << 24:
            raise cv2.error("too many pixels for an exact float32 histogram")
        hist = cv2.calcHist([labels], [0], None, [n_lab], [0, n_lab]).ravel()
        area = np.rint(hist[1:]).astype(np.int64)
    except cv2.error:
        n_lab, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
            fg, 8, cv2.CV_32S, cv2.CCL_GRANA)
        area = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    return n_lab - 1, np.asarray(labels), area


def component_stats(mask: npt.NDArray[np.generic]) -> tuple[ComponentStats,
                                                            npt.NDArray[np.integer]]:
    """Area, convex-hull area and Euler number of every 8-connected cropland component.

    Returns the stats and OpenCV's label image (0 = not cropland, i = component i - 1).
    """
    m = check_mask(mask)
    fg = (m == 1).view(np.uint8)
    n, labels, area = _label_components(fg)
    convex = area.copy()
    euler = np.ones(n, dtype=np.int64)
    if n:
        # Suzuki's border following (8-connected foreground, 4-connected background, as
        # skimage's Euler number): two levels, outer borders and the hole borders inside them.
        contours, hierarchy = cv2.findContours(fg, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        parent = hierarchy[0, :, 3]
        outer = np.flatnonzero(parent < 0)
        if len(outer) != n:
            raise RuntimeError(f"{len(outer)} outer contours for {n} components")
        holes = np.bincount(parent[parent >= 0], minlength=len(contours))[outer]
        outer_cnts = [contours[i] for i in outer.tolist()]
        sizes = np.fromiter((len(c) for c in outer_cnts), dtype=np.int64, count=n)
        pts = np.concatenate(outer_cnts).reshape(-1, 2)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        # Which component each outer border belongs to, from its first pixel.
        k = labels[pts[starts, 1], pts[starts, 0]].astype(np.int64) - 1
        euler[k] = 1 - holes
        w = np.maximum.reduceat(pts[:, 0], starts) - np.minimum.reduceat(pts[:, 0], starts) + 1
        h = np.maximum.reduceat(pts[:, 1], starts) - np.minimum.reduceat(pts[:, 1], starts) + 1
        todo = np.flatnonzero(w.astype(np.int64) * h != area[k])  # filled rectangles are hulls
        if todo.size:
            # Hull of the pixel diamonds = hull of (2 * border pixel +- one half-pixel unit):
            # the border holds every extreme pixel, and the dropped points of straight runs
            # lie between kept ones.
            grown = ((2 * pts)[:, None, :] + _DIAMOND2[None, :, :]).reshape(-1, 2)
            hulls = [np.asarray(cv2.convexHull(grown[4 * starts[j] : 4 * (starts[j] + sizes[j])]),
                                dtype=np.int32).reshape(-1, 2) for j in todo.tolist()]
            convex[k[todo]] = _hull_pixel_counts(hulls)
    return ComponentStats(area=area, convex_area=convex, euler=euler), labels


def edge_pixels(mask: npt.NDArray[np.uint8]) -> int:
    """Cropland pixels with a 4-neighbour of value 0 (the block edge is not a field edge)."""
    zero = (mask == 0).view(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    near_zero = cv2.dilate(zero, cross, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return int(np.count_nonzero(near_zero & (mask == 1)))


def region_features(mask: npt.NDArray[np.generic],
                    pixel_size_m: float | tuple[float, float]) -> RegionFeatures:
    """Region properties of one block mask; ``pixel_size_m`` is (x, y) or one square size."""
    m = check_mask(mask)
    px, py = (pixel_size_m, pixel_size_m) if isinstance(pixel_size_m, (int, float)) \
        else pixel_size_m
    if not (px > 0 and py > 0 and math.isfinite(px * py)):
        raise ValueError(f"pixel size must be positive metres, got {pixel_size_m}")
    crop = count_equal(m, 1)
    valid = m.size - count_equal(m, IGNORE)
    stats, _ = component_stats(m)
    n = len(stats.area)
    nan = math.nan
    return RegionFeatures(
        area_m2=crop * px * py,
        area_fraction=crop / valid if valid else nan,
        solidity_mean=float(stats.solidity.mean()) if n else nan,
        solidity_total=float(stats.area.sum() / stats.convex_area.sum()) if n else nan,
        euler_mean=float(stats.euler.mean()) if n else nan,
        euler_total=float(stats.euler.sum()),
        edge_density=edge_pixels(m) / valid if valid else nan,
        n_components=n,
        cropland_pixels=crop,
        valid_pixels=valid,
    )
