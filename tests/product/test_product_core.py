"""The product's pure core: final masks per decision, the province COG, polygons and areas,
county shapefiles (names, UTF-8, Chinese attributes), the GeoPackage and the tar.gz."""

from __future__ import annotations

import math
import tarfile
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from pyproj import Geod
from shapely.geometry import box

from learning.product.core.decision import area_fraction, final_block_mask
from learning.product.core.export import (
    County,
    CroplandPolygon,
    latin_slug,
    shapefile_stems,
    tar_gz,
    write_county_shapefile,
    write_geopackage,
)
from learning.product.core.raster import (
    cog_check,
    mosaic_grid,
    write_af_geotiff,
    write_af_png,
    write_mask_cog,
)
from learning.product.core.vector import equal_area_m2, mask_polygons
from mapping.geo.grid import BlockId, block_raster, grid_for
from mapping.geo.raster import affine_of

A = np.array([[1, 1, 0], [0, 255, 0], [255, 0, 0]], dtype=np.uint8)
B = np.array([[0, 1, 1], [0, 255, 1], [1, 0, 255]], dtype=np.uint8)


def test_final_mask_follows_each_decision_by_hand():
    assert final_block_mask(decision="only_mapbox", mapbox=A, google=B).tolist() == A.tolist()
    assert final_block_mask(decision="only_google", mapbox=A, google=B).tolist() == B.tolist()
    # Union; (1,1) is ignored in both -> 255; (2,0) ignored in Mapbox takes Google's 1.
    assert final_block_mask(decision="merge_both", mapbox=A, google=B).tolist() == [
        [1, 1, 1],
        [0, 255, 1],
        [1, 0, 0],
    ]
    assert final_block_mask(decision="neither", mapbox=A, google=B).tolist() == [
        [0, 0, 0],
        [0, 255, 0],
        [0, 0, 0],
    ]
    # A decision reads only the masks it needs.
    assert final_block_mask(decision="only_google", mapbox=None, google=B).tolist() == B.tolist()
    assert final_block_mask(
        decision="neither", mapbox=None, google=None, shape=(2, 2)
    ).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="needs the mapbox mask"):
        final_block_mask(decision="merge_both", mapbox=None, google=B)
    with pytest.raises(ValueError, match="unknown integration decision"):
        final_block_mask(decision="both", mapbox=A, google=B)
    assert area_fraction(A) == pytest.approx(2 / 7)
    assert math.isnan(area_fraction(np.full((2, 2), 255, np.uint8)))


def _blocks(zoom: int, ids: list[BlockId]):
    grid = grid_for(0.05)
    return [(grid.bounds(b), block_raster(grid.bounds(b), zoom)) for b in ids]


