"""The bridge between ORM rows and the pure core: block images, sample masks, block lists."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet

from annotation.models import Assignment, AssignmentStatus, Sample, SampleSplit
from learning.core.segmentation.data import rasterize_polygons
from learning.core.segmentation.inference import Block as CoreBlock
from learning.core.segmentation.inference import read_block
from learning.core.segmentation.inference import read_prediction as read_prediction_file
from learning.models import Round, SystematicSampleBlock
from mapping.models import Block, BlockImage, BlockImageStatus, ImagerySource

ImagePair = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]


def data_path(rel: str | Path) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else Path(settings.DATA_DIR) / p


def round_sources(*, rnd: Round) -> list[ImagerySource]:
    """The sources a round predicts on: those its config names, else every enabled source."""
    wanted = (rnd.config or {}).get("sources")
    qs = ImagerySource.objects.filter(enabled=True)
    if wanted:
        qs = ImagerySource.objects.filter(slug__in=wanted)
    return list(qs.order_by("slug"))


def block_image_row(*, block: Block, source: ImagerySource) -> BlockImage | None:
    """The row of the block's fetched image from a source, or None."""
    image = BlockImage.objects.filter(
        block=block, source=source, status=BlockImageStatus.OK
    ).first()
    return image if image is not None and image.path else None


def block_image_get(*, block: Block, source: ImagerySource) -> CoreBlock | None:
    """The block's image from a source, or None when there is no usable image."""
    return block_image_read(image=block_image_row(block=block, source=source))


def block_image_read(*, image: BlockImage | None) -> CoreBlock | None:
    """The image of a ``block_image_row``, or None when there is none or its file is gone."""
    if image is None:
        return None
    path = data_path(image.path)
    if not path.is_file():
        return None
    return read_block(path)


def sample_pair(*, sample: Sample) -> ImagePair | None:
    """(image, mask) of a sample: its polygons burnt on its source's block image grid."""
    img = block_image_get(block=sample.block, source=sample.source)
    if img is None:
        return None
    polygons = [shapely.from_wkb(bytes(p.geometry.wkb)) for p in sample.polygons.all()]
    mask = rasterize_polygons(polygons, transform=img.transform, shape=img.image.shape[:2])
    return img.image, mask


def labels_fingerprint(items: Sequence[Any]) -> str:
    """A short hash of the labels a model was trained on: equal labels, equal fingerprint."""
    return hashlib.sha256(json.dumps(list(items), default=str).encode()).hexdigest()[:16]


def reviewed(samples: QuerySet[Sample]) -> QuerySet[Sample]:
    """The samples whose block was never assigned, or whose primary assignment is accepted."""
    assigned = Assignment.objects.filter(block=OuterRef("block"), agreement=False)
    accepted = assigned.filter(status=AssignmentStatus.ACCEPTED)
    return samples.filter(Q(~Exists(assigned)) | Q(Exists(accepted)))


def training_samples(*, campaign_id: int) -> list[Sample]:
    """Training samples of the campaign: split ``train``, and reviewed when the work flow is used.

    A sample counts when its block was never assigned (drawn by a lead, imported, the demo) or
    its primary annotator's assignment is accepted. Work still to do, in progress or waiting for
    review is left out: half-drawn polygons would teach the model wrong cropland.
    """
    return list(
        reviewed(Sample.objects.filter(block__campaign_id=campaign_id, split=SampleSplit.TRAIN))
        .select_related("block", "source")
        .prefetch_related("polygons")
        .order_by("pk")
    )


def validation_samples(*, campaign_id: int, province_id: int) -> list[Sample]:
    """The province's held-out samples that are finished (reviewed, as for training)."""
    return list(
        reviewed(
            Sample.objects.filter(
                block__campaign_id=campaign_id,
                block__province_id=province_id,
                split=SampleSplit.VALIDATION,
            )
        )
        .select_related("block", "source")
        .prefetch_related("polygons")
        .order_by("pk")
    )


def round_block_ids(*, rnd: Round, limit: int | None) -> list[int]:
    """The blocks a round predicts: every block of its provinces, or with ``limit`` (smoke runs,
    the demo) per province the labelled and systematic blocks first, then seed order."""
    ids: list[int] = []
    for province in rnd.provinces.all().order_by("adcode"):
        blocks = Block.objects.filter(campaign_id=rnd.campaign_id, province=province)
        if limit is None:
            ids += list(blocks.order_by("pk").values_list("pk", flat=True))
            continue
        labelled = Sample.objects.filter(block=OuterRef("pk"))
        systematic = SystematicSampleBlock.objects.filter(block=OuterRef("pk"))
        must = list(
            blocks.filter(Q(Exists(labelled)) | Q(Exists(systematic)))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        rest = list(
            blocks.exclude(pk__in=must)
            .order_by("seed_order", "pk")
            .values_list("pk", flat=True)[: max(0, limit - len(must))]
        )
        ids += must + rest
    return ids


def pixel_size_m(*, block: Block, shape: tuple[int, int]) -> tuple[float, float]:
    """Metres per pixel of a block image (lon/lat grid), east-west and north-south."""
    w, s, e, n = block.geometry.extent
    lat = math.radians((s + n) / 2)
    return ((e - w) * 111_320.0 * math.cos(lat) / shape[1], (n - s) * 110_574.0 / shape[0])


def read_prediction(path: str | Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32], Any]:
    """Mask, probability and transform of a prediction GeoTIFF (a path under DATA_DIR); both
    the current uint8 format and the float32 one of earlier rounds."""
    return read_prediction_file(data_path(path))


def json_safe(value: Any) -> Any:
    """NaN and infinity become None (JSON in PostgreSQL refuses them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value
