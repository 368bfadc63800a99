"""Property tests for the block grid and XYZ tile ranges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.geo.grid import (
    BlockId,
    Grid,
    block_raster,
    lonlat_to_tile_fraction,
    tile_bounds_lonlat,
    tile_bounds_mercator,
    tile_range,
)

GRID = Grid()
lons = st.floats(-180, 180, allow_nan=False)
lats = st.floats(-90, 90, allow_nan=False)
china_rows = st.integers(2150, 2870)  # ~17.5N .. 53.5N
china_cols = st.integers(5850, 6720)  # ~72.5E .. 156E


@given(lons, lats)
def test_point_lies_in_its_block(lon, lat):
    b = GRID.block_at(lon, lat)
    w, s, e, n = GRID.bounds(b)
    assert w <= lon <= e and s <= lat <= n
    # Half-open cells: a point on the east/north edge belongs to the next block, unless at 180/90.
    if lon < 180:
        assert lon < e
    if lat < 90:
        assert lat < n


@given(st.integers(0, 180 * 20 - 1), st.integers(0, 360 * 20 - 1))
def test_block_corners_map_back_to_the_block(row, col):
    b = BlockId(row, col)
    w, s, e, n = GRID.bounds(b)
    assert GRID.block_at(w, s) == b  # the south-west corner is inside (half-open)
    assert GRID.block_at((w + e) / 2, (s + n) / 2) == b
    if col + 1 < GRID.n_cols:
        assert GRID.block_at(e, s) == BlockId(row, col + 1)
    if row + 1 < GRID.n_rows:
        assert GRID.block_at(w, n) == BlockId(row + 1, col)
    assert BlockId.parse(str(b)) == b
    assert math.isclose(e - w, 0.05, abs_tol=1e-9) and math.isclose(n - s, 0.05, abs_tol=1e-9)


def test_edges_and_rejections():
    assert GRID.block_at(180, 90) == BlockId(GRID.n_rows - 1, GRID.n_cols - 1)
    assert GRID.block_at(-180, -90) == BlockId(0, 0)
    assert GRID.block_at(0.05, 0.0) == BlockId(1800, 3601)  # exact decimal edge, no float slip
    for bad in [(181, 0), (0, -91), (float("nan"), 0)]:
        with pytest.raises(ValueError):
            GRID.block_at(*bad)
    with pytest.raises(ValueError):
        GRID.bounds(BlockId(GRID.n_rows, 0))
    with pytest.raises(ValueError):
        BlockId.parse("X12")


@settings(max_examples=200)
@given(china_rows, china_cols, st.integers(10, 18))
def test_tile_range_covers_block_exactly(row, col, zoom):
    bounds = GRID.bounds(BlockId(row, col))
    w, s, e, n = bounds
    tr = tile_range(bounds, zoom)
    tw, _, _, tn = tile_bounds_lonlat(tr.x_min, tr.y_min, zoom)
    _, ts, te, _ = tile_bounds_lonlat(tr.x_max, tr.y_max, zoom)
    eps = 1e-9
    assert tw <= w + eps and te >= e - eps and ts <= s + eps and tn >= n - eps  # covers
    # ...and exactly: dropping an edge row/column of tiles would leave part of the block out.
    assert tile_bounds_lonlat(tr.x_min, tr.y_min, zoom)[2] > w
    assert tile_bounds_lonlat(tr.x_max, tr.y_max, zoom)[0] < e
    assert tile_bounds_lonlat(tr.x_min, tr.y_min, zoom)[1] < n
    assert tile_bounds_lonlat(tr.x_max, tr.y_max, zoom)[3] > s
    assert tr.count == len(tr.tiles()) == len(set(tr.tiles()))


@given(china_rows, china_cols)
def test_block_raster_has_native_pixel_size(row, col):
    bounds = GRID.bounds(BlockId(row, col))
    r = block_raster(bounds, 16)
    a, b, c, d, e, f = r.transform()
    assert (b, d) == (0.0, 0.0) and c == bounds[0] and f == bounds[3]
    assert math.isclose(c + a * r.width, bounds[2]) and math.isclose(f + e * r.height, bounds[1])
    # Pixels cover about as much ground as a z16 tile pixel in both directions.
    lat = (bounds[1] + bounds[3]) / 2
    fx0, fy0 = lonlat_to_tile_fraction(bounds[0], bounds[3], 16)
    fx1, fy1 = lonlat_to_tile_fraction(bounds[2], bounds[1], 16)
    assert abs(r.width - (fx1 - fx0) * 256) <= 1
    assert abs(r.height - (fy1 - fy0) * 256) <= 0.01 * r.height + 1, lat


@given(st.integers(0, 20), st.data())
def test_mercator_and_lonlat_tile_bounds_agree(zoom, data):
    n = 2**zoom
    x = data.draw(st.integers(0, n - 1))
    y = data.draw(st.integers(0, n - 1))
    w, s, e, nn = tile_bounds_lonlat(x, y, zoom)
    left, bottom, right, top = tile_bounds_mercator(x, y, zoom)
    r = 6378137.0
    assert math.isclose(left, math.radians(w) * r, abs_tol=1e-3)
    assert math.isclose(top, r * math.asinh(math.tan(math.radians(nn))), abs_tol=1e-3)
    assert math.isclose(right - left, top - bottom)
