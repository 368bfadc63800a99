"""Region properties, IoU and the block feature record: fast kernels against scikit-image."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage as ndi
from skimage.measure import euler_number, label, regionprops

from learning.core.features import FEATURE_NAMES, BlockFeatures, block_features_compute
from learning.core.features.consistency import mask_iou
from learning.core.features.region import component_stats, region_features
from learning.core.features.terrain import DemWindow, TerrainFeatures


def _skimage_oracle(mask: np.ndarray) -> dict[str, float]:
    """Compare per component with skimage; return the solidity mean absolute error."""
    fg = mask == 1
    stats, labels = component_stats(mask)
    sk_labels = label(fg, connectivity=2)
    props = regionprops(sk_labels)
    assert len(props) == len(stats.area)
    if not props:
        assert euler_number(fg, connectivity=2) == stats.euler.sum() == 0
        return {"mae": 0.0, "n": 0}
    # Same partition: every skimage label maps to exactly one OpenCV label.
    pairs = np.unique(np.stack([sk_labels[fg], labels[fg]]), axis=1)
    assert pairs.shape[1] == len(props)
    to_cv = dict(zip(pairs[0].tolist(), (pairs[1] - 1).tolist(), strict=True))
    idx = np.array([to_cv[p.label] for p in props], dtype=np.int64)
    np.testing.assert_array_equal(stats.area[idx], [p.area for p in props])
    np.testing.assert_array_equal(stats.euler[idx], [p.euler_number for p in props])
    assert stats.euler.sum() == euler_number(fg, connectivity=2)
    sol = np.array([p.solidity for p in props])
    mae = float(np.abs(stats.solidity[idx] - sol).mean())
    assert mae < 0.005
    return {"mae": mae, "n": len(props)}


@pytest.mark.parametrize("p", [0.2, 0.45, 0.6, 0.8])
def test_random_masks_match_skimage(p: float) -> None:
    rng = np.random.default_rng(int(p * 100))
    mask = (rng.random((150, 170)) < p).astype(np.uint8)
    mask[rng.random(mask.shape) < 0.05] = 255
    result = _skimage_oracle(mask)
    assert result["n"] >= 1


def test_blobby_masks_match_skimage() -> None:
    # Smoothed noise: big irregular components with holes and islands inside holes.
    rng = np.random.default_rng(5)
    for sigma in (2.0, 4.0):
        field = ndi.gaussian_filter(rng.normal(size=(300, 260)), sigma)
        mask = (field > 0).astype(np.uint8)
        result = _skimage_oracle(mask)
        assert result["mae"] < 1e-12  # the hull pixel count is exact, not just close


@given(arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24)),
              elements=st.sampled_from([0, 1, 1, 255])))
@settings(max_examples=150, deadline=None)
def test_property_matches_skimage(mask: np.ndarray) -> None:
    stats, _ = component_stats(mask)
    fg = mask == 1
    props = regionprops(label(fg, connectivity=2))
    assert sorted(stats.convex_area.tolist()) == sorted(int(p.area_convex) for p in props)
    assert sorted(stats.euler.tolist()) == sorted(int(p.euler_number) for p in props)
    assert int(stats.euler.sum()) == euler_number(fg, connectivity=2)


def _real_masks(shared_data: Path, step: int) -> list[Path]:
    files = sorted((shared_data / "real").glob("*/masks_cropland/*"))
    return files[::step]


def test_real_masks_match_skimage(shared_data: Path) -> None:
    files = _real_masks(shared_data, 12)
    assert len(files) >= 15
    total = 0
    for f in files:
        mask = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        assert mask is not None and mask.ndim == 2, f
        total += _skimage_oracle(mask)["n"]
    assert total > 20


@pytest.mark.slow
def test_all_real_masks_match_skimage(shared_data: Path) -> None:
    for f in _real_masks(shared_data, 1):
        _skimage_oracle(cv2.imread(str(f), cv2.IMREAD_UNCHANGED))


def test_region_features_by_hand() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[1:4, 1:4] = 1
    mask[2, 2] = 0  # a ring: Euler 0, solidity 8/9
    mask[6:9, 6] = 1  # a bar: Euler 1, solidity 1
    mask[:, 9] = 255
    r = region_features(mask, 2.0)
    assert r.n_components == 2
    assert r.area_m2 == 11 * 4.0
    assert r.area_fraction == 11 / 90
    assert r.solidity_mean == pytest.approx((8 / 9 + 1) / 2)
    assert r.solidity_total == pytest.approx(11 / 12)
    assert r.euler_mean == 0.5 and r.euler_total == 1.0
    # Every cropland pixel of these thin shapes touches a 0 pixel.
    assert r.edge_density == 11 / 90


def test_edge_density_matches_morphology() -> None:
    rng = np.random.default_rng(11)
    mask = (ndi.gaussian_filter(rng.normal(size=(200, 200)), 3) > 0.1).astype(np.uint8)
    mask[:20] = 255
    crop, zero = mask == 1, mask == 0
    touches_zero = ndi.binary_dilation(zero, structure=ndi.generate_binary_structure(2, 1))
    expected = np.count_nonzero(crop & touches_zero) / np.count_nonzero(mask != 255)
    assert region_features(mask, 1.0).edge_density == pytest.approx(expected)


def test_block_edge_and_ignore_pixels_are_not_field_edges() -> None:
    mask = np.ones((6, 6), np.uint8)
    mask[0] = 255
    r = region_features(mask, 1.0)
    assert r.edge_density == 0.0 and r.solidity_total == 1.0 and r.euler_total == 1.0


def test_empty_masks() -> None:
    r = region_features(np.zeros((5, 5), np.uint8), 1.0)
    assert r.area_m2 == 0 and r.area_fraction == 0 and r.euler_total == 0
    assert math.isnan(r.solidity_mean) and math.isnan(r.euler_mean)
    r2 = region_features(np.full((5, 5), 255, np.uint8), 1.0)
    assert math.isnan(r2.area_fraction) and math.isnan(r2.edge_density)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 3, 1), np.uint8), np.full((3, 3), 2, np.uint8), np.zeros((3, 3), np.int32)],
)
def test_bad_masks_raise(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        region_features(bad, 1.0)


def test_bad_pixel_size_raises() -> None:
    with pytest.raises(ValueError, match="pixel size"):
        region_features(np.zeros((3, 3), np.uint8), 0.0)


# --- consistency -----------------------------------------------------------------------------


def test_iou() -> None:
    a = np.array([[1, 1, 0, 255]], np.uint8)
    b = np.array([[1, 0, 1, 1]], np.uint8)
    assert mask_iou(a, b) == 1 / 3  # the pixel ignored in a does not count
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)) == 1.0
    assert math.isnan(mask_iou(np.full((2, 2), 255, np.uint8), np.ones((2, 2), np.uint8)))
    with pytest.raises(ValueError, match="same grid"):
        mask_iou(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))


@given(arrays(np.uint8, (8, 9), elements=st.sampled_from([0, 1, 255])),
       arrays(np.uint8, (8, 9), elements=st.sampled_from([0, 1, 255])))
@settings(max_examples=100, deadline=None)
def test_iou_is_symmetric_and_bounded(a: np.ndarray, b: np.ndarray) -> None:
    x, y = mask_iou(a, b), mask_iou(b, a)
    assert (math.isnan(x) and math.isnan(y)) or (x == y and 0 <= x <= 1)


# --- the block record --------------------------------------------------------------------------


def test_block_features_vector_order_and_values() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, size=(40, 50, 3), dtype=np.uint8)
    mask = np.zeros((40, 50), np.uint8)
    mask[5:20, 5:30] = 1
    other = np.zeros_like(mask)
    other[5:20, 5:20] = 1
    dem = DemWindow(elevation=np.arange(25, dtype=np.float64).reshape(5, 5) * 10, xres=30,
                    yres=30, geographic=False, center_lat=30)
    f = block_features_compute(image=image, mask=mask, pixel_size_m=2.4, dem=dem,
                               coverage_type="cloudy", other_mask=other)
    v = f.to_vector()
    assert BlockFeatures.names() == FEATURE_NAMES and len(v) == 16 and v.dtype == np.float64
    assert v[FEATURE_NAMES.index("coverage_type")] == 2.0
    assert v[FEATURE_NAMES.index("area_m2")] == pytest.approx(15 * 25 * 2.4**2)
    assert v[FEATURE_NAMES.index("iou_sources")] == pytest.approx(15 / 25)
    assert v[FEATURE_NAMES.index("elevation_median")] == 120.0
    assert f.edge_density > 0
    assert BlockFeatures.from_mapping({k: str(x) for k, x in f.to_dict().items()}) == f


def test_block_features_without_dem_or_other_mask_are_nan() -> None:
    image = np.full((8, 8, 3), 100, np.uint8)
    f = block_features_compute(image=image, mask=np.ones((8, 8), np.uint8), pixel_size_m=1.0,
                               dem=TerrainFeatures(1.0, 2.0, 3.0, 4.0, 1.0))
    v = f.to_vector()
    assert list(v[:4]) == [1.0, 2.0, 3.0, 4.0]
    assert math.isnan(v[4]) and math.isnan(v[15])
    f2 = block_features_compute(image=image, mask=np.ones((8, 8), np.uint8), pixel_size_m=1.0)
    assert np.isnan(f2.to_vector()[:4]).all()


def test_block_features_bad_inputs() -> None:
    image = np.full((8, 8, 3), 100, np.uint8)
    with pytest.raises(ValueError, match="match"):
        block_features_compute(image=image, mask=np.ones((8, 9), np.uint8), pixel_size_m=1.0)
    with pytest.raises(ValueError, match="coverage type"):
        block_features_compute(image=image, mask=np.ones((8, 8), np.uint8), pixel_size_m=1.0,
                               coverage_type="sunny")
    with pytest.raises(ValueError, match="missing feature"):
        BlockFeatures.from_mapping({"area_m2": 1})


def _skimage_region_features(mask: np.ndarray) -> dict[str, float]:
    """region_features' numbers the straightforward way (skimage, scipy, numpy)."""
    fg = mask == 1
    props = regionprops(label(fg, connectivity=2))
    valid = np.count_nonzero(mask != 255)
    touches_zero = ndi.binary_dilation(mask == 0, structure=ndi.generate_binary_structure(2, 1))
    areas = np.array([p.area for p in props], dtype=np.float64)
    hulls = np.array([p.area_convex for p in props], dtype=np.float64)
    eulers = np.array([p.euler_number for p in props], dtype=np.float64)
    nan = math.nan
    return {
        "area_m2": float(np.count_nonzero(fg)),
        "area_fraction": np.count_nonzero(fg) / valid if valid else nan,
        "solidity_mean": float(np.mean(areas / hulls)) if len(props) else nan,
        "solidity_total": float(areas.sum() / hulls.sum()) if len(props) else nan,
        "euler_mean": float(eulers.mean()) if len(props) else nan,
        "euler_total": float(euler_number(fg, connectivity=2)),
        "edge_density": np.count_nonzero(fg & touches_zero) / valid if valid else nan,
        "n_components": float(len(props)),
    }


