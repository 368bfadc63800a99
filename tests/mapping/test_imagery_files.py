"""GeoTIFF/COG and MBTiles sources, on small files made by the tests."""

from __future__ import annotations

import io
import math
import sqlite3

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import Affine, from_origin
from rasterio.warp import transform as warp_transform

from mapping.geo.grid import Grid, block_raster, lonlat_to_tile_fraction, tile_range
from mapping.imagery.mbtiles import tms_row
from mapping.imagery.registry import build_source
from tests.mapping.tileserver import tile_colour

GRID = Grid()
BLOCK = GRID.block_at(114.31, 30.52)  # Wuhan
BOUNDS = GRID.bounds(BLOCK)
RASTER = block_raster(BOUNDS, 14)


def write_utm(path, colour_w, colour_e, *, west_fraction=1.0, dtype="uint8", scale=1):
    """A UTM 50N raster over the block's western ``west_fraction``: two colours split at the
    block's centre longitude."""
    w, s, e, n = BOUNDS
    east = w + (e - w) * west_fraction
    xs, ys = warp_transform(
        "EPSG:4326",
        "EPSG:32650",
        [w - 0.01, east, w - 0.01, east],
        [s - 0.01, s - 0.01, n + 0.01, n + 0.01],
    )
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    res = 10.0
    width, height = int((x1 - x0) / res), int((y1 - y0) / res)
    tf = from_origin(x0, y1, res, res)
    cols = np.arange(width)
    lon, _ = warp_transform(
        "EPSG:32650", "EPSG:4326", list(x0 + (cols + 0.5) * res), [(y0 + y1) / 2] * width
    )
    east_side = np.array(lon) >= (w + e) / 2
    data = np.empty((3, height, width), dtype)
    for b in range(3):
        data[b][:, ~east_side] = colour_w[b] * scale
        data[b][:, east_side] = colour_e[b] * scale
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=3,
        dtype=dtype,
        crs="EPSG:32650",
        transform=tf,
    ) as dst:
        dst.write(data)


