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

The fast path needs no label image: one ``findContours`` with the two-level hierarchy (outer
borders and the hole borders inside them) gives, per component, the Euler number (1 - holes),
the area (Pick's theorem on the border polygons: enclosed pixels minus the holes' insides) and
the convex hull (``convexHull`` of the outer border, grown by the pixel diamond and counted
with exact integer scanlines). ``tests/learning/test_region.py`` checks it against skimage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

IGNORE = 255
IntArray = npt.NDArray[np.int64]



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
    if cv2.countNonZero(cv2.inRange(m, 2, 254)):  # any value but 0, 1 and 255
        counts = value_counts(m)
        bad = np.flatnonzero(counts[2:255]) + 2
        raise ValueError(f"{name} may hold only 0, 1 and 255, found {bad[:5].tolist()}")
    return m


def equal_mask(m: npt.NDArray[np.uint8], value: int) -> npt.NDArray[np.uint8]:
    """255 where ``m == value``, else 0 (one SIMD pass)."""
    if m.size == 1:  # OpenCV would take a 1x1 array for a scalar operand
        return np.where(m == value, 255, 0).astype(np.uint8)
    # OpenCV's stubs do not list scalar operands, which compare() accepts.
    return np.asarray(cv2.compare(m, value, cv2.CMP_EQ))  # type: ignore[call-overload]


def count_equal(m: npt.NDArray[np.uint8], value: int) -> int:
    """Number of pixels equal to ``value``."""
    return int(cv2.countNonZero(equal_mask(m, value)))


def value_counts(m: npt.NDArray[np.uint8]) -> IntArray:
    """Exact count of each of the 256 values of a uint8 array."""
    if m.size < 1 << 24:  # calcHist counts in float32: exact below 2**24, and ~8x faster
        hist = cv2.calcHist([m.reshape(m.shape[0], -1)], [0], None, [256], [0, 256])
        return np.rint(hist.ravel()).astype(np.int64)
    return np.bincount(m.ravel(), minlength=256).astype(np.int64)


