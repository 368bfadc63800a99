"""Terrain features of a block from a DEM window: median elevation, slope, TRI and roughness.

The per-pixel definitions are those of ``gdaldem`` (GDAL 3.6), so that a user can reproduce a
feature with the command line tool:

- **slope** (``gdaldem slope``, degrees, Horn's method)::

      dz/dx = ((z1 + 2 z4 + z7) - (z3 + 2 z6 + z9)) / (8 * ewres * scale)
      dz/dy = ((z7 + 2 z8 + z9) - (z1 + 2 z2 + z3)) / (8 * nsres * scale)
      slope = degrees(atan(sqrt(dz/dx**2 + dz/dy**2)))

  with ``z1..z9`` the 3x3 window in row-major order and ``ewres``/``nsres`` the pixel size in
  the DEM's horizontal units. For a lon/lat DEM, ``scale`` converts degrees to metres: by
  default 111120 m per degree on both axes, which is what ``gdaldem slope -s 111120`` does
  (``geographic_scale="gdaldem"``); ``geographic_scale="latitude"`` instead shrinks the
  east-west size by ``cos(latitude)`` of the window centre, which is nearer the true slope away
  from the equator but no longer equal to ``gdaldem``'s output. Projected DEMs use scale 1.
- **TRI** (``gdaldem TRI``, whose default in GDAL >= 3.3 for terrain is Riley et al. 1999):
  ``sqrt(sum over the 8 neighbours of (z_i - z_centre)**2)``, in metres.
- **roughness** (``gdaldem roughness``): ``max - min`` of the 3x3 window, in metres.

Every per-pixel value needs all 9 cells of its window; pixels on the window edge and pixels with
a no-data cell (NaN, or the DEM's nodata value) in their 3x3 window are NaN, as ``gdaldem``
writes nodata there (it does not use ``-compute_edges``).
:func:`mapping.geo.dem.read_dem_window` reads the pixels covering a block's bounds plus a
one-pixel margin, so every block pixel has neighbours.

The block features are the **medians** over the block pixels (the window without its margin) of
elevation, slope, TRI and roughness. No-data rule (``nan_policy``):

- ``"raise"`` (default): any no-data cell in the window, margin included, raises ``ValueError``
  naming the count. A coastal or border block then needs an explicit decision by the caller.
- ``"omit"``: medians over the block pixels that have a value (elevation: the pixel itself is
  valid; slope/TRI/roughness: its whole 3x3 window is valid); a feature with no such pixel is
  NaN, which XGBoost treats as missing. ``valid_fraction`` reports the share of block pixels
  with a full 3x3 window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from mapping.geo.dem import DemWindow

__all__ = ["DemWindow", "TerrainFeatures", "terrain_features"]  # DemWindow: the input type

GDALDEM_GEOGRAPHIC_SCALE = 111120.0  # metres per degree, gdaldem's documented -s value
NanPolicy = Literal["raise", "omit"]
GeographicScale = Literal["gdaldem", "latitude"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TerrainFeatures:
    """Median elevation (m), slope (degrees), TRI (m) and roughness (m) over a block."""

    elevation: float
    slope: float
    tri: float
    roughness: float
    valid_fraction: float


def _neighbours(z: FloatArray) -> list[FloatArray]:
    """The 9 shifted interior views z1..z9 (row-major) of the 3x3 windows of ``z``."""
    h, w = z.shape
    return [z[r : h - 2 + r, c : w - 2 + c] for r in range(3) for c in range(3)]


def _framed(inner: FloatArray, shape: tuple[int, int]) -> FloatArray:
    out = np.full(shape, np.nan)
    out[1:-1, 1:-1] = inner
    return out


def _check_dem(z: npt.NDArray[np.floating]) -> FloatArray:
    if z.ndim != 2 or z.shape[0] < 3 or z.shape[1] < 3:
        raise ValueError(f"a DEM array needs at least 3x3 cells, got shape {z.shape}")
    return np.asarray(z, dtype=np.float64)


def slope_degrees(z: npt.NDArray[np.floating], xres: float, yres: float,
                  scale: float = 1.0) -> FloatArray:
    """Horn slope in degrees as ``gdaldem slope -s scale``; NaN on the edge and near no-data."""
    z = _check_dem(z)
    z1, z2, z3, z4, _z5, z6, z7, z8, z9 = _neighbours(z)
    dx = ((z1 + 2 * z4 + z7) - (z3 + 2 * z6 + z9)) / (8.0 * xres * scale)
    dy = ((z7 + 2 * z8 + z9) - (z1 + 2 * z2 + z3)) / (8.0 * yres * scale)
    return _framed(np.degrees(np.arctan(np.sqrt(dx * dx + dy * dy))), z.shape)


def tri_riley(z: npt.NDArray[np.floating]) -> FloatArray:
    """Riley's terrain ruggedness index as ``gdaldem TRI`` (GDAL >= 3.3 default)."""
    z = _check_dem(z)
    win = _neighbours(z)
    centre = win[4]
    acc = np.zeros_like(centre)
    for k, zk in enumerate(win):
        if k != 4:
            d = zk - centre
            acc += d * d
    return _framed(np.sqrt(acc), z.shape)


def roughness(z: npt.NDArray[np.floating]) -> FloatArray:
    """Largest minus smallest elevation of the 3x3 window, as ``gdaldem roughness``."""
    z = _check_dem(z)
    win = np.stack(_neighbours(z))
    # np.max/np.min propagate NaN, which is the no-data rule we want.
    return _framed(win.max(axis=0) - win.min(axis=0), z.shape)


def horizontal_scale(window: DemWindow, geographic_scale: GeographicScale) -> tuple[float, float]:
    """Metres per DEM unit along x and y for slope."""
    if not window.geographic:
        return 1.0, 1.0
    if geographic_scale == "gdaldem":
        return GDALDEM_GEOGRAPHIC_SCALE, GDALDEM_GEOGRAPHIC_SCALE
    if geographic_scale == "latitude":
        return GDALDEM_GEOGRAPHIC_SCALE * math.cos(math.radians(window.center_lat)), \
            GDALDEM_GEOGRAPHIC_SCALE
    raise ValueError(f"geographic_scale must be 'gdaldem' or 'latitude', got {geographic_scale!r}")


def _median(values: FloatArray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else math.nan


def terrain_features(window: DemWindow, *, nan_policy: NanPolicy = "raise",
                     geographic_scale: GeographicScale = "gdaldem") -> TerrainFeatures:
    """Median elevation, slope, TRI and roughness over the block pixels of ``window``."""
    z = window.elevation
    n_bad = int(np.count_nonzero(~np.isfinite(z)))
    if nan_policy == "raise":
        if n_bad:
            raise ValueError(
                f"DEM window has {n_bad} no-data cell(s) of {z.size} (NaN or nodata); "
                "use nan_policy='omit' to take medians over the valid pixels"
            )
    elif nan_policy != "omit":
        raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    sx, sy = horizontal_scale(window, geographic_scale)
    # Scale each axis separately: slope_degrees takes one scale, so fold it into the resolution.
    slope = slope_degrees(z, window.xres * sx, window.yres * sy)
    tri = tri_riley(z)
    rough = roughness(z)
    core = window.core
    s_core = slope[core]
    n_full = int(np.count_nonzero(np.isfinite(s_core)))
    return TerrainFeatures(
        elevation=_median(z[core]),
        slope=_median(s_core),
        tri=_median(tri[core]),
        roughness=_median(rough[core]),
        valid_fraction=n_full / s_core.size,
    )