def test_province_cog_is_a_valid_cog_with_overviews_and_block_values(tmp_path: Path):
    zoom = 14  # ~600 px blocks keep the test fast; the layout is the same at zoom 16
    ids = [BlockId(2400, 5700), BlockId(2400, 5701), BlockId(2401, 5701)]
    blocks = _blocks(zoom, ids)
    grid = mosaic_grid([b for b, _ in blocks], block_deg=0.05, zoom=zoom)
    assert (grid.n_block_rows, grid.n_block_cols) == (2, 2)
    masks = []
    for i, (_b, r) in enumerate(blocks):
        m = np.zeros((r.height, r.width), np.uint8)
        m[: r.height // 2, : r.width // (i + 2)] = 1
        masks.append(m)
    seen = []
    dest = tmp_path / "p" / "cropland.tif"
    info = write_mask_cog(
        dest,
        grid,
        zip([b for b, _ in blocks], masks, strict=True),
        total=3,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    rep = cog_check(dest)
    assert rep.is_cog, rep.problems
    assert rep.compression == "deflate" and rep.blocksize == (512, 512)
    assert rep.overviews and rep.overviews[0] == 2
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cropland.tif"]  # no staging left
    with rasterio.open(dest) as ds:
        assert ds.crs.to_epsg() == 4326 and ds.nodata == 255
        assert (ds.width, ds.height) == (2 * grid.block_w, 2 * grid.block_h)
        px_m = ds.res[0] * 111_320 * math.cos(math.radians(30.0))
        assert 8.1 < px_m < 8.4  # zoom 14 at 30°N ≈ 8.27 m (zoom 16: ≈ 2.07 m)
        arr = ds.read(1)
    total_crop = sum(int((m == 1).sum()) for m in masks)
    assert int((arr == 1).sum()) == total_crop == info.cropland_pixels
    # The block missing at the top-left (row 2401, col 5700) is no data, not "not cropland".
    assert (arr[: grid.block_h, : grid.block_w] == 255).all()
    # Block (2400, 5700) is bottom-left; its top-left quarter-ish is cropland.
    bl = arr[grid.block_h :, : grid.block_w]
    assert bl[0, 0] == 1 and bl[-1, -1] == 0
    # A plain GeoTIFF is not a COG.
    plain = tmp_path / "plain.tif"
    with rasterio.open(
        plain,
        "w",
        driver="GTiff",
        width=1200,
        height=1200,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=grid.transform,
    ) as ds:
        ds.write(np.zeros((1200, 1200), np.uint8), 1)
    bad = cog_check(plain)
    assert not bad.is_cog and any("LAYOUT=COG" in p for p in bad.problems)
    assert "no overviews" in bad.problems


def test_cog_write_failure_leaves_nothing(tmp_path: Path):
    blocks = _blocks(14, [BlockId(2400, 5700), BlockId(2400, 5701)])
    grid = mosaic_grid([b for b, _ in blocks], block_deg=0.05, zoom=14)

    def items():
        b, r = blocks[0]
        yield b, np.ones((r.height, r.width), np.uint8)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_mask_cog(tmp_path / "c.tif", grid, items())
    assert list(tmp_path.iterdir()) == []


def test_polygons_and_equal_area_against_geodesic_area():
    bounds = grid_for(0.05).bounds(BlockId(2400, 5700))  # 30.0-30.05 N, 105.0-105.05 E
    r = block_raster(bounds, 14)
    mask = np.zeros((r.height, r.width), np.uint8)
    mask[:10, :20] = 1
    mask[50:60, 50:55] = 1
    mask[100, 100] = 255
    polys = mask_polygons(mask, affine_of(r))
    assert len(polys) == 2 and all(p.is_valid for p in polys)
    areas = sorted(equal_area_m2(polys))
    geod = Geod(ellps="WGS84")
    oracle = sorted(abs(geod.geometry_area_perimeter(p)[0]) for p in polys)
    assert areas == pytest.approx(oracle, rel=1e-6)
    # A whole 0.05° block at 30°N is about 5.57 km x 4.83 km.
    cell = equal_area_m2([box(*bounds)])[0]
    assert cell == pytest.approx(abs(geod.geometry_area_perimeter(box(*bounds))[0]), rel=1e-7)
    assert 26.5e6 < cell < 27.2e6
    assert mask_polygons(np.zeros((4, 4), np.uint8), affine_of(r)) == []


def _county(adcode, zh, en, city_zh, city_en):
    return County(adcode=adcode, name_zh=zh, name_en=en, city_zh=city_zh, city_en=city_en)


def test_shapefile_names_encoding_and_chinese_attributes_read_back(tmp_path: Path):
    c1 = _county(410102, "中原区", "Zhongyuan Qu", "郑州市", "Zhengzhou Shi")
    c2 = _county(410103, "二七区", "", "郑州市", "Zhengzhou Shi")  # pinyin from the Chinese name
    c3 = _county(410104, "中原区", "Zhongyuan Qu", "郑州市", "Zhengzhou Shi")  # a clash
    stems = shapefile_stems([c1, c2, c3])
    assert stems == {
        410102: "cf_zhengzhoushi_zhongyuanqu_410102",
        410103: "cf_zhengzhoushi_erqiqu",
        410104: "cf_zhengzhoushi_zhongyuanqu_410104",
    }
    assert latin_slug("Xi'an Shi", "西安市") == "xianshi"
    poly = box(113.6, 34.7, 113.61, 34.71)
    area = float(equal_area_m2([poly])[0])
    rec = CroplandPolygon(
        geometry=poly,
        area_m2=area,
        block_id="R2494C5872",
        decision="merge_both",
        model_version="seg-r3",
        round_number=3,
    )
    folder = tmp_path / "shp"
    files = write_county_shapefile(folder, stems[410102], c1, [rec])
    files += write_county_shapefile(folder, stems[410103], c2, [])
    assert all(f.exists() for f in files)
    assert (folder / "cf_zhengzhoushi_zhongyuanqu_410102.cpg").read_text().strip().upper() in (
        "UTF-8",
        "UTF8",
    )
    meta, _fids, geoms, fields = pyogrio.raw.read(folder / "cf_zhengzhoushi_zhongyuanqu_410102.shp")
    cols = dict(zip(meta["fields"], fields, strict=True))
    assert list(cols["county"]) == ["中原区"] and list(cols["city"]) == ["郑州市"]
    assert list(cols["block_id"]) == ["R2494C5872"] and list(cols["decision"]) == ["merge_both"]
    assert list(cols["model_ver"]) == ["seg-r3"] and list(cols["round"]) == [3]
    assert cols["area_m2"][0] == pytest.approx(area, rel=1e-9)
    assert 1.0e6 < area < 1.2e6  # 0.01° x 0.01° at 34.7°N ≈ 1.11 km x 0.915 km
    assert meta["crs"] == "EPSG:4326" and len(geoms) == 1
    empty = pyogrio.read_info(folder / "cf_zhengzhoushi_erqiqu.shp")
    assert empty["features"] == 0

    gpkg = tmp_path / "p.gpkg"
    assert write_geopackage(gpkg, [(c1, [rec, rec]), (c2, [])], layer="cropland") == 2
    meta, _f, _g, fields = pyogrio.raw.read(gpkg, layer="cropland")
    assert list(dict(zip(meta["fields"], fields, strict=True))["county"]) == ["中原区", "中原区"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    dest = tmp_path / "out" / "cf_410000.tar.gz"
    names = tar_gz(dest, files, arcdir="cf_henan")
    with tarfile.open(dest) as tar:
        assert tar.getnames() == names
        assert "cf_henan/cf_zhengzhoushi_zhongyuanqu_410102.shp" in names
        assert "cf_henan/cf_zhengzhoushi_erqiqu.cpg" in names
        assert len(names) == 10


def test_area_fraction_geotiff_and_png(tmp_path: Path):
    fr = {(2400, 5700): 0.25, (2401, 5702): 1.0}
    tif = tmp_path / "af.tif"
    assert write_af_geotiff(tif, fr, block_deg=0.05) == (3, 2)
    with rasterio.open(tif) as ds:
        arr = ds.read(1)
        assert ds.transform.a == pytest.approx(0.05)
        w, s, e, n = ds.bounds
        assert (w, s, e, n) == pytest.approx((105.0, 30.0, 105.15, 30.1))
    assert arr[1, 0] == 0.25 and arr[0, 2] == 1.0 and np.isnan(arr[0, 0])
    png = tmp_path / "af.png"
    write_af_png(png, tif, title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_real_labels_merge_back_and_mosaic_into_a_cog(shared_data: Path, tmp_path: Path):
    """Real GID-15 cropland labels (1 / 0 / 255) as block masks: a label split between two
    "sources", each with the other half ignored (as under cloud), merges back to the label
    exactly; four labels mosaic into a valid COG whose cropland pixels and polygon areas add up."""
    import cv2
    from PIL import Image

    folder = shared_data / "real" / "gid15" / "masks_cropland"
    paths = (
        sorted(folder.glob("gid15_paddy_field_*.png"))[:2]
        + sorted(folder.glob("gid15_irrigated_land_*.png"))[:2]
    )
    labels = [np.array(Image.open(p)) for p in paths]
    assert len(labels) == 4
    for truth in labels:
        assert set(np.unique(truth)) <= {0, 1, 255} and (truth == 1).any()
        w = truth.shape[1]
        mapbox, google = truth.copy(), truth.copy()
        mapbox[:, w // 2 :] = 255
        google[:, : w // 2] = 255
        assert (
            final_block_mask(decision="merge_both", mapbox=mapbox, google=google) == truth
        ).all()
        only = final_block_mask(decision="only_mapbox", mapbox=mapbox, google=google)
        assert int((only == 1).sum()) == int((truth[:, : w // 2] == 1).sum())
        assert area_fraction(only) == pytest.approx(
            (truth[:, : w // 2] == 1).sum() / (truth[:, : w // 2] != 255).sum()
        )

    ids = [BlockId(2400, 5700), BlockId(2400, 5701), BlockId(2401, 5700), BlockId(2401, 5701)]
    blocks = _blocks(14, ids)
    grid = mosaic_grid([b for b, _ in blocks], block_deg=0.05, zoom=14)
    masks = [
        cv2.resize(lab, (r.width, r.height), interpolation=cv2.INTER_NEAREST)
        for lab, (_b, r) in zip(labels, blocks, strict=True)
    ]
    dest = tmp_path / "real.tif"
    info = write_mask_cog(dest, grid, zip([b for b, _ in blocks], masks, strict=True))
    assert cog_check(dest).is_cog
    with rasterio.open(dest) as ds:
        arr = ds.read(1)
    assert int((arr == 1).sum()) == info.cropland_pixels == sum(int((m == 1).sum()) for m in masks)
    assert int((arr == 255).sum()) == sum(int((m == 255).sum()) for m in masks)
    # Polygon areas (equal-area) = cropland pixels x the geodesic area of one pixel, per block.
    geod = Geod(ellps="WGS84")
    for m, (b, r) in zip(masks, blocks, strict=True):
        polys = mask_polygons(m, affine_of(r))
        px = abs(
            geod.geometry_area_perimeter(
                box(b[0], b[1], b[0] + (b[2] - b[0]) / r.width, b[1] + (b[3] - b[1]) / r.height)
            )[0]
        )
        assert float(equal_area_m2(polys).sum()) == pytest.approx(
            int((m == 1).sum()) * px, rel=2e-3
        )
