"""The feature matrix every tabular model accepts: rows of the model's named features."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def feature_matrix(x: npt.ArrayLike, feature_names: Sequence[str]) -> npt.NDArray[np.float64]:
    """``x`` as a float matrix of one row per sample (a single row may be 1-D); a clear error
    when the width is not ``len(feature_names)`` or a value is infinite (NaN means missing)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != len(feature_names):
        raise ValueError(
            f"expected {len(feature_names)} features per row "
            f"({', '.join(feature_names)}), got shape {arr.shape}"
        )
    if np.isinf(arr).any():
        raise ValueError("features must be finite or NaN (missing), found infinity")
    return arr
