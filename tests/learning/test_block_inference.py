"""Whole-block inference's own arithmetic (learning/core/segmentation/inference.py): the block
image read as it was written, and the windows' blend equal to the weighted average it stands
for (the sum of the weights per pixel is computed from two vectors, not accumulated)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from learning.core.segmentation.inference import (
    _starts,
    read_block,
    sliding_window_proba,
    window_weights,
)


def test_a_block_image_reads_back_pixel_for_pixel(tmp_path: Path):
    img = np.random.default_rng(0).integers(0, 256, (301, 257, 3), dtype=np.uint8)
    path = tmp_path / "b.tif"
    with rasterio.open(path, "w", driver="GTiff", width=257, height=301, count=4, dtype="uint8",
                       crs="EPSG:4326", transform=Affine(1e-4, 0, 112, 0, -1e-4, 30),
                       tiled=True, blockxsize=128, blockysize=128, compress="deflate") as ds:
        ds.write(np.moveaxis(img, -1, 0), [1, 2, 3])
        ds.write(np.full((301, 257), 255, np.uint8), 4)  # alpha, not part of the image
    block = read_block(path)
    assert block.image.shape == (301, 257, 3) and block.image.dtype == np.uint8
    np.testing.assert_array_equal(block.image, img)


def _weighted_average(image, predict_fn, window, overlap):
    """The definition: every window's output times its taper, summed, over the summed tapers
    (float64, one window at a time)."""
    h, w = image.shape[:2]
    taper = window_weights(window)
    acc, norm = np.zeros((h, w)), np.zeros((h, w))
    stride = window - overlap
    for y in _starts(h, window, stride):
        for x in _starts(w, window, stride):
            acc[y:y + window, x:x + window] += predict_fn(
                image[None, y:y + window, x:x + window])[0] * taper
            norm[y:y + window, x:x + window] += taper
    return acc / norm


@pytest.mark.parametrize("shape,window,overlap", [
    ((300, 260), 96, 32), ((97, 500), 64, 16), ((200, 200), 64, 0), ((128, 128), 64, 63),
])  # fmt: skip
def test_the_blend_is_the_weighted_average_of_the_windows(shape, window, overlap):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)

    def predict_fn(batch):  # depends on the pixel and on its place in the window
        ramp = np.linspace(0.0, 0.5, batch.shape[2], dtype=np.float32)
        return batch[..., 1].astype(np.float32) / 510 + ramp[None, None, :]

    got = sliding_window_proba(image, predict_fn, window=window, overlap=overlap, batch_size=3)
    want = _weighted_average(image, predict_fn, window, overlap)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=1e-5)  # float32 against float64
