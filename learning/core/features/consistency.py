"""Consistency of the two imagery sources' masks of one block: intersection over union.

Both masks are ``(H, W)`` ``uint8`` (1 = cropland, 0 = other, 255 = ignore) on the same grid; the
caller resamples them. Only pixels valid in *both* masks count. Rules for the edge cases:

- empty union (neither source maps cropland on the shared valid pixels): IoU = 1.0, because the
  two sources agree completely;
- no pixel valid in both masks: IoU = NaN (nothing to compare; XGBoost treats it as missing).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from learning.core.features.region import IGNORE, check_mask, count_equal


def mask_iou(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> float:
    """IoU of the cropland (value 1) of two masks over the pixels valid in both."""
    ma, mb = check_mask(a, "first mask"), check_mask(b, "second mask")
    return iou_of_checked(ma, mb)


def iou_of_checked(ma: npt.NDArray[np.uint8], mb: npt.NDArray[np.uint8]) -> float:
    """:func:`mask_iou` of two masks that already passed ``check_mask``."""
    if ma.shape != mb.shape:
        raise ValueError(f"masks must be on the same grid, got {ma.shape} and {mb.shape}")
    # Saturating add: 2 = cropland in both, 1 = in one, 0 = in neither, 255 = ignored in
    # either (255 + anything saturates): one SIMD pass, then counts of single values.
    code = np.asarray(cv2.add(ma, mb), dtype=np.uint8)
    ignored = count_equal(code, IGNORE)
    if ignored == code.size:
        return math.nan
    inter = count_equal(code, 2)
    union = int(cv2.countNonZero(code)) - ignored
    return 1.0 if union == 0 else inter / union
