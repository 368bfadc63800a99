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

_LUT_A = np.zeros(256, np.uint8)
_LUT_A[1], _LUT_A[IGNORE] = 1, 4
_LUT_B = np.zeros(256, np.uint8)
_LUT_B[1], _LUT_B[IGNORE] = 2, 4


def mask_iou(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> float:
    """IoU of the cropland (value 1) of two masks over the pixels valid in both."""
    ma, mb = check_mask(a, "first mask"), check_mask(b, "second mask")
    return iou_of_checked(ma, mb)


def iou_of_checked(ma: npt.NDArray[np.uint8], mb: npt.NDArray[np.uint8]) -> float:
    """:func:`mask_iou` of two masks that already passed ``check_mask``."""
    if ma.shape != mb.shape:
        raise ValueError(f"masks must be on the same grid, got {ma.shape} and {mb.shape}")
    # Codes 0..3 = (a is cropland) + 2 (b is cropland), >= 4 = ignored in either: two lookups
    # and one add instead of a chain of numpy boolean passes.
    code = np.asarray(cv2.add(cv2.LUT(ma, _LUT_A), cv2.LUT(mb, _LUT_B)), dtype=np.uint8)
    # OpenCV's stubs do not list scalar operands, which compare() accepts.
    if cv2.countNonZero(cv2.compare(code, 3, cv2.CMP_LE)) == 0:  # type: ignore[call-overload]
        return math.nan
    inter = count_equal(code, 3)
    union = int(cv2.countNonZero(cv2.inRange(code, 1, 3)))
    return 1.0 if union == 0 else inter / union
