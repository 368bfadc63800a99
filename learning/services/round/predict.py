"""The predicting stage: how many blocks a batch holds, and one batch of blocks x sources
(mask GeoTIFF, cropland polygons, coverage type).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import shapely
from django.contrib.gis.geos import GEOSGeometry, MultiPolygon
from django.db import IntegrityError, transaction
from rasterio.features import shapes as raster_shapes

from learning.core.segmentation.inference import write_prediction
from learning.models import (
    BlockPrediction,
    BlockScore,
    ModelKind,
    ModelVersion,
    Round,
    RoundState,
)
from learning.services.config import RoundConfig
from learning.services.data import block_image_row, data_path, pixel_size_m, round_sources
from learning.services.image_quality import image_quality_of
from learning.services.round.common import block_image_read_or_none, bundle_load
from learning.services.round.machine import stage_check
from learning.services.round.progress import round_heartbeat
from mapping.models import Block
from mapping.services.imagery import block_image_fetch


def predict_seconds_per_image(*, rnd: Round) -> float | None:
    """Seconds one block image took in the predict stage (model, windows, writing the mask,
    polygons; imagery fetched on the way included) in the campaign's latest earlier round that
    predicted with the same engine; None when none has."""
    engine = (rnd.config or {}).get("segmenter_engine", "auto")
    earlier = (
        Round.objects.filter(campaign_id=rnd.campaign_id, pk__lt=rnd.pk)
        .exclude(timings={})
        .order_by("-pk")
        .only("pk", "timings", "config")[:20]
    )
    for other in earlier:
        seconds = float((other.timings or {}).get(RoundState.PREDICTING, 0.0))
        if seconds <= 0 or (other.config or {}).get("segmenter_engine", "auto") != engine:
            continue
        images = BlockPrediction.objects.filter(round=other).count()
        if images:
            return seconds / images
    return None


def predict_batch_blocks(*, rnd: Round, cfg: RoundConfig, n_sources: int) -> int:
    """Blocks per predict task: about ``cfg.batch_seconds`` of work each (a long task holds a
    gpu worker's lease and redelivers a lot when it dies; a short one pays the queue's cost per
    task), else ``cfg.batch_blocks``."""
    if cfg.batch_seconds is None:
        return cfg.batch_blocks
    per_image = predict_seconds_per_image(rnd=rnd)
    if per_image is None:
        return cfg.batch_blocks
    return max(1, min(1000, round(cfg.batch_seconds / (per_image * max(1, n_sources)))))


def mask_geometry(mask: np.ndarray, transform: Any) -> MultiPolygon | None:
    """The mask's cropland as a WGS 84 MultiPolygon (slightly simplified), None when empty."""
    polys = []
    tol = abs(transform.a) * 0.5
    for geom, value in raster_shapes(mask, mask=mask == 1, transform=transform, connectivity=4):
        if value != 1:
            continue
        poly = shapely.make_valid(shapely.geometry.shape(geom).simplify(tol))
        polys += [
            p for p in getattr(poly, "geoms", [poly]) if p.geom_type == "Polygon" and not p.is_empty
        ]
    if not polys:
        return None
    multi = GEOSGeometry(memoryview(shapely.to_wkb(shapely.MultiPolygon(polys))), srid=4326)
    return multi if isinstance(multi, MultiPolygon) else MultiPolygon(multi, srid=4326)


def predict_items(*, rnd: Round, cfg: RoundConfig, items: list[int]) -> int:
    ck = rnd.checkpoint or {}
    seg_mv = ModelVersion.objects.get(pk=ck["segmenter"])
    engine = bundle_load(ModelKind.SEGMENTER, seg_mv.bundle_path)
    iqa_mv = ModelVersion.objects.filter(pk=ck.get("iqa")).first() if ck.get("iqa") else None
    iqa = bundle_load(ModelKind.IQA, iqa_mv.bundle_path) if iqa_mv else None
    sources = round_sources(rnd=rnd)
    done = 0
    for block in Block.objects.filter(pk__in=items).select_related("campaign").order_by("pk"):
        stage_check(rnd.pk, RoundState.PREDICTING)
        round_heartbeat(round_id=rnd.pk)
        for source in sources:
            if BlockPrediction.objects.filter(
                block=block, source=source, model_version=seg_mv
            ).exists():
                continue
            row = block_image_row(block=block, source=source)
            img = block_image_read_or_none(rnd=rnd, block=block, source=source, image=row)
            if img is None and cfg.fetch_missing_images:
                block_image_fetch(block=block, source=source)
                row = block_image_row(block=block, source=source)
                img = block_image_read_or_none(rnd=rnd, block=block, source=source, image=row)
            if img is None or row is None:
                continue  # no imagery upstream: nothing to predict, counted as done
            batch = {} if cfg.predict_batch_windows is None else {
                "batch_size": cfg.predict_batch_windows}
            mask, prob = engine.predict_block(
                img.image, window=cfg.window, overlap=min(cfg.overlap, cfg.window // 2), **batch
            )
            rel = (
                Path("predictions")
                / rnd.campaign.slug
                / seg_mv.name
                / source.slug
                / f"{block.code}.tif"
            )
            write_prediction(
                data_path(rel), mask=mask, confidence=prob, crs=img.crs, transform=img.transform
            )
            px, py = pixel_size_m(block=block, shape=mask.shape)
            coverage = iqa.predict([img.image]).labels[0].value if iqa is not None else ""
            # Once per image: scoring then need not read it again.
            image_quality_of(image=row, pixels=img.image)
            try:
                with transaction.atomic():
                    pred = BlockPrediction.objects.create(
                        block=block,
                        source=source,
                        model_version=seg_mv,
                        round=rnd,
                        mask_path=str(rel),
                        geometry=mask_geometry(mask, img.transform),
                        cropland_fraction=float(mask.mean()),
                        cropland_area_ha=float(mask.sum()) * px * py / 10_000.0,
                        mean_confidence=float(np.mean(np.abs(2.0 * prob - 1.0))),
                    )
                    BlockScore.objects.create(prediction=pred, round=rnd, coverage_type=coverage)
            except IntegrityError:
                continue  # the same block delivered twice: the other copy won
            done += 1
    return done