def test_geotiff_warps_block_from_utm(tmp_path):
    write_utm(tmp_path / "a.tif", (200, 10, 10), (10, 200, 10))
    src = build_source("geotiff", {"slug": "local", "paths": [str(tmp_path)]}, secrets={})
    res = src.fetch_block(BLOCK, RASTER, tmp_path / "out" / "b.tif")
    assert res.status == "ok", res.reason
    with rasterio.open(res.path) as ds:
        img = ds.read()
        assert ds.crs.to_epsg() == 4326 and ds.transform.almost_equals(Affine(*RASTER.transform()))
    h, w = img.shape[1:]
    assert tuple(img[:, h // 2, w // 4]) == (200, 10, 10)
    assert tuple(img[:, h // 2, 3 * w // 4]) == (10, 200, 10)


def test_geotiff_partial_cover_mosaic_and_missing(tmp_path):
    d = tmp_path / "rasters"
    d.mkdir()
    write_utm(d / "1_west.tif", (50, 60, 70), (50, 60, 70), west_fraction=0.4)
    cfg = {"slug": "local", "paths": [str(d)]}
    res = build_source("geotiff", cfg, secrets={}).fetch_block(BLOCK, RASTER, tmp_path / "p.tif")
    assert res.status == "ok" and 0.35 < res.valid_fraction < 0.45
    assert "no data" in res.reason
    # A second, 16-bit file covering everything fills the rest (first file wins where both).
    write_utm(d / "2_all.tif", (100, 100, 100), (100, 100, 100), dtype="uint16", scale=10)
    cfg16 = {**cfg, "value_range": (0, 2550)}
    res = build_source("geotiff", cfg16, secrets={}).fetch_block(BLOCK, RASTER, tmp_path / "q.tif")
    assert res.status == "ok" and res.valid_fraction == 1.0
    with rasterio.open(res.path) as ds:
        img = ds.read()
    assert tuple(img[:, 5, 5]) == (50, 60, 70) and tuple(img[:, 5, -5]) == (100, 100, 100)
    # Without value_range the 16-bit file cannot be shown: reported, not raised.
    (d / "1_west.tif").unlink()
    res = build_source("geotiff", cfg, secrets={}).fetch_block(BLOCK, RASTER, tmp_path / "r.tif")
    assert res.status == "failed" and "value_range" in res.reason
    far = GRID.block_at(10.0, 50.0)
    res = build_source("geotiff", cfg16, secrets={}).fetch_block(
        far, block_raster(GRID.bounds(far), 12), tmp_path / "far.tif"
    )
    assert res.status == "missing" and not (tmp_path / "far.tif").exists()


def make_mbtiles(path, z, tiles, corrupt=()):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE metadata (name text, value text)")
    con.execute(
        "CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, "
        "tile_data blob)"
    )
    con.executemany("INSERT INTO metadata VALUES (?, ?)", [("name", "t"), ("format", "png")])
    for x, y in tiles:
        if (x, y) in corrupt:
            data = b"\x89PNG\r\n\x1a\nbroken"
        else:
            buf = io.BytesIO()
            Image.new("RGB", (256, 256), tile_colour(x, y)).save(buf, "PNG")
            data = buf.getvalue()
        con.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, tms_row(y, z), data))
    con.commit()
    con.close()


def test_mbtiles_flips_tms_rows_and_mosaics(tmp_path):
    z = 14
    tr = tile_range(BOUNDS, z)
    make_mbtiles(tmp_path / "t.mbtiles", z, tr.tiles())
    src = build_source(
        "mbtiles", {"slug": "mb", "path": str(tmp_path / "t.mbtiles"), "zoom": z}, secrets={}
    )
    res = src.fetch_block(BLOCK, RASTER, tmp_path / "m.tif")
    assert res.status == "ok" and res.tiles_ok == tr.count and res.valid_fraction == 1.0
    with rasterio.open(res.path) as ds:
        img = ds.read()
    dx, dy = RASTER.pixel_deg
    checked = 0
    for row in range(3, RASTER.height, 29):
        for col in range(3, RASTER.width, 31):
            fx, fy = lonlat_to_tile_fraction(
                RASTER.west + (col + 0.5) * dx, RASTER.north - (row + 0.5) * dy, z
            )
            if min(fx % 1, 1 - fx % 1, fy % 1, 1 - fy % 1) < 0.02:
                continue
            assert tuple(img[:, row, col]) == tile_colour(math.floor(fx), math.floor(fy))
            checked += 1
    assert checked > 100


def test_mbtiles_missing_and_corrupt(tmp_path):
    z = 14
    tr = tile_range(BOUNDS, z)
    make_mbtiles(tmp_path / "empty.mbtiles", z, [])
    cfg = {"slug": "mb", "path": str(tmp_path / "empty.mbtiles"), "zoom": z}
    res = build_source("mbtiles", cfg, secrets={}).fetch_block(BLOCK, RASTER, tmp_path / "e.tif")
    assert res.status == "missing"
    make_mbtiles(tmp_path / "bad.mbtiles", z, tr.tiles(), corrupt={(tr.x_min, tr.y_min)})
    cfg["path"] = str(tmp_path / "bad.mbtiles")
    res = build_source("mbtiles", cfg, secrets={}).fetch_block(BLOCK, RASTER, tmp_path / "c.tif")
    assert res.status == "failed" and res.reason.startswith("corrupt image for 1 of")
    cfg["path"] = str(tmp_path / "nope.mbtiles")
    res = build_source("mbtiles", cfg, secrets={}).fetch_block(BLOCK, RASTER, tmp_path / "n.tif")
    assert res.status == "failed" and res.reason.startswith("cannot open MBTiles")


@pytest.mark.parametrize("kind", ["geotiff", "mbtiles"])
def test_file_configs_forbid_unknown_keys(kind):
    with pytest.raises(ValueError):
        build_source(kind, {"slug": "x", "path": "a", "paths": ["a"], "bogus": 1}, secrets={})
