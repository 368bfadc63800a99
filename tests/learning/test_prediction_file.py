"""The prediction GeoTIFF a round writes per block and source (learning/core/segmentation/
inference.py): band 1 the mask, band 2 the probability as uint8 with its scale in the band's
metadata; files of the float32 format written before issue 15 still read the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Interleaving

from learning.core.segmentation.inference import (
    quantise_probability,
    read_prediction,
    write_prediction,
)

TRANSFORM = Affine(0.05 / 260, 0, 116.40, 0, -0.05 / 300, 39.95)
CRS84 = CRS.from_epsg(4326)


def _probability() -> np.ndarray:
    rng = np.random.default_rng(3)
    p = rng.random((300, 260), dtype=np.float32)
    p[:5, :5] = (0.0, 1.0, 0.5, 0.4999, 0.5001)  # the ends and either side of the threshold
    return p


def test_the_probability_is_stored_as_uint8_and_reads_back_within_half_a_step(tmp_path: Path):
    prob = _probability()
    mask = (prob >= 0.5).astype(np.uint8)
    path = write_prediction(tmp_path / "p.tif", mask=mask, confidence=prob, crs=CRS84,
                            transform=TRANSFORM)
    with rasterio.open(path) as ds:
        assert ds.dtypes == ("uint8", "uint8")
        assert ds.scales[1] == pytest.approx(1 / 255) and ds.offsets[1] == 0.0
        assert ds.descriptions == ("cropland_mask", "cropland_probability")
        # the mask's readers (exports, comparisons) decompress its tiles alone
        assert ds.interleaving == Interleaving.band
    got_mask, got, transform = read_prediction(path)
    assert transform == TRANSFORM
    np.testing.assert_array_equal(got_mask, mask)
    assert got.dtype == np.float32
    assert np.abs(got - prob).max() <= 0.5 / 255 + 1e-6
    assert got.min() == 0.0 and got.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(got >= 0.5, mask.astype(bool))  # the threshold survives


def test_a_float32_prediction_of_an_earlier_round_reads_as_it_was_written(tmp_path: Path):
    """The format before issue 15, written as write_prediction wrote it then."""
    prob = _probability()
    mask = (prob >= 0.5).astype(np.uint8)
    path = tmp_path / "old.tif"
    with rasterio.open(path, "w", driver="GTiff", width=260, height=300, count=2,
                       dtype="float32", crs=CRS84, transform=TRANSFORM, compress="deflate",
                       zlevel=1, tiled=True, blockxsize=256, blockysize=256) as ds:
        ds.write(mask.astype(np.float32), 1)
        ds.write(prob, 2)
    got_mask, got, _ = read_prediction(path)
    assert got_mask.dtype == np.uint8 and got.dtype == np.float32
    np.testing.assert_array_equal(got_mask, mask)
    np.testing.assert_array_equal(got, prob)  # exactly: no scale to apply


def test_quantising_clips_and_rounds():
    q = quantise_probability(np.array([-0.2, 0.0, 0.3, 0.4999, 0.5, 1.0, 1.7], np.float32))
    assert q.dtype == np.uint8
    assert q.tolist() == [0, 0, 76, 127, 128, 255, 255]


def test_the_services_read_both_formats_under_data_dir(tmp_path: Path, settings):
    """What the rounds' correctness features and the demo player read (learning.services.data):
    a path relative to DATA_DIR."""
    from learning.services.data import read_prediction as read_under_data_dir

    settings.DATA_DIR = tmp_path
    prob = _probability()
    mask = (prob >= 0.5).astype(np.uint8)
    write_prediction(tmp_path / "pred" / "new.tif", mask=mask, confidence=prob, crs=CRS84,
                     transform=TRANSFORM)
    got_mask, got, _ = read_under_data_dir("pred/new.tif")
    np.testing.assert_array_equal(got_mask, mask)
    assert np.abs(got - prob).max() <= 0.5 / 255 + 1e-6
