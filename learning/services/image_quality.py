"""A block image's quality statistics (four of the 16 block features), stored on its row.

They depend on the image alone, so a round computes them once per image, in the predict stage
where the image is already in memory, and every later scoring reads them back instead of
reading the image again (issue 15: the features were the last pipeline overhead over 10 %).
A stored value belongs to the path and checksum it was computed from; a row whose image
changed (a new fetch clears it too) counts as having none.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from typing import Any

from learning.core.iqa.quality import QualityFeatures, quality_features
from mapping.models import BlockImage

_NAMES = tuple(f.name for f in fields(QualityFeatures))


def image_quality_stored(*, image: BlockImage) -> QualityFeatures | None:
    """The statistics stored for the row's current image, or None."""
    q = image.quality or {}
    if q.get("path") != image.path or q.get("checksum") != image.checksum:
        return None
    try:
        return QualityFeatures(
            **{n: math.nan if q[n] is None else float(q[n]) for n in _NAMES}
        )
    except (KeyError, TypeError, ValueError):
        return None


def image_quality_store(*, image: BlockImage, quality: QualityFeatures) -> None:
    """Store the statistics for the row's current image (NaN as null: JSON has no NaN)."""
    values: dict[str, Any] = {
        k: None if isinstance(v, float) and math.isnan(v) else v
        for k, v in asdict(quality).items()
    }
    image.quality = {"path": image.path, "checksum": image.checksum, **values}
    # Only while the row still holds that image: a fetch meanwhile wins.
    BlockImage.objects.filter(pk=image.pk, path=image.path, checksum=image.checksum).update(
        quality=image.quality
    )


def image_quality_of(*, image: BlockImage, pixels: Any) -> QualityFeatures:
    """The stored statistics, else computed from ``pixels`` (the row's image) and stored."""
    stored = image_quality_stored(image=image)
    if stored is not None:
        return stored
    quality = quality_features(pixels)
    image_quality_store(image=image, quality=quality)
    return quality
