"""Thin-cloud image-quality features of a block image: sharpness, median hue/saturation/lightness.

Definitions (fixed; the correctness and integration models are trained on exactly these):

- **Input**: an RGB image, ``uint8``, shape ``(H, W, 3)``, channels in R, G, B order.
- **Valid pixels**: every pixel whose R, G and B are not all zero. All-zero pixels are the black
  no-data fill of tile mosaics and are left out of every median. A block without any valid pixel
  gets ``NaN`` for every feature (and ``valid_fraction == 0``).
- **Sharpness**: the grey channel is OpenCV's 8-bit luma (``COLOR_RGB2GRAY``,
  0.299 R + 0.587 G + 0.114 B, rounded). Gradients are OpenCV's 3x3 Sobel (``ksize=3``, default
  ``BORDER_REFLECT_101`` at the image edge), ``gx = d/dx`` and ``gy = d/dy`` in integer grey-level
  units; magnitude ``sqrt(gx**2 + gy**2)`` (0 .. ~1443). Sharpness is the median magnitude over
  valid pixels (a pixel next to the no-data fill keeps its gradient: it is where the image ends).
  Thin cloud and haze lower it.
- **Hue, saturation, lightness**: HSL (also called HLS) of the 8-bit pixel as OpenCV's
  ``COLOR_RGB2HLS_FULL`` computes it: ``L = (max + min) / 2``, ``S = (max - min) / (max + min)``
  for ``L < 0.5`` else ``(max - min) / (2 - max - min)``, each stored as round(255 * value); the
  hue is stored as 256 levels per turn. Medians are taken over the valid pixels on these 8-bit
  levels (the mean of the two middle levels when the count is even, as ``np.median``) and reported
  as hue in degrees ``level * 360 / 256`` (0 <= hue < 360), saturation and lightness as
  ``level / 255`` (0..1). Grey pixels (S = 0) have hue 0, as in OpenCV. The hue median is a plain
  (not circular) median, as in the paper's feature table. OpenCV's 8-bit conversion is up to
  1.5 hue levels (2.1 degrees) and 0.56 saturation/lightness levels off exact HSL per pixel, so
  the medians are too (an order statistic moves no more than its values); we accept that for a
  conversion 8x faster than the float one, and the tests hold it to these bounds.

The 8-bit medians come from exact histograms of the whole image (``cv2.calcHist``, or
``np.bincount`` beyond 2**24 pixels): a no-data pixel converts to HLS (0, 0, 0), so its count
comes off bin 0 of each. No-data pixels are exactly those with grey level 0 and saturation 0
(the few non-black colours with grey level 0 all have S = 255), so ``grey | S`` is nonzero
exactly on the valid pixels. The sharpness median comes from a histogram of the squared
magnitudes capped at 32767 by saturating 16-bit arithmetic (exact below the cap; no-data pixels
set to 0 and the ranks shifted past them), with a sort-based fallback for medians above ~181.
All give exactly ``np.median``'s value in a fraction of the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

HUE_LEVELS = 256
HUE_DEG_PER_LEVEL = 360.0 / HUE_LEVELS
# Largest squared 3x3 Sobel magnitude on 8-bit input: |gx|, |gy| <= 4 * 255.
_MAX_SOBEL_SQ = 2 * (4 * 255) ** 2
_CALCHIST_EXACT = 1 << 24
_BLACK = np.zeros(3, dtype=np.uint8)


@dataclass(frozen=True)
class QualityFeatures:
    """Image-quality medians of one block image (see the module docstring for definitions)."""

    sharpness: float
    hue_deg: float
    saturation: float
    lightness: float
    valid_fraction: float


def _check_rgb(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image, got dtype {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"empty image of shape {image.shape}")
    return np.ascontiguousarray(image)


def valid_pixels(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """True where a pixel is imagery, False where R, G and B are all zero (no-data fill)."""
    # One OpenCV pass over all three channels, ~20x faster than numpy's reduction.
    black = cv2.inRange(_check_rgb(image), _BLACK, _BLACK)
    return np.asarray(black == 0)


def _order_stat_median(counts: npt.NDArray[np.int64]) -> tuple[int, int]:
    """The two middle values (equal when the count is odd) of a histogram's sample."""
    n = int(counts.sum())
    cum = np.cumsum(counts)
    lo = int(np.searchsorted(cum, (n - 1) // 2 + 1))
    hi = int(np.searchsorted(cum, n // 2 + 1))
    return lo, hi


def level_counts(image: npt.NDArray[np.uint8], channel: int = 0,
                 valid: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.int64]:
    """Exact histogram (256 counts) of one channel of an 8-bit image over the valid pixels."""
    img = np.ascontiguousarray(image)
    n_pix = img.shape[0] * img.shape[1]
    if n_pix < _CALCHIST_EXACT:
        # calcHist counts in float32, exact below 2**24 pixels, and takes the mask directly.
        m = None if valid is None else np.ascontiguousarray(valid).view(np.uint8)
        hist = cv2.calcHist([img], [channel], m, [256], [0, 256])
        return np.rint(hist.ravel()).astype(np.int64)
    plane = img if img.ndim == 2 else img[..., channel]
    vals = plane.ravel() if valid is None else plane[valid]
    return np.bincount(vals, minlength=256).astype(np.int64)


def counts_median(counts: npt.NDArray[np.int64]) -> float:
    """``np.median`` of the sample a histogram of integer levels describes; NaN when empty."""
    if counts.sum() == 0:
        return math.nan
    lo, hi = _order_stat_median(counts)
    return (lo + hi) / 2.0


def histogram_median(values: npt.NDArray[np.integer], *, levels: int | None = None) -> float:
    """``np.median`` of non-negative integers, computed from ``np.bincount``; NaN when empty."""
    flat = values.ravel()
    if flat.size == 0:
        return math.nan
    counts = np.bincount(flat, minlength=levels or 0)
    lo, hi = _order_stat_median(counts)
    return (lo + hi) / 2.0


def sobel_squared_magnitude(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """gx**2 + gy**2 of OpenCV's 3x3 Sobel on an 8-bit grey image.

    The values are integers below 2**21, so float32 holds them exactly.
    """
    gx, gy = cv2.spatialGradient(grey)  # = Sobel(CV_16S, ksize=3) in x and y, one pass
    sq = cv2.multiply(gx, gx, dtype=cv2.CV_32F)
    cv2.add(sq, cv2.multiply(gy, gy, dtype=cv2.CV_32F), dst=sq)
    return np.asarray(sq)


def _select_sq(sq: npt.NDArray[np.float32], mask: npt.NDArray[np.uint8] | None,
               ranks: tuple[int, int]) -> tuple[int, int]:
    """The two order statistics ``ranks`` of the exact integer values in ``sq`` (masked).

    Two levels: a 256-bin histogram of the 8-bit key ``round(sqrt(sq))`` (saturating at 255),
    then only the pixels of the one or two key values that hold the ranks are sorted. The key is
    a non-decreasing function of ``sq`` (float32 ``sqrt`` of exact integers is correctly
    rounded, checked over every possible value in the tests), so the ranks fall in the right bin.
    """
    key = np.asarray(cv2.convertScaleAbs(cv2.sqrt(sq)), dtype=np.uint8)
    counts = level_counts(key, 0, None if mask is None else mask.view(np.bool_))
    cum = np.cumsum(counts)
    out: list[int] = []
    cache: dict[int, npt.NDArray[np.float32]] = {}
    for k in ranks:
        b = int(np.searchsorted(cum, k + 1))
        if b not in cache:
            sel = (key == b).view(np.uint8)  # (cv2.compare takes a 1x1 array for a scalar)
            if mask is not None:
                cv2.bitwise_and(sel, mask, dst=sel)
            cache[b] = np.sort(sq[sel != 0])
        before = int(cum[b - 1]) if b else 0
        out.append(int(cache[b][k - before]))
    return out[0], out[1]


_SQ_CAP = (1 << 15) - 1
_SQ_FIRST_BINS = 1 << 12


def _low_value_counts(values: npt.NDArray[np.uint16], bins: int) -> npt.NDArray[np.int64]:
    """Exact counts of the values 0 .. bins - 1 (larger ones left out)."""
    if values.size < _CALCHIST_EXACT:
        hist = cv2.calcHist([values], [0], None, [bins], [0, bins])
        return np.rint(hist.ravel()).astype(np.int64)
    flat = values.ravel()
    return np.bincount(flat[flat < bins], minlength=bins).astype(np.int64)


def _capped_sq_median(grey: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8] | None,
                      n: int) -> float | None:
    """Median Sobel magnitude over the ``n`` masked pixels, from capped squared magnitudes.

    ``min(gx**2 + gy**2, 32767)`` comes from OpenCV's saturating 16-bit multiply and add (in
    place over the gradients; ``min(a, c) + min(b, c)`` saturated at c is ``min(a + b, c)``)
    and keeps the order of every value below the cap, so histograms of it give the two middle
    values exactly: first one of the values below 4096 (magnitudes below 64, the usual case),
    then one of all values if the middle lies higher. None when a middle value reaches the cap
    (median magnitude >= 181, a very sharp image) and the caller must look further.
    """
    gx, gy = cv2.spatialGradient(grey)  # = Sobel(CV_16S, ksize=3) in x and y, one pass
    cv2.multiply(gx, gx, dst=gx)
    cv2.multiply(gy, gy, dst=gy)
    if mask is None:
        sq = cv2.add(gx, gy, dst=gx)
        left_out = 0
    else:
        # Left-out pixels get 0 and so take the lowest ranks: unmasked histograms (a masked
        # calcHist over part of the 16-bit range is ~10x slower) with the ranks shifted.
        sq = np.zeros(gx.shape, gx.dtype)  # calloc: no separate zeroing pass
        cv2.add(gx, gy, dst=sq, mask=mask)
        left_out = sq.size - n
    values = np.asarray(sq).view(np.uint16)  # non-negative, so the same bits
    ranks = (left_out + (n - 1) // 2, left_out + n // 2)
    for bins in (_SQ_FIRST_BINS, _SQ_CAP + 1):
        counts = _low_value_counts(values, bins)
        if int(counts.sum()) > ranks[1]:
            cum = np.cumsum(counts)
            lo, hi = (int(np.searchsorted(cum, k + 1)) for k in ranks)
            if hi >= _SQ_CAP:
                return None
            return (math.sqrt(lo) + math.sqrt(hi)) / 2.0
    return None


def _sharpness(grey: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8] | None,
               n: int) -> float:
    """Median Sobel magnitude over the ``n`` pixels where ``mask`` (None: all) is nonzero."""
    fast = _capped_sq_median(grey, mask, n)
    if fast is not None:
        return fast
    sq = sobel_squared_magnitude(grey)
    if mask is not None:
        mask = (mask != 0).view(np.uint8)  # 0/1, as the selection's boolean views need
    # sqrt is monotone, so the middle squared magnitudes give the middle magnitudes exactly.
    lo, hi = _select_sq(sq, mask, ((n - 1) // 2, n // 2))
    return (math.sqrt(lo) + math.sqrt(hi)) / 2.0


def sharpness(image: npt.NDArray[np.uint8], valid: npt.NDArray[np.bool_] | None = None) -> float:
    """Median Sobel gradient magnitude over valid pixels (grey levels per pixel); NaN if none."""
    img = _check_rgb(image)
    if valid is None:
        valid = valid_pixels(img)
    n = int(np.count_nonzero(valid))
    if n == 0:
        return math.nan
    grey = np.asarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    mask = None if n == valid.size else np.ascontiguousarray(valid).view(np.uint8)
    return _sharpness(grey, mask, n)


def hls_levels(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """OpenCV 8-bit HLS: channel 0 hue (256 levels/turn), 1 lightness, 2 saturation (0..255)."""
    return np.asarray(cv2.cvtColor(_check_rgb(image), cv2.COLOR_RGB2HLS_FULL))


def quality_features(image: npt.NDArray[np.uint8]) -> QualityFeatures:
    """Sharpness and median hue (degrees), saturation and lightness (0..1) of one block image."""
    img = _check_rgb(image)
    hls = hls_levels(img)
    # Unmasked histograms; a no-data pixel is HLS (0, 0, 0), so its count comes off bin 0.
    hue, light, sat = (level_counts(hls, ch) for ch in (0, 1, 2))
    grey = np.asarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    mask: npt.NDArray[np.uint8] | None = None
    n_valid = img.shape[0] * img.shape[1]
    if light[0] and sat[0]:  # else no pixel is black
        # Black <=> grey == 0 and S == 0 (checked over all 2**24 colours in the tests): the
        # bitwise or of the two is nonzero exactly on the valid pixels.
        mask = np.asarray(cv2.bitwise_or(grey, cv2.extractChannel(hls, 2)), dtype=np.uint8)
        n_valid = int(cv2.countNonZero(mask))
        n_black = mask.size - n_valid
        if n_black == 0:
            mask = None
        for counts in (hue, light, sat):
            counts[0] -= n_black
    frac = n_valid / (img.shape[0] * img.shape[1])
    if n_valid == 0:
        return QualityFeatures(math.nan, math.nan, math.nan, math.nan, 0.0)
    return QualityFeatures(
        sharpness=_sharpness(grey, mask, n_valid),
        hue_deg=counts_median(hue) * HUE_DEG_PER_LEVEL,
        saturation=counts_median(sat) / 255.0,
        lightness=counts_median(light) / 255.0,
        valid_fraction=frac,
    )
