"""Pixel IoU = TP / (TP + FP + FN) accumulated over many (prediction, truth) pairs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IGNORE = 255


@dataclass(frozen=True)
class IoUCounts:
    """Pixel counts for the cropland class over every scored pixel (ignore pixels excluded)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def iou(self) -> float:
        """TP / (TP + FP + FN); NaN when neither prediction nor truth has any cropland."""
        denom = self.tp + self.fp + self.fn
        return float("nan") if denom == 0 else self.tp / denom

    def __add__(self, other: IoUCounts) -> IoUCounts:
        return IoUCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                         self.tn + other.tn)

    def as_dict(self) -> dict[str, float | int]:
        return {"iou": self.iou, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}


def iou_counts(pred: npt.ArrayLike, truth: npt.ArrayLike, *,
               ignore_value: int = IGNORE) -> IoUCounts:
    """Counts for one pair; pixels where ``truth == ignore_value`` are not scored."""
    p = np.asarray(pred)
    t = np.asarray(truth)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from truth shape {t.shape}")
    valid = t != ignore_value
    pc = (p == 1) & valid
    tc = (t == 1) & valid
    tp = int(np.count_nonzero(pc & tc))
    fp = int(np.count_nonzero(pc & ~tc))
    fn = int(np.count_nonzero(~pc & tc))
    tn = int(np.count_nonzero(valid)) - tp - fp - fn
    return IoUCounts(tp, fp, fn, tn)


def pixel_iou(pairs: Iterable[tuple[npt.ArrayLike, npt.ArrayLike]], *,
              ignore_value: int = IGNORE) -> IoUCounts:
    """Accumulate counts over all pairs (not a mean of per-image IoUs); read ``.iou``."""
    total = IoUCounts(0, 0, 0, 0)
    for pred, truth in pairs:
        total = total + iou_counts(pred, truth, ignore_value=ignore_value)
    return total
