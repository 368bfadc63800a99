"""Confidence intervals for a province's validation numbers.

- Correctness is a share of blocks judged right: the Wilson score interval (it stays inside
  [0, 1] and is honest for small n and for shares near 0 or 1, where the normal one is not).
- IoU is pooled over held-out blocks (TP, FP, FN summed), so blocks are the sampling unit: a
  percentile bootstrap that resamples whole blocks with replacement and pools again. With
  one block the interval is that block's IoU twice: a single block says nothing about spread,
  which is why rounds require several held-out blocks per province.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, *, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes`` out of ``n`` (None when n is 0)."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..{n}, got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_iou_interval(
    blocks: Sequence[tuple[int, int, int]],
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap of the pooled IoU over blocks given as (tp, fp, fn) each.

    A resample whose blocks hold no cropland in truth or prediction counts as IoU 1 (all of
    it right), as the evaluation does. None when there are no blocks.
    """
    if not blocks:
        return None
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    counts = np.asarray(blocks, dtype=np.float64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(counts), size=(resamples, len(counts)))
    sums = counts[idx].sum(axis=1)  # (resamples, 3)
    union = sums.sum(axis=1)
    iou = np.where(union > 0, sums[:, 0] / np.where(union > 0, union, 1.0), 1.0)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(iou, [alpha, 1 - alpha])
    return float(lo), float(hi)
