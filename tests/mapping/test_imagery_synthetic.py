"""Synthetic landscapes, looks, truth masks and DEM; PNG tile rendering of block GeoTIFFs."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import rasterio
from PIL import Image

from mapping.geo.grid import BlockRaster, Grid, block_raster, tile_range
from mapping.geo.raster import read_block_image, render_xyz_tile, write_block_image
from mapping.imagery.dem import elevation, write_synthetic_dem
from mapping.imagery.registry import build_source
from mapping.imagery.synthetic import (
    PADDY,
    TERRACE,
    WOODLAND,
    block_scenario,
    generate_landscape,
    truth_mask,
    truth_path_for,
)

GRID = Grid()
BLOCK = GRID.block_at(104.52, 29.63)  # hilly Sichuan: terraces, paddies, woodland
SMALL = lambda b: BlockRaster(*GRID.bounds(b), 384, 384)  # noqa: E731


def planting_source(look, **kw):
    shares = {"planting": 1.0}
    return build_source(
        "synthetic",
        {"slug": look, "look": look, "seed": 7, "scenario_shares": shares, **kw},
        secrets={},
    )


def test_deterministic_and_two_looks_differ(tmp_path):
    r = SMALL(BLOCK)
    a1 = planting_source("mapbox").fetch_block(BLOCK, r, tmp_path / "a1.tif")
    a2 = planting_source("mapbox").fetch_block(BLOCK, r, tmp_path / "a2.tif")
    g = planting_source("google", write_truth=True).fetch_block(BLOCK, r, tmp_path / "g.tif")
    assert a1.status == a2.status == g.status == "ok"
    assert a1.sha256 == a2.sha256 != g.sha256
    ia, ig = read_block_image(a1.path).rgb.astype(float), read_block_image(g.path).rgb.astype(float)
    assert ia.shape == (3, 384, 384)
    # Same land, different look: correlated but not equal; Google is softer (less gradient).
    corr = np.corrcoef(ia.mean(0).ravel(), ig.mean(0).ravel())[0, 1]
    assert 0.5 < corr < 0.995
    grad = lambda im: np.abs(np.diff(im.mean(0), axis=1)).mean()  # noqa: E731
    assert grad(ig) < grad(ia)
    with rasterio.open(truth_path_for(g.path)) as ds:
        t = ds.read(1)
        assert ds.transform == rasterio.open(g.path).transform
    assert np.array_equal(t, truth_mask(BLOCK, r, seed=7))


def test_landscape_has_cropland_and_not_and_follows_terrain():
    r = block_raster(GRID.bounds(BLOCK), 14)
    land = generate_landscape(r, seed=7)
    t = land.truth
    assert set(np.unique(t)) == {0, 1} and 0.3 < t.mean() < 0.95
    counts = Counter(land.cls.ravel().tolist())
    assert counts[TERRACE] > 0 and counts[PADDY] > 0 and counts[WOODLAND] > 0
    # Terraces sit on slopes, paddies on flat ground: the same terrain as the DEM.
    assert np.median(land.slope[land.cls == TERRACE]) > 5 > np.median(land.slope[land.cls == PADDY])


def test_neighbouring_blocks_join_up():
    b2 = type(BLOCK)(BLOCK.row, BLOCK.col + 1)
    r1, r2 = SMALL(BLOCK), SMALL(b2)
    wide = BlockRaster(r1.west, r1.south, r2.east, r1.north, 768, 384)
    l1, l2, lw = (generate_landscape(r, seed=7) for r in (r1, r2, wide))
    both = np.concatenate([l1.cls, l2.cls], axis=1)
    assert (both == lw.cls).mean() > 0.97


def test_dem_matches_landscape_terrain(tmp_path):
    w, s, e, n = GRID.bounds(BLOCK)
    write_synthetic_dem(tmp_path / "dem.tif", (w, s, e, n), 0.0005, seed=7)
    with rasterio.open(tmp_path / "dem.tif") as ds:
        dem = ds.read(1)
        assert ds.crs.to_epsg() == 4326 and dem.shape == (100, 100) and dem.dtype == np.float32
        lon = w + (np.arange(100) + 0.5) * 0.0005
        lat = n - (np.arange(100) + 0.5) * 0.0005
    assert np.allclose(dem, elevation(lon[None, :], lat[:, None], 7), atol=0.01)
    land = generate_landscape(BlockRaster(w, s, e, n, 100, 100), seed=7)
    assert np.abs(land.elev - dem).max() < 3.0  # same function, coarse-grid interpolation
    assert dem.max() - dem.min() > 30  # a hilly block


def test_scenarios_follow_shares_and_nodata_blocks(tmp_path):
    blocks = [GRID.block_at(100 + i * 0.05, 30 + j * 0.05) for i in range(40) for j in range(25)]
    got = Counter(block_scenario(b, seed=1, look="google") for b in blocks)
    assert abs(got["snow"] / 1000 - 0.134) < 0.04 and abs(got["planting"] / 1000 - 0.413) < 0.05
    mb = Counter(block_scenario(b, seed=1, look="mapbox") for b in blocks)
    assert mb["cloudy"] > got["cloudy"]
    src = build_source(
        "synthetic",
        {"slug": "s", "look": "google", "seed": 1, "scenario_shares": {"nodata": 1}},
        secrets={},
    )
    statuses = Counter()
    for b in blocks[:12]:
        res = src.fetch_block(b, BlockRaster(*GRID.bounds(b), 64, 64), tmp_path / f"{b}.tif")
        statuses[res.status] += 1
        if res.status == "ok":
            assert 0 < res.valid_fraction < 0.75
    assert statuses["ok"] > 0


def test_render_xyz_tile_from_block(tmp_path):
    r = BlockRaster(*GRID.bounds(BLOCK), 300, 300)
    rgb = np.zeros((3, 300, 300), np.uint8)
    rgb[0], rgb[1], rgb[2] = 200, 100, 50
    valid = np.ones((300, 300), bool)
    valid[:, :150] = False  # western half has no data
    write_block_image(tmp_path / "b.tif", rgb, valid, r)
    tr = tile_range(GRID.bounds(BLOCK), 16)
    inside_east = render_xyz_tile(tmp_path / "b.tif", 16, tr.x_max - 1, (tr.y_min + tr.y_max) // 2)
    im = np.asarray(Image.open(io.BytesIO(inside_east)))
    assert im.shape == (256, 256, 4)
    assert (im[..., 3] == 255).all() and (
        np.abs(im[..., :3].astype(int) - (200, 100, 50)) <= 1
    ).all()
    west = np.asarray(
        Image.open(io.BytesIO(render_xyz_tile(tmp_path / "b.tif", 16, tr.x_min + 1, tr.y_min + 2)))
    )
    assert (west[..., 3] == 0).all()
    edge = np.asarray(
        Image.open(io.BytesIO(render_xyz_tile(tmp_path / "b.tif", 16, tr.x_max, tr.y_min)))
    )
    assert 0 < (edge[..., 3] > 0).mean() < 1  # the block's corner: part opaque, part clear
    assert render_xyz_tile(tmp_path / "b.tif", 16, tr.x_max + 5, tr.y_min) is None
