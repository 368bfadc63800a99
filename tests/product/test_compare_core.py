"""The pure comparison core on tiny hand-made arrays with exact expected values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pyproj import Transformer
from rasterio.transform import from_origin

from learning.product.core.compare.classes import ClassMapping
from learning.product.core.compare.grids import (
    RasterFileError,
    inspect_raster,
    open_raster,
    read_on_grid,
)
from learning.product.core.compare.metrics import (
    area_fraction,
    boundary_fraction,
    confusion,
    edge_counts,
    edge_density,
    relative_deviation,
)
from learning.product.core.compare.report import (
    BlockResult,
    ProvinceInput,
    build_report,
    province_rows,
    slope_histogram,
)
from mapping.geo.grid import BlockRaster

B = np.array


def test_edge_density_single_pixel_exact() -> None:
    # One cropland pixel in a 3x3 of 2 m pixels: 4 edges of 2 m over 36 m² (0.0036 ha).
    m = np.zeros((3, 3), bool)
    m[1, 1] = True
    assert edge_counts(m) == (2, 2)
    assert edge_density(m, 2.0, 2.0) == pytest.approx(8 / 0.0036, rel=1e-12)  # 2222.2 m/ha


def test_edge_density_uses_dx_for_east_west_edges_and_dy_for_north_south() -> None:
    # Pixels 3 m wide (dx) and 2 m high (dy); 6 pixels = 36 m² = 0.0036 ha.
    left = B([[1, 1, 0], [1, 1, 0]], bool)  # 2 side-by-side pairs differ: 2 edges of dy = 2 m
    assert edge_counts(left) == (0, 2)
    assert edge_density(left, 3.0, 2.0) == pytest.approx(4 / 0.0036, rel=1e-12)
    top = B([[1, 1, 1], [0, 0, 0]], bool)  # 3 stacked pairs differ: 3 edges of dx = 3 m
    assert edge_counts(top) == (3, 0)
    assert edge_density(top, 3.0, 2.0) == pytest.approx(9 / 0.0036, rel=1e-12)


def test_edge_density_ignores_block_border_and_no_data() -> None:
    assert edge_density(np.ones((4, 4), bool), 2.0, 2.0) == 0.0  # cut by the border only
    m = np.zeros((3, 3), bool)
    m[1, 1] = True
    valid = np.ones((3, 3), bool)
    valid[:, 2] = False  # the right neighbour has no data: 3 edges over 6 valid pixels
    assert edge_density(m, 2.0, 2.0, valid) == pytest.approx(6 / 0.0024, rel=1e-12)
    assert math.isnan(edge_density(m, 2.0, 2.0, np.zeros((3, 3), bool)))
    checker = B([[1, 0], [0, 1]], bool)
    assert edge_counts(checker) == (2, 2)
    with pytest.raises(ValueError, match="positive"):
        edge_density(m, 0.0, 2.0)


def test_area_fraction_boundary_fraction_and_confusion() -> None:
    m = np.ones((3, 3), bool)
    m[0, 0] = False
    assert area_fraction(m) == pytest.approx(8 / 9)
    # Cropland pixels touching the non-cropland corner: (0, 1) and (1, 0).
    assert boundary_fraction(m) == pytest.approx(2 / 9)
    valid = np.ones((3, 3), bool)
    valid[2, :] = False
    assert area_fraction(m, valid) == pytest.approx(5 / 6)
    product = B([[1, 1, 0], [0, 1, 0], [1, 1, 1]], bool)
    final = B([[1, 0, 0], [1, 1, 1], [0, 0, 0]], bool)
    c = confusion(product, final, valid)
    # Rows 0-1 only: TP (0,0),(1,1); FP (0,1); FN (1,0),(1,2); TN (0,2).
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 2, 1)
    assert c.iou == pytest.approx(2 / 5)
    assert math.isnan(confusion(np.zeros((2, 2), bool), np.zeros((2, 2), bool)).iou)


def test_relative_deviation() -> None:
    assert relative_deviation(0.3, 0.2) == pytest.approx(0.5)
    assert relative_deviation(0.0, 0.4) == -1.0
    assert math.isnan(relative_deviation(0.3, 0.0))
    assert math.isnan(relative_deviation(0.0, 0.0))
    assert math.isnan(relative_deviation(math.nan, 0.5))


def test_class_mapping_parse_and_apply() -> None:
    assert ClassMapping.parse("40").values == (40.0,)
    cm = ClassMapping.parse("1-3, 7")
    assert cm.ranges == ((1.0, 3.0),) and cm.values == (7.0,)
    assert str(cm) == "7,1-3"
    assert cm.cropland(B([0, 1, 2, 3, 4, 7, 8])).tolist() == [0, 1, 1, 1, 0, 1, 0]
    assert ClassMapping.parse("-5--1").ranges == ((-5.0, -1.0),)
    assert ClassMapping.from_json(cm.to_json()) == cm
    for bad in ("", "abc", "5-3", "1-x"):
        with pytest.raises(ValueError):
            ClassMapping.parse(bad)
    assert ClassMapping.parse("300").problems_for_dtype(np.dtype("uint8"))
    assert ClassMapping.parse("40.5").problems_for_dtype(np.dtype("int16"))
    assert ClassMapping.parse("2.2-2.8").problems_for_dtype(np.dtype("uint8"))
    assert not ClassMapping.parse("40").problems_for_dtype(np.dtype("uint8"))
    assert not ClassMapping.parse("0.5-1").problems_for_dtype(np.dtype("float32"))


def _result(key: int, slope: float, dev_af: float, dev_ed: float, province: int = 1,
            final_ha: float = 1.0, product_ha: float = 1.0) -> BlockResult:
    return BlockResult(
        key=key, code=f"B{key}", province=province, slope=slope, width=2, height=2,
        dx_m=1.0, dy_m=1.0, n_common=4, tp=1, fp=1, fn=1, tn=1, iou=1 / 3, af_final=0.5,
        af_product=0.5, ed_final=1.0, ed_product=1.0, bf_final=0.5, bf_product=0.5,
        dev_af=dev_af, dev_ed=dev_ed, final_ha=final_ha, product_ha=product_ha,
    )


def test_slope_histogram_bins_and_statistics() -> None:
    results = [
        _result(1, 0.5, -0.3, 0.05),
        _result(2, 2.0, 0.2, -0.6),  # 2.0 falls in [2, 6)
        _result(3, 5.9, 0.6, math.nan),
        _result(4, 30.0, math.nan, -0.2),
        _result(5, 90.0, 2.0, 0.0),  # the last class includes 90
        _result(6, math.nan, 0.0, 0.0),
    ]
    h = slope_histogram(results, "af")
    assert [b.label for b in h.bins] == ["0–2°", "2–6°", "6–15°", "15–25°", "25–90°"]
    assert [b.n for b in h.bins] == [1, 2, 0, 0, 1]
    assert [b.n_undefined for b in h.bins] == [0, 0, 0, 0, 1]
    assert h.n_no_slope == 1
    assert h.bins[1].median == pytest.approx(0.4) and h.bins[1].mean == pytest.approx(0.4)
    assert h.bins[1].q25 == pytest.approx(0.3) and h.bins[1].q75 == pytest.approx(0.5)
    # Deviation classes: [-1,-.5) [-.5,-.25) [-.25,-.1) [-.1,.1) [.1,.25) [.25,.5) [.5,1) [1,inf)
    assert h.bins[0].counts == [0, 1, 0, 0, 0, 0, 0, 0]
    assert h.bins[1].counts == [0, 0, 0, 0, 1, 0, 1, 0]
    assert h.bins[4].counts == [0, 0, 0, 0, 0, 0, 0, 1]
    e = slope_histogram(results, "ed")
    assert [b.n for b in e.bins] == [1, 1, 0, 0, 2]
    assert e.bins[1].counts == [1, 0, 0, 0, 0, 0, 0, 0]
    assert e.bins[4].counts == [0, 0, 1, 1, 0, 0, 0, 0]
    with pytest.raises(ValueError):
        slope_histogram(results, "iou")


def test_province_rows_within_ten_percent() -> None:
    results = [
        _result(1, 1, 0, 0, province=11, final_ha=50.0, product_ha=60.0),
        _result(2, 1, 0, 0, province=11, final_ha=50.0, product_ha=50.0),  # 100 vs 110
        _result(3, 1, 0, 0, province=12, final_ha=95.0, product_ha=70.0),
        _result(4, 1, 0, 0, province=13, final_ha=10.0, product_ha=10.0),
    ]
    provinces = [
        ProvinceInput(11, "A", blocks_total=2, official_ha=100.0, official_status="VERIFIED"),
        ProvinceInput(12, "B", blocks_total=1, official_ha=100.0, official_status="UNVERIFIED"),
        ProvinceInput(13, "C", blocks_total=3, official_ha=10.0),  # incomplete: not judged
        ProvinceInput(14, "D", blocks_total=1, official_ha=10.0),  # nothing compared: no row
    ]
    rows = {r.adcode: r for r in province_rows(results, provinces)}
    assert set(rows) == {11, 12, 13}
    a, b, c = rows[11], rows[12], rows[13]
    assert (a.final_ha, a.product_ha) == (100.0, 110.0)
    assert a.final_vs_official == 0.0 and a.product_vs_official == pytest.approx(0.1)
    assert a.final_within is True and a.product_within is True  # exactly +10 % is within
    assert b.final_vs_official == pytest.approx(-0.05) and b.final_within is True
    assert b.product_vs_official == pytest.approx(-0.3) and b.product_within is False
    assert not c.complete and c.final_within is None and c.blocks_compared == 1
    report = build_report(results, provinces)
    assert report.provinces_judged == 2
    assert (report.final_within_10pct, report.product_within_10pct) == (2, 1)
    assert report.pixel["tp"] == 4 and report.pixel["iou"] == pytest.approx(1 / 3)
    j = report.to_json()
    assert j["provinces"][2]["final_vs_official"] == 0.0
    assert j["slope_af"]["deviation_edges"][-1] is None  # inf is written as null


def _write(path: Path, data: np.ndarray, transform, crs: str, nodata=None) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype.name, crs=crs, transform=transform,
                       nodata=nodata) as ds:
        ds.write(data, 1)
    return path


def test_read_on_grid_is_nearest_by_pixel_centre(tmp_path: Path) -> None:
    # A UTM 50N raster of 30 m pixels with distinct values; the lon/lat block grid must take
    # the value of the source pixel holding each block pixel's centre.
    rng = np.random.default_rng(7)
    data = rng.integers(1, 250, size=(60, 50)).astype(np.uint8)
    data[:5, :] = 0  # nodata rows
    x0, y0, res = 700_000.0, 3_560_000.0, 30.0
    src = _write(tmp_path / "p.tif", data, from_origin(x0, y0, res, res), "EPSG:32650", 0)
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32650", always_xy=True)
    lon0, lat0 = Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True).transform(
        x0 + 200, y0 - 300)
    raster = BlockRaster(west=lon0, south=lat0 - 0.012, east=lon0 + 0.014, north=lat0,
                         width=57, height=61)
    with open_raster(src) as ds:
        on = read_on_grid(ds, raster)
    dx, dy = raster.pixel_deg
    lons = raster.west + (np.arange(raster.width) + 0.5) * dx
    lats = raster.north - (np.arange(raster.height) + 0.5) * dy
    xx, yy = to_utm.transform(*np.meshgrid(lons, lats))
    fcol, frow = (xx - x0) / res, (y0 - yy) / res
    col, row = np.floor(fcol).astype(int), np.floor(frow).astype(int)
    inside = (row >= 0) & (row < 60) & (col >= 0) & (col < 50)
    expected = np.zeros(on.values.shape, np.uint8)
    expected[inside] = data[row[inside], col[inside]]
    assert inside.mean() > 0.9 and not inside.all()  # partly outside the source: no data
    differ = on.values != expected
    # GDAL's transformer is exact to WARP_TOLERANCE (1e-4 pixel): only centres that sit on a
    # source pixel edge (a tie) may go either way.
    tie = (np.abs(fcol - np.rint(fcol)) < 1e-4) | (np.abs(frow - np.rint(frow)) < 1e-4)
    assert differ.sum() <= tie.sum() <= 0.005 * differ.size
    assert not (differ & ~tie).any()
    assert np.array_equal(on.valid[~tie], (expected != 0)[~tie])
    # Without a nodata value every source pixel is valid, and outside still is not.
    plain = _write(tmp_path / "plain.tif", data, from_origin(x0, y0, res, res), "EPSG:32650")
    with open_raster(plain) as ds:
        on2 = read_on_grid(ds, raster)
    assert np.array_equal(on2.valid[~tie], inside[~tie])


def test_inspect_raster_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a tiff")
    with pytest.raises(RasterFileError, match="not a raster"):
        inspect_raster(junk)
    nocrs = tmp_path / "nocrs.tif"
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning), rasterio.open(
            nocrs, "w", driver="GTiff", width=4, height=4, count=1,
                       dtype="uint8") as ds:
        ds.write(np.ones((4, 4), np.uint8), 1)
    with pytest.raises(RasterFileError, match="no coordinate reference system"):
        inspect_raster(nocrs)
    ok = _write(tmp_path / "ok.tif", B([[10, 40], [40, 0]], np.uint8),
                from_origin(119.0, 32.0, 0.01, 0.01), "EPSG:4326", 0)
    info = inspect_raster(ok)
    assert info.sample_values == (10.0, 40.0) and info.nodata == 0
    assert info.bounds_lonlat == pytest.approx((119.0, 31.98, 119.02, 32.0))


_masks = arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12)))


@settings(max_examples=60, deadline=None)
@given(m=_masks, dx=st.floats(0.5, 40), dy=st.floats(0.5, 40))
def test_edge_density_properties(m: np.ndarray, dx: float, dy: float) -> None:
    ed = edge_density(m, dx, dy)
    # Swapping cropland and other keeps every edge; transposing swaps the pixel sides.
    assert edge_density(~m, dx, dy) == pytest.approx(ed)
    assert edge_density(m.T.copy(), dy, dx) == pytest.approx(ed)
    # Brute force: walk every pixel and look right and down.
    length = 0.0
    h, w = m.shape
    for i in range(h):
        for j in range(w):
            if j + 1 < w and m[i, j] != m[i, j + 1]:
                length += dy
            if i + 1 < h and m[i, j] != m[i + 1, j]:
                length += dx
    assert ed == pytest.approx(length / (h * w * dx * dy / 10_000))
    # Upper bound: every pixel pair differs (a checkerboard).
    assert ed <= ((h - 1) * w * dx + h * (w - 1) * dy) / (h * w * dx * dy / 1e4) + 1e-9
