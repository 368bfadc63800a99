"""A block image's quality statistics stored on its row (``learning.services.image_quality``):
read back for the image they were computed from, never for another one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learning.core.features.block import block_features_compute
from learning.core.iqa.quality import QualityFeatures, quality_features
from learning.services.image_quality import (
    image_quality_of,
    image_quality_store,
    image_quality_stored,
)
from mapping.models import BlockImage, ImagerySource
from tests.factories import one_block_campaign_make, user_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def image():
    camp = one_block_campaign_make(slug="q", name="Q", lead=user_make("lead-q", role="lead"))
    source, _ = ImagerySource.objects.get_or_create(
        slug="mapbox", defaults={"name": "Mapbox", "kind": "synthetic"})
    return BlockImage.objects.create(block=camp.blocks.get(), source=source, status="ok",
                                     path="imagery/q/a.tif", checksum="abc")


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_stored_for_the_image_it_was_computed_from(image):
    assert image_quality_stored(image=image) is None
    q = image_quality_of(image=image, pixels=_pixels(0))
    assert q == quality_features(_pixels(0))
    image.refresh_from_db()
    assert image_quality_stored(image=image) == q
    # Stored: asked again with other pixels, the stored value comes back (nothing recomputed).
    assert image_quality_of(image=image, pixels=_pixels(1)) == q
    # Another image on the row (a new checksum or path): nothing stored for it.
    image.checksum = "def"
    assert image_quality_stored(image=image) is None
    image.checksum, image.path = "abc", "imagery/q/b.tif"
    assert image_quality_stored(image=image) is None


def test_a_row_that_changed_meanwhile_keeps_its_own(image):
    stale = BlockImage.objects.get(pk=image.pk)
    BlockImage.objects.filter(pk=image.pk).update(checksum="new")  # a fetch meanwhile
    image_quality_store(image=stale, quality=quality_features(_pixels(0)))
    assert BlockImage.objects.get(pk=image.pk).quality == {}


def test_nan_round_trips_as_null(image):
    black = np.zeros((8, 8, 3), np.uint8)  # no valid pixel: every statistic is NaN
    image_quality_of(image=image, pixels=black)
    image.refresh_from_db()
    assert image.quality["sharpness"] is None
    back = image_quality_stored(image=image)
    assert back is not None and math.isnan(back.sharpness) and back.valid_fraction == 0.0


def test_features_from_stored_quality_equal_those_from_the_image():
    img = _pixels(2)
    mask = (np.arange(64 * 64).reshape(64, 64) % 3 == 0).astype(np.uint8)
    from_image = block_features_compute(image=img, mask=mask, pixel_size_m=2.4)
    from_stored = block_features_compute(image=quality_features(img), mask=mask,
                                         pixel_size_m=2.4)
    assert from_stored.to_dict() == pytest.approx(from_image.to_dict(), nan_ok=True)
    assert isinstance(quality_features(img), QualityFeatures)
