"""Terrain features: oracle against real ``gdaldem`` on the shared DEM, windows, no-data rule."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from learning.core.features.terrain import (
    GDALDEM_GEOGRAPHIC_SCALE,
    roughness,
    slope_degrees,
    terrain_features,
    tri_riley,
)
from mapping.geo.dem import DemWindow, read_dem_window

needs_gdaldem = pytest.mark.skipif(shutil.which("gdaldem") is None, reason="gdaldem not on PATH")


def _gdaldem(mode: str, src: Path, dst: Path, *extra: str) -> np.ndarray:
    subprocess.run(["gdaldem", mode, str(src), str(dst), "-q", *extra], check=True)
    with rasterio.open(dst) as ds:
        out = ds.read(1).astype(np.float64)
        if ds.nodata is not None:
            out[out == ds.nodata] = np.nan
    return out


@needs_gdaldem
@pytest.mark.parametrize(
    ("mode", "extra"),
    [("slope", ("-s", str(GDALDEM_GEOGRAPHIC_SCALE))), ("TRI", ()), ("roughness", ())],
)
def test_matches_gdaldem_on_real_dem(shared_data: Path, tmp_path: Path, mode: str,
                                     extra: tuple[str, ...]) -> None:
    src = shared_data / "dem" / "china_dem_0.2deg.tif"
    with rasterio.open(src) as ds:
        z = ds.read(1).astype(np.float64)
        xres, yres = ds.res
    expected = _gdaldem(mode, src, tmp_path / f"{mode}.tif", *extra)
    if mode == "slope":
        mine = slope_degrees(z, xres, yres, GDALDEM_GEOGRAPHIC_SCALE)
    elif mode == "TRI":
        mine = tri_riley(z)
    else:
        mine = roughness(z)
    # Same no-data layout: the DEM is NaN outside land and gdaldem writes nodata there.
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(expected))
    ok = np.isfinite(expected)
    assert ok.sum() > 50_000
    # gdaldem writes float32; we compute in float64.
    np.testing.assert_allclose(mine[ok], expected[ok], rtol=2e-7, atol=1e-5)


@needs_gdaldem
def test_tri_default_is_riley_not_wilson(tmp_path: Path) -> None:
    # A synthetic projected DEM where the two TRI definitions differ.
    rng = np.random.default_rng(1)
    z = rng.normal(100, 30, size=(20, 25)).astype(np.float32)
    src = tmp_path / "dem.tif"
    with rasterio.open(src, "w", driver="GTiff", width=25, height=20, count=1, dtype="float32",
                       crs="EPSG:32650", transform=from_origin(500000, 4000000, 30, 30)) as ds:
        ds.write(z, 1)
    expected = _gdaldem("TRI", src, tmp_path / "tri.tif")
    ok = np.isfinite(expected)
    np.testing.assert_allclose(tri_riley(z)[ok], expected[ok], rtol=1e-6)
    slope = _gdaldem("slope", src, tmp_path / "slope.tif")
    np.testing.assert_allclose(slope_degrees(z, 30, 30)[ok], slope[ok], rtol=1e-5, atol=1e-5)


def test_plane_slope_is_exact() -> None:
    # z rises 1 m per 1 m eastward: 45 degrees, TRI and roughness known in closed form.
    x = np.arange(10, dtype=np.float64)
    z = np.tile(x * 30.0, (8, 1))
    assert np.nanmax(np.abs(slope_degrees(z, 30, 30) - 45.0)) < 1e-9
    inner = tri_riley(z)[1:-1, 1:-1]
    np.testing.assert_allclose(inner, math.sqrt(6 * 30.0**2))
    np.testing.assert_allclose(roughness(z)[1:-1, 1:-1], 60.0)
    assert np.isnan(slope_degrees(z, 30, 30)[0]).all()


def test_read_window_and_features(shared_data: Path) -> None:
    src = shared_data / "dem" / "china_dem_0.2deg.tif"
    # A 0.05 degree block near Chengdu: inside one 0.2 degree DEM pixel, read with its margin.
    win = read_dem_window(src, (104.0, 30.6, 104.05, 30.65))
    assert win.elevation.shape == (3, 3)
    assert win.geographic and win.margin == 1
    with rasterio.open(src) as ds:
        r, c = ds.index(104.025, 30.625)
        full = ds.read(1).astype(np.float64)
    np.testing.assert_array_equal(win.elevation, full[r - 1 : r + 2, c - 1 : c + 2])
    t = terrain_features(win)
    assert t.elevation == full[r, c]
    assert t.slope == pytest.approx(
        slope_degrees(full, win.xres, win.yres, GDALDEM_GEOGRAPHIC_SCALE)[r, c])
    assert t.tri == pytest.approx(tri_riley(full)[r, c])
    assert t.roughness == roughness(full)[r, c]
    # A 1 degree block covers pixels partly inside it (rounded outward), plus the margin.
    big = read_dem_window(src, (100.0, 30.0, 101.0, 31.0))
    r0, c0 = ds.index(100.0 + 1e-9, 31.0 - 1e-9)
    r1, c1 = ds.index(101.0 - 1e-9, 30.0 + 1e-9)
    np.testing.assert_array_equal(big.elevation, full[r0 - 1 : r1 + 2, c0 - 1 : c1 + 2])
    tb = terrain_features(big)
    assert tb.elevation == float(np.median(full[r0 : r1 + 1, c0 : c1 + 1]))
    slope = slope_degrees(full, win.xres, win.yres, GDALDEM_GEOGRAPHIC_SCALE)
    assert tb.slope == pytest.approx(float(np.median(slope[r0 : r1 + 1, c0 : c1 + 1])))


def test_latitude_scaling_steepens_geographic_slope() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(1000, 50, size=(6, 6))
    base = dict(elevation=z, xres=0.01, yres=0.01, geographic=True)
    flat = terrain_features(DemWindow(center_lat=60.0, **base))  # type: ignore[arg-type]
    scaled = terrain_features(DemWindow(center_lat=60.0, **base),  # type: ignore[arg-type]
                              geographic_scale="latitude")
    assert scaled.slope > flat.slope
    assert scaled.tri == flat.tri and scaled.elevation == flat.elevation


def test_nan_in_window_raises_by_default() -> None:
    z = np.full((5, 5), 100.0)
    z[0, 0] = np.nan
    win = DemWindow(elevation=z, xres=30, yres=30, geographic=False, center_lat=0)
    with pytest.raises(ValueError, match="1 no-data cell"):
        terrain_features(win)


def test_nan_omit_uses_full_windows_only() -> None:
    z = np.tile(np.arange(6, dtype=np.float64) * 30, (6, 1))
    z[0, 0] = np.nan
    win = DemWindow(elevation=z, xres=30, yres=30, geographic=False, center_lat=0)
    t = terrain_features(win, nan_policy="omit")
    # Block pixel (1,1) lost its full window; the other 15 still see a 45-degree plane.
    assert t.valid_fraction == 15 / 16
    assert t.slope == pytest.approx(45.0)
    all_nan = DemWindow(elevation=np.full((4, 4), np.nan), xres=30, yres=30, geographic=False,
                        center_lat=0)
    t2 = terrain_features(all_nan, nan_policy="omit")
    assert math.isnan(t2.elevation) and math.isnan(t2.slope) and t2.valid_fraction == 0


def test_ocean_block_of_real_dem_raises(shared_data: Path) -> None:
    src = shared_data / "dem" / "china_dem_0.2deg.tif"
    win = read_dem_window(src, (125.0, 30.0, 125.05, 30.05))  # East China Sea
    with pytest.raises(ValueError, match="no-data"):
        terrain_features(win)


def test_window_outside_raster_is_an_error(shared_data: Path) -> None:
    src = shared_data / "dem" / "china_dem_0.2deg.tif"
    with pytest.raises(ValueError, match="do not overlap"):
        read_dem_window(src, (0.0, 0.0, 0.05, 0.05))
    with pytest.raises(ValueError, match="bounds"):
        read_dem_window(src, (104.1, 30.6, 104.05, 30.65))