@given(arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)),
              elements=st.sampled_from([0, 1, 1, 255])))
@settings(max_examples=200, deadline=None)
def test_region_features_match_skimage(mask: np.ndarray) -> None:
    # The label-free path (areas by Pick's theorem on the borders, hulls grown by the pixel
    # diamond) against regionprops, including 1-pixel and 1-row masks.
    r = region_features(mask, 1.0)
    for name, expected in _skimage_region_features(mask).items():
        got = float(getattr(r, name))
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12, nan_ok=True), name


def test_region_features_match_skimage_on_blobs() -> None:
    # Big irregular components with pinches, holes and islands inside holes.
    rng = np.random.default_rng(21)
    for sigma in (1.0, 3.0, 6.0):
        mask = (ndi.gaussian_filter(rng.normal(size=(240, 220)), sigma) > 0.02).astype(np.uint8)
        mask[rng.random(mask.shape) < 0.01] = 255
        r = region_features(mask, 1.0)
        for name, expected in _skimage_region_features(mask).items():
            assert float(getattr(r, name)) == pytest.approx(expected, rel=1e-12), name


def test_one_pixel_masks() -> None:
    for v in (0, 1, 255):
        m = np.full((1, 1), v, np.uint8)
        r = region_features(m, 1.0)
        assert r.n_components == int(v == 1) and r.cropland_pixels == int(v == 1)
        iou = mask_iou(m, m)
        assert math.isnan(iou) if v == 255 else iou == 1.0
