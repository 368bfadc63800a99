"""Pixel and block measures on one block's arrays: confusion, area fraction, edge density.

Definitions (used by the report page, the CSV and ``compare_product --json``):

- Pixels count only where ``valid`` is True (both maps have data there, see :mod:`report`).
- **IoU** = TP / (TP + FP + FN), cropland the positive class; NaN when neither map has cropland.
- **Area fraction** (AF) = cropland pixels / valid pixels.
- **Edge density** (ED, metres per hectare) = total length of the edges between a cropland and
  a non-cropland pixel (4-neighbours, both valid) divided by the valid area:
  ``ED = (n_ns * dx + n_ew * dy) / (n_valid * dx * dy / 10_000)`` where ``n_ns`` counts
  vertically adjacent pairs that differ (their shared edge runs east-west and is ``dx`` metres
  long), ``n_ew`` horizontally adjacent pairs that differ (shared edge ``dy`` metres), and
  ``dx``, ``dy`` are the pixel width and height in metres. Cropland touching the block's outer
  edge or a no-data pixel adds no edge: a field cut by the block border is not a field border.
  The paper's own measure, the share of cropland pixels on a boundary (N / Nt), is
  :func:`boundary_fraction`; metres per hectare is kept as the main one because it does not
  change with the pixel size when both maps are on one grid, and reads as landscape ecology's
  edge density.
- **Relative deviation** = (T − C) / C with T the existing product and C the final map
  (CropLayer); NaN (undefined) when C is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Confusion:
    """Pixel counts with cropland as the positive class (``tp``: cropland in both)."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                         self.tn + other.tn)

    @property
    def iou(self) -> float:
        union = self.tp + self.fp + self.fn
        return self.tp / union if union else math.nan


ZERO = Confusion(0, 0, 0, 0)


def _check(mask: BoolArray, valid: BoolArray | None) -> BoolArray:
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    if valid is None:
        return np.ones(mask.shape, dtype=bool)
    if valid.shape != mask.shape:
        raise ValueError(f"valid shape {valid.shape} != mask shape {mask.shape}")
    return valid.astype(bool, copy=False)


def confusion(predicted: BoolArray, reference: BoolArray, valid: BoolArray | None = None
              ) -> Confusion:
    """Confusion of ``predicted`` (the product) against ``reference`` (the final map)."""
    if predicted.shape != reference.shape:
        raise ValueError(f"shapes differ: {predicted.shape} vs {reference.shape}")
    v = _check(reference, valid)
    p, r = predicted.astype(bool) & v, reference.astype(bool) & v
    tp = int(np.count_nonzero(p & r))
    fp = int(np.count_nonzero(p & ~r))
    fn = int(np.count_nonzero(~p & r))
    tn = int(np.count_nonzero(v)) - tp - fp - fn
    return Confusion(tp, fp, fn, tn)


def area_fraction(mask: BoolArray, valid: BoolArray | None = None) -> float:
    """Cropland pixels over valid pixels; NaN for a block without valid pixels."""
    v = _check(mask, valid)
    n = int(np.count_nonzero(v))
    return int(np.count_nonzero(mask.astype(bool) & v)) / n if n else math.nan


def edge_counts(mask: BoolArray, valid: BoolArray | None = None) -> tuple[int, int]:
    """(n_ns, n_ew): differing valid pairs stacked vertically, and side by side."""
    v = _check(mask, valid)
    m = mask.astype(bool)
    ns = (m[1:, :] != m[:-1, :]) & v[1:, :] & v[:-1, :]
    ew = (m[:, 1:] != m[:, :-1]) & v[:, 1:] & v[:, :-1]
    return int(np.count_nonzero(ns)), int(np.count_nonzero(ew))


def edge_density(mask: BoolArray, dx_m: float, dy_m: float,
                 valid: BoolArray | None = None) -> float:
    """Cropland edge length per valid area, in metres per hectare (see the module docstring)."""
    if not (dx_m > 0 and dy_m > 0):
        raise ValueError(f"pixel size must be positive, got {dx_m} x {dy_m} m")
    v = _check(mask, valid)
    n_valid = int(np.count_nonzero(v))
    if not n_valid:
        return math.nan
    n_ns, n_ew = edge_counts(mask, v)
    return (n_ns * dx_m + n_ew * dy_m) / (n_valid * dx_m * dy_m / 10_000.0)


def boundary_fraction(mask: BoolArray, valid: BoolArray | None = None) -> float:
    """The paper's ED = N / Nt: cropland pixels with a valid non-cropland 4-neighbour, over
    valid pixels."""
    v = _check(mask, valid)
    m = mask.astype(bool) & v
    other = ~mask.astype(bool) & v
    touch = np.zeros(m.shape, dtype=bool)
    touch[1:, :] |= other[:-1, :]
    touch[:-1, :] |= other[1:, :]
    touch[:, 1:] |= other[:, :-1]
    touch[:, :-1] |= other[:, 1:]
    n = int(np.count_nonzero(v))
    return int(np.count_nonzero(m & touch)) / n if n else math.nan


def relative_deviation(t: float, c: float) -> float:
    """(T − C) / C; NaN when C is 0 or either value is NaN."""
    if math.isnan(t) or math.isnan(c) or c == 0:
        return math.nan
    return (t - c) / c
