"""Synthetic terrain shared by the landscape generator and the synthetic DEM writer.

Elevation is a deterministic function of (seed, lon, lat): hilly regions with ridges and flat
valley floors (where the landscape puts paddies) and plains with a few metres of relief. The
same :func:`elevation` feeds :mod:`mapping.imagery.synthetic`, so terraces appear where the DEM
written by :func:`write_synthetic_dem` is steep and paddies where it is flat.

Coordinates: world metres x = lon * KX(lat band), y = lat * KY, where KX uses the cosine of the
centre of the 1° latitude band. Within a band the mapping is exact and continuous across
blocks; at whole-degree parallels the east-west scale steps by under 2 %.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio

from mapping.geo.grid import BlockRaster
from mapping.geo.raster import write_single_band

F64 = npt.NDArray[np.float64]
KY = 110_574.0
_M = np.uint64(0xFFFFFFFFFFFFFFFF)


def kx_for_lat(lat: float) -> float:
    """Metres per degree of longitude used for the 1° latitude band holding ``lat``."""
    return 111_320.0 * math.cos(math.radians(math.floor(lat) + 0.5))


def hash_u64(*parts: npt.ArrayLike, seed: int = 0) -> npt.NDArray[np.uint64]:
    """Vectorised 64-bit mix of integer arrays (splitmix64 finaliser); wraps on overflow."""
    h: np.unsignedinteger | npt.NDArray[np.unsignedinteger] = np.uint64(
        (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    )
    with np.errstate(over="ignore"):
        for i, p in enumerate(parts):
            a = np.asarray(p).astype(np.int64).astype(np.uint64)
            h = h ^ (a * np.uint64(0xBF58476D1CE4E5B9 + 2 * i + 1))
            h = h ^ (h >> np.uint64(31))
            h = h * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(29))
    return np.asarray(h, dtype=np.uint64)


def hash_unit(*parts: npt.ArrayLike, seed: int = 0) -> F64:
    """Uniform [0, 1) from integer arrays."""
    return (hash_u64(*parts, seed=seed) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def value_noise(x: F64, y: F64, scale: float, seed: int) -> F64:
    """Smooth lattice noise in [0, 1) with feature size ``scale`` metres."""
    u, v = x / scale, y / scale
    i, j = np.floor(u), np.floor(v)
    fu, fv = u - i, v - j
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    a = hash_unit(i, j, seed=seed)
    b = hash_unit(i + 1, j, seed=seed)
    c = hash_unit(i, j + 1, seed=seed)
    d = hash_unit(i + 1, j + 1, seed=seed)
    return (a + (b - a) * fu) + ((c + (d - c) * fu) - (a + (b - a) * fu)) * fv


def fbm(x: F64, y: F64, scale: float, seed: int, octaves: int = 4) -> F64:
    """Fractal sum of value noise, normalised to about [0, 1]."""
    total = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)))
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        total += amp * value_noise(x, y, scale / 2**o, seed + 101 * o)
        norm += amp
        amp *= 0.5
    return total / norm


def elevation_xy(x: F64, y: F64, seed: int) -> F64:
    """Elevation in metres at world metres (x, y)."""
    relief = np.clip((value_noise(x, y, 25_000, seed + 7) - 0.3) / 0.45, 0, 1)
    relief = relief * relief * (3 - 2 * relief)
    amp = 12 + 520 * relief
    f = fbm(x, y, 3_500, seed + 11, octaves=5)
    # Cut the lows flat: valley floors (and whole plains) are nearly level.
    shaped = np.maximum(f - 0.38, 0) / 0.62
    base = 20 + 900 * value_noise(x, y, 60_000, seed + 13)
    return base + amp * shaped**1.2 + 3 * f


def elevation(lon: F64, lat: F64, seed: int) -> F64:
    """Elevation in metres at lon/lat (arrays broadcast)."""
    lat_a = np.asarray(lat, dtype=np.float64)
    kx = 111_320.0 * np.cos(np.radians(np.floor(lat_a) + 0.5))
    return elevation_xy(np.asarray(lon, dtype=np.float64) * kx, lat_a * KY, seed)


def write_synthetic_dem(
    dest: Path,
    bounds: tuple[float, float, float, float],
    resolution_deg: float,
    *,
    seed: int,
    chunk_rows: int = 512,
) -> str:
    """Write a float32 DEM GeoTIFF (EPSG:4326, metres) over lon/lat ``bounds``; return sha256.

    Values are :func:`elevation` at pixel centres, so the DEM matches the synthetic
    landscapes of the same seed. Large areas are written in row chunks.
    """
    west, south, east, north = bounds
    if not (west < east and south < north and resolution_deg > 0):
        raise ValueError("need west < east, south < north and a positive resolution")
    width = max(1, round((east - west) / resolution_deg))
    height = max(1, round((north - south) / resolution_deg))
    raster = BlockRaster(west, south, east, north, width, height)
    dx, dy = raster.pixel_deg
    lon = west + (np.arange(width, dtype=np.float64) + 0.5) * dx
    if width * height <= 4096 * 4096:
        lat = north - (np.arange(height, dtype=np.float64) + 0.5) * dy
        dem = elevation(lon[None, :], lat[:, None], seed).astype(np.float32)
        return write_single_band(dest, dem, raster)
    # Too big for one array: write strips through rasterio directly (still atomic).
    from mapping.geo.raster import _GTIFF_ENV, _profile, atomic_path, sha256_file

    profile = _profile(raster, count=1, dtype="float32")
    profile["predictor"] = 3
    with atomic_path(dest) as tmp, rasterio.Env(**_GTIFF_ENV):
        with rasterio.open(tmp, "w", **profile) as dst:
            for r0 in range(0, height, chunk_rows):
                r1 = min(height, r0 + chunk_rows)
                lat = north - (np.arange(r0, r1, dtype=np.float64) + 0.5) * dy
                block = elevation(lon[None, :], lat[:, None], seed).astype(np.float32)
                dst.write(block, 1, window=((r0, r1), (0, width)))
    return sha256_file(dest)


def slope_deg(elev: F64, dx_m: float, dy_m: float) -> F64:
    """Slope in degrees from an elevation grid with pixel spacing (dx_m, dy_m)."""
    gy, gx = np.gradient(elev, dy_m, dx_m)
    slope: F64 = np.degrees(np.arctan(np.hypot(gx, gy)))
    return slope