def _grown_hull_pixel_counts(hulls: list[npt.NDArray[np.int32]]) -> IntArray:
    """Pixel centres inside or on each convex polygon grown by the pixel diamond.

    ``hulls`` are convex polygons with vertices at pixel centres (x, y); the grown polygon is
    the hull of the pixel diamonds (each pixel drawn as the diamond of its four edge
    midpoints), i.e. polygon (+) diamond. Exact integer scanlines in half-pixel units, where
    the diamond is ``|dx| + |dy| <= 1`` and vertices and pixel-centre rows are even. Row Y of
    the grown polygon spans ``min(L(Y) - 1, L(Y - 1), L(Y + 1))`` to
    ``max(R(Y) + 1, R(Y - 1), R(Y + 1))`` (L, R: the polygon's left and right boundaries,
    linear between its even vertex rows, so the extremes over the diamond are at its corner
    rows). An edge with slope s = dx/dy covering rows Y - 1 .. Y + 1 contributes
    ``x(Y) -+ max(1, |s|)``; at its end rows only the side it covers.
    """
    n = len(hulls)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sizes = np.fromiter((len(h) for h in hulls), dtype=np.int64, count=n)
    # int32 throughout: half-pixel coordinates below 2**16 keep every product below 2**31.
    v = 2 * np.concatenate(hulls).reshape(-1, 2)
    if v.size and int(v.max()) >= 1 << 15:
        v = v.astype(np.int64)
    ends = np.cumsum(sizes)
    nxt = np.arange(1, len(v) + 1)
    nxt[ends - 1] = ends - sizes  # close each polygon
    x1, y1 = v[:, 0], v[:, 1]
    x2, y2 = v[nxt, 0], v[nxt, 1]
    swap = y1 > y2
    x1, x2 = np.where(swap, x2, x1), np.where(swap, x1, x2)
    y1, y2 = np.where(swap, y2, y1), np.where(swap, y1, y2)
    flat = y1 == y2  # horizontal edges (and one-vertex polygons): one row, both ends
    den = np.where(flat, 1, y2 - y1)
    dx = np.where(flat, 0, x2 - x1)
    # Grow per row: max(1, |s|) inside the edge, max(1, -+s) on its first / last row.
    g_mid = np.maximum(den, np.abs(dx))
    g_pos, g_neg = np.maximum(den, dx), np.maximum(den, -dx)
    rows = (y2 - y1) // 2 + 1
    row_end = np.cumsum(rows)
    row_first = row_end - rows
    e = np.repeat(np.arange(len(x1)), rows)
    step = np.arange(len(e), dtype=v.dtype) - np.repeat(row_first, rows).astype(v.dtype)
    d = den[e]
    num = np.where(flat, np.minimum(x1, x2), x1 * den)[e] + 2 * step * dx[e]
    num_r = num.copy()
    num_r[row_first[flat]] = np.maximum(x1, x2)[flat]
    grow_l = g_mid[e]
    grow_r = grow_l.copy()
    grow_l[row_first], grow_r[row_first] = g_neg, g_pos
    grow_l[row_end - 1], grow_r[row_end - 1] = g_pos, g_neg
    # Leftmost centre ceil(x / 2), rightmost floor(x / 2), exact in integers.
    left = -((grow_l - num) // (2 * d))
    right = (num_r + grow_r) // (2 * d)
    # Each polygon's centre rows are its even rows ymin .. ymax: one slot per row.
    comp = np.repeat(np.arange(n), sizes)
    ymin = np.minimum.reduceat(v[:, 1], ends - sizes)
    n_rows = (np.maximum.reduceat(v[:, 1], ends - sizes) - ymin) // 2 + 1
    base = np.cumsum(n_rows) - n_rows
    ce = comp[e]
    slot = base[ce] + ((y1[e] + 2 * step - ymin[ce]) >> 1)
    lo = np.full(int(n_rows.sum()), np.iinfo(left.dtype).max, dtype=left.dtype)
    hi = np.full(len(lo), np.iinfo(right.dtype).min, dtype=right.dtype)
    np.minimum.at(lo, slot, left)
    np.maximum.at(hi, slot, right)
    width = np.maximum(hi - lo + 1, 0).astype(np.int64)
    return np.add.reduceat(width, base)


def _contour_stats(fg: npt.NDArray[np.uint8]) -> tuple[ComponentStats, npt.NDArray[np.int32]]:
    """Area, convex-hull area and Euler number of every component, from its borders alone.

    One ``findContours`` (Suzuki's border following, 8-connected foreground, 4-connected
    background, as skimage's labels and Euler number) with the two-level hierarchy: the outer
    border of every component and the hole borders inside it. Per border polygon (through the
    border pixels' centres), with A its area and B its lattice steps (the Chebyshev length;
    diagonal steps hold no lattice point): the pixels enclosed by an outer border, border
    included, number A + B/2 + 1 and the pixels strictly inside a hole border A - B/2 + 1
    (Pick's theorem, which the tests check against skimage on masks with pinches, spurs and
    islands in holes). Area = enclosed - holes' insides; Euler number = 1 - holes; hull from
    ``convexHull`` of the outer border. Components come in border order; also returns the
    (x, y) of each outer border's first pixel.
    """
    contours, hierarchy = cv2.findContours(fg, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        empty = np.zeros(0, dtype=np.int64)
        return ComponentStats(empty, empty, empty), np.zeros((0, 2), np.int32)
    parent = hierarchy[0, :, 3].astype(np.int64)
    m = len(contours)
    sizes = np.fromiter((len(c) for c in contours), dtype=np.int64, count=m)
    pts32 = np.concatenate(contours).reshape(-1, 2)
    pts = pts32.astype(np.int64)
    starts = np.cumsum(sizes) - sizes
    nxt = np.arange(len(pts)) + 1
    nxt[starts + sizes - 1] = starts
    x, y = pts[:, 0], pts[:, 1]
    xn, yn = x[nxt], y[nxt]
    twice_area = np.abs(np.add.reduceat(x * yn - xn * y, starts))
    steps = np.add.reduceat(np.maximum(np.abs(xn - x), np.abs(yn - y)), starts)
    is_outer = parent < 0
    outer = np.flatnonzero(is_outer)
    # Twice the enclosed pixel count: outer 2A + B + 2, hole 2A - B + 2 (subtracted).
    signed = np.where(is_outer, twice_area + steps + 2, steps - twice_area - 2)
    owner = np.where(is_outer, np.arange(m), parent)
    area = (np.bincount(owner, weights=signed, minlength=m)[outer] // 2).astype(np.int64)
    holes = np.bincount(parent[~is_outer], minlength=m)[outer]
    euler = 1 - holes.astype(np.int64)
    convex = area.copy()
    o_start, o_size = starts[outer], sizes[outer]
    w = np.maximum.reduceat(x, starts)[outer] - np.minimum.reduceat(x, starts)[outer] + 1
    h = np.maximum.reduceat(y, starts)[outer] - np.minimum.reduceat(y, starts)[outer] + 1
    todo = np.flatnonzero(w * h != area)  # filled rectangles are their own hulls
    if todo.size:
        # The border holds every extreme pixel (the dropped points of straight runs lie
        # between kept ones), so the hull of the pixel diamonds = hull(border) (+) diamond.
        hulls = [np.asarray(cv2.convexHull(pts32[s : s + k]), dtype=np.int32)
                 for s, k in zip(o_start[todo].tolist(), o_size[todo].tolist(), strict=True)]
        convex[todo] = _grown_hull_pixel_counts(hulls)
    stats = ComponentStats(area=area, convex_area=convex, euler=euler)
    return stats, pts32[o_start]


def component_stats(mask: npt.NDArray[np.generic]) -> tuple[ComponentStats,
                                                            npt.NDArray[np.integer]]:
    """Area, convex-hull area and Euler number of every 8-connected cropland component.

    Returns the stats and OpenCV's label image (0 = not cropland, i = component i - 1).
    """
    m = check_mask(mask)
    fg = (m == 1).view(np.uint8)
    n_lab, labels = cv2.connectedComponents(fg, connectivity=8, ltype=cv2.CV_32S)
    by_border, first = _contour_stats(fg)
    n = len(by_border.area)
    if n != n_lab - 1:
        raise RuntimeError(f"{n} outer borders for {n_lab - 1} components")
    # Which component each outer border belongs to, from its first pixel.
    k = labels[first[:, 1], first[:, 0]].astype(np.int64) - 1
    out = [np.empty(n, dtype=np.int64) for _ in range(3)]
    for dst, src in zip(out, (by_border.area, by_border.convex_area, by_border.euler),
                        strict=True):
        dst[k] = src
    return ComponentStats(area=out[0], convex_area=out[1], euler=out[2]), np.asarray(labels)


def edge_pixels(mask: npt.NDArray[np.uint8]) -> int:
    """Cropland pixels with a 4-neighbour of value 0 (the block edge is not a field edge)."""
    return _edge_pixels(check_mask(mask))


_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _edge_pixels(m: npt.NDArray[np.uint8]) -> int:
    # The cross erosion of {0, 1, 255} (outside the block = 255) is 0 at a cropland pixel
    # exactly when a 4-neighbour is 0, so mask - erosion is 1 exactly at the edge pixels
    # (0 elsewhere on 0 pixels, 0 or >= 254 on ignored ones).
    eroded = cv2.erode(m, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=IGNORE)
    return count_equal(np.asarray(cv2.subtract(m, eroded, dst=eroded), dtype=np.uint8), 1)


def region_features(mask: npt.NDArray[np.generic],
                    pixel_size_m: float | tuple[float, float]) -> RegionFeatures:
    """Region properties of one block mask; ``pixel_size_m`` is (x, y) or one square size."""
    return region_features_of_checked(check_mask(mask), pixel_size_m)


def region_features_of_checked(m: npt.NDArray[np.uint8],
                               pixel_size_m: float | tuple[float, float]) -> RegionFeatures:
    """:func:`region_features` of a mask that already passed ``check_mask``."""
    px, py = (pixel_size_m, pixel_size_m) if isinstance(pixel_size_m, (int, float)) \
        else pixel_size_m
    if not (px > 0 and py > 0 and math.isfinite(px * py)):
        raise ValueError(f"pixel size must be positive metres, got {pixel_size_m}")
    fg = equal_mask(m, 1)
    crop = int(cv2.countNonZero(fg))
    valid = m.size - count_equal(m, IGNORE)
    stats, _ = _contour_stats(fg)
    n = len(stats.area)
    nan = math.nan
    return RegionFeatures(
        area_m2=crop * px * py,
        area_fraction=crop / valid if valid else nan,
        solidity_mean=float(stats.solidity.mean()) if n else nan,
        solidity_total=float(stats.area.sum() / stats.convex_area.sum()) if n else nan,
        euler_mean=float(stats.euler.mean()) if n else nan,
        euler_total=float(stats.euler.sum()),
        edge_density=_edge_pixels(m) / valid if valid else nan,
        n_components=n,
        cropland_pixels=crop,
        valid_pixels=valid,
    )
