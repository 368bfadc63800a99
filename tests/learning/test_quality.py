"""Image-quality features: histogram medians against np.median, on random and real images."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from learning.core.iqa.quality import (
    HUE_DEG_PER_LEVEL,
    histogram_median,
    hls_levels,
    quality_features,
    sharpness,
    valid_pixels,
)


def _reference(image: np.ndarray) -> tuple[float, float, float, float]:
    """np.median over the valid pixels of float gradients and exact (float) HSL."""
    valid = ~(image == 0).all(axis=2)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
    sharp = float(np.median(np.hypot(gx, gy)[valid]))
    rgb = image[valid].astype(np.float64) / 255.0
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    light = (mx + mn) / 2
    d = mx - mn
    with np.errstate(invalid="ignore", divide="ignore"):
        sat = np.where(d == 0, 0.0, np.where(light < 0.5, d / (mx + mn), d / (2 - mx - mn)))
        r, g, b = rgb.T
        h = np.where(mx == r, (g - b) / d, np.where(mx == g, 2 + (b - r) / d, 4 + (r - g) / d))
    hue = np.where(d == 0, 0.0, (h * 60.0) % 360.0)
    return sharp, float(np.median(hue)), float(np.median(sat)), float(np.median(light))


def _check_against_reference(image: np.ndarray) -> None:
    q = quality_features(image)
    sharp, hue, sat, light = _reference(image)
    assert q.sharpness == pytest.approx(sharp, rel=1e-9, abs=1e-9)
    # OpenCV's 8-bit HLS is within 1.5 hue levels and 0.56 S/L levels of exact HSL per pixel,
    # hence so are the medians (see the module docstring).
    assert abs(q.hue_deg - hue) <= 1.5 * HUE_DEG_PER_LEVEL + 1e-9
    assert abs(q.saturation - sat) <= 0.56 / 255
    assert abs(q.lightness - light) <= 0.56 / 255


@given(arrays(np.uint8, st.integers(1, 400), elements=st.integers(0, 255)))
@settings(max_examples=200, deadline=None)
def test_histogram_median_equals_np_median(values: np.ndarray) -> None:
    assert histogram_median(values, levels=256) == float(np.median(values))


def test_histogram_median_of_nothing_is_nan() -> None:
    assert math.isnan(histogram_median(np.zeros(0, dtype=np.uint8)))


@pytest.mark.parametrize("seed", range(4))
def test_random_images_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 90, size=2)
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    image[: h // 3, : w // 4] = 0  # a no-data corner
    _check_against_reference(image)


def test_8bit_medians_are_exact() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(1, 256, size=(64, 48, 3), dtype=np.uint8)
    q = quality_features(image)
    hls = hls_levels(image)
    assert q.hue_deg == float(np.median(hls[..., 0])) * HUE_DEG_PER_LEVEL
    assert q.lightness == float(np.median(hls[..., 1])) / 255
    assert q.saturation == float(np.median(hls[..., 2])) / 255


def test_real_images_match_reference(shared_data: Path) -> None:
    files = sorted((shared_data / "real" / "gid15" / "images").glob("*.tif"))[::40]
    files += sorted((shared_data / "real" / "loveda" / "images").glob("*.png"))[:2]
    assert files
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        assert bgr is not None, f
        _check_against_reference(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def test_nodata_pixels_are_left_out() -> None:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[:, 20:] = (0, 200, 0)  # flat green half, black no-data half
    q = quality_features(image)
    assert q.valid_fraction == 0.5
    assert q.lightness == pytest.approx(100 / 255, abs=1 / 255)
    assert q.hue_deg == pytest.approx(120, abs=HUE_DEG_PER_LEVEL)
    # The green pixels next to the fill keep their edge; the rest of the half is flat.
    assert q.sharpness == 0.0
    assert valid_pixels(image).sum() == 800


def test_all_nodata_block_gives_nan() -> None:
    q = quality_features(np.zeros((8, 8, 3), dtype=np.uint8))
    assert q.valid_fraction == 0
    assert all(math.isnan(v) for v in (q.sharpness, q.hue_deg, q.saturation, q.lightness))


def test_haze_lowers_sharpness() -> None:
    rng = np.random.default_rng(3)
    texture = rng.integers(30, 220, size=(128, 128, 3)).astype(np.float64)
    hazy = (0.3 * texture + 0.7 * 235).astype(np.uint8)
    clear = texture.astype(np.uint8)
    assert sharpness(hazy) < 0.5 * sharpness(clear)
    assert quality_features(hazy).lightness > quality_features(clear).lightness
    assert quality_features(hazy).saturation < quality_features(clear).saturation


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)],
)
def test_bad_images_raise(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        quality_features(bad)


def test_sqrt_key_is_monotone_over_every_squared_magnitude() -> None:
    # The sharpness selection relies on float32 sqrt being non-decreasing on exact integers.
    sq = np.arange(0, 2 * 1020**2 + 1, dtype=np.float32).reshape(1, -1)
    key = cv2.convertScaleAbs(cv2.sqrt(sq)).ravel()
    assert np.all(np.diff(key.astype(np.int16)) >= 0)


@pytest.mark.parametrize("period", [1, 2, 3])
def test_sharpness_exact_on_strong_and_saturated_gradients(period: int) -> None:
    # Stripes and checkerboards put the median magnitude above the 8-bit key's 255 cap.
    yy, xx = np.mgrid[:50, :61]
    grey = np.where(((yy // period) + (xx // period)) % 2 == 0, 250, 5).astype(np.uint8)
    image = np.dstack([grey, grey, grey])
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
    expected = float(np.median(np.hypot(gx, gy)))
    assert sharpness(image) == pytest.approx(expected, rel=1e-12)


def test_nodata_is_grey_zero_and_saturation_zero_over_every_colour() -> None:
    # quality_features finds the no-data pixels as grey == 0 and S == 0, and takes them off
    # bin 0 of the HLS histograms: check both over all 2**24 colours.
    v = np.arange(256, dtype=np.uint8)
    r, g, b = (a.ravel() for a in np.meshgrid(v, v, v, indexing="ij"))
    image = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    hls = hls_levels(image)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    black = ~image.any(axis=2)
    np.testing.assert_array_equal((grey == 0) & (hls[..., 2] == 0), black)
    assert not hls[black].any()


@pytest.mark.parametrize("seed", range(6))
def test_sharpness_exact_at_every_contrast(seed: int) -> None:
    # Medians below 64, between 64 and 181 and above (the histogram stages and the fallback),
    # with and without no-data pixels.
    rng = np.random.default_rng(seed)
    for amp in (2.0, 12.0, 40.0, 90.0, 127.0):
        image = np.clip(rng.normal(size=(45, 53, 3)) * amp + 128, 0, 255).astype(np.uint8)
        if seed % 2:
            image[rng.random(image.shape[:2]) < 0.3] = 0
            image[:10] = 0
        q = quality_features(image)
        valid = image.any(axis=2)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
        gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3)
        gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
        assert q.sharpness == pytest.approx(float(np.median(np.hypot(gx, gy)[valid])), rel=1e-12)
        assert sharpness(image) == q.sharpness
        hls = hls_levels(image)[valid]
        assert q.hue_deg == float(np.median(hls[:, 0])) * HUE_DEG_PER_LEVEL
        assert q.lightness == float(np.median(hls[:, 1])) / 255
        assert q.saturation == float(np.median(hls[:, 2])) / 255
