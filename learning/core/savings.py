"""Annotation savings: how many labels random selection needs to match active learning's IoU.

Pure: numbers in, numbers out. The active-learning run is given as per-round
``(labels used, IoU)``; random selection as a learning curve ``(labels, IoU)`` measured by
training on random subsets of the labelled blocks. For each active-learning round the random
labels needed to reach the same IoU are read off the random curve:

- inside the measured range: linear interpolation on the curve's running maximum (a learning
  curve with noise can dip; more labels never *need* to make the model worse, so the first
  number of labels that reached the IoU is what counts);
- above the best measured point: from a saturating curve ``iou(n) = a · n / (n + k)`` fitted
  to the measured points by least squares, flagged as ``fitted``; when the target is at or
  above the curve's ceiling ``a`` random selection is ``unreachable`` and no ratio is given;
- below the first measured point: random selection reached that IoU with its fewest measured
  labels or fewer, and the data say no more. The curve is not fitted there (a noisy first point
  sends a fit anywhere between 0 and that number: a replay once read "0.7 labels" off it), so
  the round is ``below_measured``, with that first number as an upper bound and no ratio.

The saving is reported as ``ratio = random labels / active labels`` (2.0: random selection needs
twice as many labels) and ``saved = 1 - active / random`` (0.5: half the labels saved).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from learning.core.segmentation.metrics import pixel_iou


class Method(enum.StrEnum):
    MEASURED = "measured"
    FITTED = "fitted"
    UNREACHABLE = "unreachable"
    BELOW_MEASURED = "below_measured"


@dataclass(frozen=True)
class CurvePoint:
    labels: float
    iou: float


@dataclass(frozen=True)
class SaturatingCurve:
    """``iou(n) = a · n / (n + k)``: 0 labels give 0, many labels approach the ceiling ``a``."""

    a: float
    k: float

    def iou(self, labels: float) -> float:
        return self.a * labels / (labels + self.k) if labels > 0 else 0.0

    def labels_for(self, iou: float) -> float | None:
        """Labels at which the curve reaches ``iou``; None at or above the ceiling."""
        if iou <= 0:
            return 0.0
        if iou >= self.a:
            return None
        return self.k * iou / (self.a - iou)


@dataclass(frozen=True)
class RoundSaving:
    labels_active: float
    iou: float
    labels_random: float | None
    method: Method
    ratio: float | None
    saved: float | None
    # For ``below_measured``: random selection needed at most this many labels.
    labels_random_at_most: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {"labels_active": self.labels_active, "iou": self.iou,
                "labels_random": self.labels_random, "method": self.method.value,
                "ratio": self.ratio, "saved": self.saved,
                "labels_random_at_most": self.labels_random_at_most}


HEADLINE_SHARE = 0.99


@dataclass(frozen=True)
class SavingsResult:
    rounds: tuple[RoundSaving, ...]
    curve: SaturatingCurve | None

    @property
    def final(self) -> RoundSaving | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def headline(self) -> RoundSaving | None:
        """The first round that reached 99 % of the run's final IoU.

        On labelled data the last step of both orders trains on every label, so its ratio is
        1 by construction; the saving shows where the active order got (nearly) there first.
        """
        final = self.final
        if final is None:
            return None
        return next(r for r in self.rounds if r.iou >= HEADLINE_SHARE * final.iou)

    def to_dict(self) -> dict[str, object]:
        final, headline = self.final, self.headline
        return {
            "rounds": [r.to_dict() for r in self.rounds],
            "final": final.to_dict() if final else None,
            "headline": headline.to_dict() if headline else None,
            "headline_share": HEADLINE_SHARE,
            "curve": {"a": self.curve.a, "k": self.curve.k} if self.curve else None,
        }


def _points(pairs: Sequence[tuple[float, float]], what: str) -> list[CurvePoint]:
    out: list[CurvePoint] = []
    for n, iou in pairs:
        if not (math.isfinite(n) and math.isfinite(iou)):
            raise ValueError(f"{what}: labels and IoU must be finite numbers, got ({n}, {iou})")
        if n < 0 or not 0 <= iou <= 1:
            raise ValueError(f"{what}: need labels >= 0 and 0 <= IoU <= 1, got ({n}, {iou})")
        out.append(CurvePoint(float(n), float(iou)))
    return sorted(out, key=lambda p: p.labels)


def fit_saturating(points: Sequence[CurvePoint]) -> SaturatingCurve | None:
    """Least-squares fit of ``a · n / (n + k)``; None without two points at distinct n > 0.

    For a fixed ``k`` the best ``a`` is closed-form (linear least squares through the origin
    in ``x = n / (n + k)``), so ``k`` is searched on a log grid and then refined around the best
    grid value: deterministic, no optimiser to diverge.
    """
    pts = [p for p in points if p.labels > 0]
    if len({p.labels for p in pts}) < 2:
        return None
    n = np.array([p.labels for p in pts])
    y = np.array([p.iou for p in pts])

    def fit(k: float) -> tuple[float, float]:
        x = n / (n + k)
        a = float(x @ y / (x @ x))
        return float(np.sum((a * x - y) ** 2)), a

    lo, hi = math.log(n.min() / 100), math.log(n.max() * 100)
    grid = np.exp(np.linspace(lo, hi, 400))
    best_k = min(grid, key=lambda k: fit(float(k))[0])
    step = (hi - lo) / 399
    fine = np.exp(np.linspace(math.log(best_k) - step, math.log(best_k) + step, 401))
    best_k = min(fine, key=lambda k: fit(float(k))[0])
    return SaturatingCurve(a=fit(float(best_k))[1], k=float(best_k))


# IoUs closer than this count as equal: two fits on the same labels differ by rounding only.
IOU_TOLERANCE = 1e-6


def labels_to_reach(points: Sequence[CurvePoint], target: float) -> float | None:
    """Labels at which the measured curve first reaches ``target`` (interpolated), or None when
    ``target`` lies outside the measured range (below the first point or above the best)."""
    if not points or target < points[0].iou - IOU_TOLERANCE:
        return None
    best = points[0]
    if target <= best.iou + IOU_TOLERANCE:
        return best.labels
    for p in points[1:]:
        if p.iou >= target - IOU_TOLERANCE:
            if p.iou <= target:  # reached within the tolerance: at this point exactly
                return p.labels
            t = (target - best.iou) / (p.iou - best.iou)
            return best.labels + t * (p.labels - best.labels)
        if p.iou > best.iou:
            best = p
    return None


def annotation_savings(active: Sequence[tuple[float, float]],
                       random_curve: Sequence[tuple[float, float]]) -> SavingsResult:
    """Random-selection labels needed for each active-learning round's IoU, and the saving.

    ``active``: per round (labels used, IoU reached) of the active-learning run.
    ``random_curve``: (labels, IoU) of models trained on random subsets of the labels.
    """
    al = _points(active, "active-learning run")
    rc = _points(random_curve, "random-selection curve")
    curve = fit_saturating(rc)
    rounds: list[RoundSaving] = []
    for p in al:
        if rc and p.iou < rc[0].iou - IOU_TOLERANCE:
            rounds.append(RoundSaving(p.labels, p.iou, None, Method.BELOW_MEASURED, None, None,
                                      labels_random_at_most=rc[0].labels))
            continue
        needed = labels_to_reach(rc, p.iou)
        method = Method.MEASURED
        if needed is None:
            needed = curve.labels_for(p.iou) if curve else None
            method = Method.FITTED if needed is not None else Method.UNREACHABLE
        ratio = saved = None
        if needed is not None and p.labels > 0 and needed > 0:
            ratio = needed / p.labels
            saved = 1 - p.labels / needed
        rounds.append(RoundSaving(p.labels, p.iou, needed, method, ratio, saved))
    return SavingsResult(rounds=tuple(rounds), curve=curve)


# --- the simulation on labelled blocks -------------------------------------------------------
#
# Re-fitting the segmenter (Mask2Former) on many random subsets costs hours per fit, so the
# simulation re-fits a cheap stand-in on the same labelled blocks: a per-pixel logistic
# regression on colour (RGB, HSV) and local texture, scored by pooled pixel IoU on the held-out
# validation blocks. Both orders — the order the blocks were actually labelled in (what active
# learning chose) and random orders — are scored with the same stand-in, so their ratio is a
# like-for-like comparison of the orders; its absolute IoU is not the segmenter's.

IGNORE = 255
MAX_FIT_PIXELS = 40_000


@dataclass(frozen=True)
class LabelledBlock:
    """One labelled block, reduced to pixels: ``features`` (P, F) float32, ``labels`` (P,) uint8
    with 1 cropland, 0 other and 255 ignore."""

    features: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]


def block_pixels(rgb: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8], *, size: int = 48,
                 valid: npt.NDArray[np.bool_] | None = None) -> LabelledBlock:
    """Downsample a block image (H, W, 3) and its mask (H, W) to ``size`` × ``size`` pixels and
    turn each pixel into features: R, G, B, H, S, V and the local standard deviation of grey."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != mask.shape:
        raise ValueError(f"image {rgb.shape} and mask {mask.shape} do not match")
    img = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    lab = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    if valid is not None:
        ok = cv2.resize(valid.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
        lab = np.where(ok > 0, lab, IGNORE).astype(np.uint8)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32) / np.float32(255)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / np.float32(255)
    mean = cv2.blur(grey, (5, 5))
    std = np.sqrt(np.maximum(cv2.blur(grey * grey, (5, 5)) - mean * mean, 0))
    feats = np.concatenate(
        [img.astype(np.float32) / np.float32(255), hsv, std[..., None]], axis=2
    ).reshape(-1, 7)
    return LabelledBlock(features=feats.astype(np.float32), labels=lab.reshape(-1).astype(np.uint8))


def _fit_predict_iou(train: Sequence[LabelledBlock], validation: Sequence[LabelledBlock]) -> float:
    # At most MAX_FIT_PIXELS pixels, the same ones of each block whatever the order the blocks
    # come in, so that the same set of blocks always gives the same fit (fits stay ~0.1 s).
    per_block = max(1, MAX_FIT_PIXELS // len(train))
    xs, ys = [], []
    for b in train:
        keep = np.flatnonzero(b.labels != IGNORE)
        if keep.size > per_block:
            keep = keep[np.linspace(0, keep.size - 1, per_block).astype(np.int64)]
        xs.append(b.features[keep])
        ys.append(b.labels[keep])
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    xv = np.concatenate([b.features for b in validation])
    yv = np.concatenate([b.labels for b in validation])
    if y.size == 0:
        pred = np.zeros_like(yv)
    elif np.unique(y).size == 1:  # one class only: the stand-in can only predict it
        pred = np.full_like(yv, int(y[0]))
    else:
        model = LogisticRegression(max_iter=300)
        model.fit(x, y)
        pred = model.predict(xv).astype(np.uint8)
    return pixel_iou([(pred, yv)], ignore_value=IGNORE).iou


@dataclass(frozen=True)
class SelectionCurves:
    active: tuple[tuple[int, float], ...]
    random: tuple[tuple[int, float], ...]
    repeats: int


def selection_curves(train: Sequence[LabelledBlock], validation: Sequence[LabelledBlock], *,
                     steps: Sequence[int], repeats: int = 5, seed: int = 0) -> SelectionCurves:
    """IoU of the stand-in after the first n blocks of the labelling order (``train`` as given)
    and, for the same n, the mean over ``repeats`` random orders of the same blocks."""
    if not train or not validation:
        raise ValueError("the simulation needs labelled training and validation blocks")
    sizes = sorted({n for n in steps if 1 <= n <= len(train)})
    if not sizes:
        raise ValueError(f"no step between 1 and {len(train)} labelled blocks")
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(train)) for _ in range(repeats)]
    active = tuple((n, _fit_predict_iou(train[:n], validation)) for n in sizes)
    random = tuple(
        # A subset is passed in labelling order, so the same set of blocks is the same fit.
        (n, float(np.mean([_fit_predict_iou([train[i] for i in sorted(o[:n])], validation)
                           for o in orders])))
        for n in sizes
    )
    return SelectionCurves(active=active, random=random, repeats=repeats)
