"""A tiny synthetic campaign for round tests (helpers only; the tests are in test_rounds*.py).

Two provinces of 2 x 2 blocks at zoom 12 (about 150 px per block) on two synthetic sources,
a synthetic DEM, official figures, training and held-out samples drawn from the synthetic
ground truth, coverage labels and verdicts, so every stage of a round has real work to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from django.conf import settings
from django.contrib.gis.geos import GEOSGeometry, Polygon

from annotation.models import (
    CoverageLabel,
    CroplandSubtype,
    Sample,
    SampleKind,
    SamplePolygon,
    SampleSplit,
    VerdictLabel,
)
from annotation.services.demo import _truth_polygons
from mapping.geo.grid import BlockId, grid_for
from mapping.imagery.dem import write_synthetic_dem
from mapping.models import (
    AdminLevel,
    AdminUnit,
    AreaUnit,
    Block,
    BlockImage,
    BlockImageStatus,
    Campaign,
    CampaignDem,
    ImagerySource,
    OfficialStatistic,
    StatisticStatus,
)
from mapping.services.imagery import block_image_fetch
from tests.factories import multipolygon

# (adcode, name, first row, first col) on the 0.05 degree grid; 2 x 2 blocks each.
PROVINCES = ((420000, "Hubei", 2406, 5850), (430000, "Hunan", 2376, 5846))

# Small but complete: a few training steps, tiny models, every stage exercised.
TINY_CONFIG: dict[str, Any] = {
    "segmenter_preset": "tiny",
    "epochs": 2,
    "steps_per_epoch": 3,
    "batch_size": 2,
    "crop_size": 64,
    "warmup_steps": 1,
    "lr": 1e-3,
    "window": 128,
    "overlap": 32,
    "iqa_preset": "tiny",
    "iqa_epochs": 1,
    "iqa_min_labels": 4,
    "correctness_min_verdicts": 4,
    "batch_blocks": 3,
    "select_per_province": 2,
    "spread_cell_deg": 0.05,
    "validation_share": 0.25,
}


@dataclass
class TinyCampaign:
    campaign: Campaign
    provinces: list[AdminUnit]
    sources: list[ImagerySource]
    blocks: list[Block]


_IMAGES: dict[tuple[str, str, str], dict[str, Any]] = {}


def _image_ensure(*, block: Block, source: ImagerySource) -> None:
    key = (block.campaign.slug, source.slug, block.code)
    known = _IMAGES.get(key)
    if known and (Path(settings.DATA_DIR) / known["path"]).is_file():
        BlockImage.objects.create(block=block, source=source, status=BlockImageStatus.OK,
                                  **known)
        return
    img = block_image_fetch(block=block, source=source)
    assert img.status == BlockImageStatus.OK, img.reason
    _IMAGES[key] = {"path": img.path, "checksum": img.checksum, "width": img.width,
                    "height": img.height}


def tiny_campaign_create(*, user: Any, slug: str = "tiny-2020") -> TinyCampaign:
    grid = grid_for(0.05)
    campaign = Campaign.objects.create(slug=slug, name="Tiny", region="test", year=2020, zoom=12)
    provinces, blocks = [], []
    for adcode, name, row0, col0 in PROVINCES:
        corners = [grid.bounds(BlockId(row0 + dr, col0 + dc)) for dr in (0, 1) for dc in (0, 1)]
        w = min(c[0] for c in corners)
        s = min(c[1] for c in corners)
        e = max(c[2] for c in corners)
        n = max(c[3] for c in corners)
        prov, _ = AdminUnit.objects.get_or_create(
            level=AdminLevel.PROVINCE, adcode=adcode,
            defaults={"name_zh": name, "name_en": name, "geometry": multipolygon((w, s, e, n))})
        provinces.append(prov)
        for dr in (0, 1):
            for dc in (0, 1):
                bid = BlockId(row0 + dr, col0 + dc)
                blocks.append(Block.objects.create(
                    campaign=campaign, row=bid.row, col=bid.col, province=prov,
                    geometry=Polygon.from_bbox(grid.bounds(bid)),
                    seed_order=len(blocks)))
        OfficialStatistic.objects.create(
            campaign=campaign, province=prov, value=1, unit=AreaUnit.HA_10K,
            status=StatisticStatus.VERIFIED, source="test")
    campaign.provinces.set(provinces)
    sources = []
    for look in ("google", "mapbox"):
        src, _ = ImagerySource.objects.update_or_create(
            slug=look, defaults={"name": look, "kind": "synthetic", "enabled": True,
                                 "config": {"look": look, "seed": 7, "write_truth": True}})
        sources.append(src)
    ImagerySource.objects.exclude(slug__in=["google", "mapbox"]).update(enabled=False)
    dem = Path(settings.DATA_DIR) / "dem" / f"{slug}.tif"
    dem.parent.mkdir(parents=True, exist_ok=True)
    dem.unlink(missing_ok=True)
    ext = [b.geometry.extent for b in blocks]
    write_synthetic_dem(dem, (min(x[0] for x in ext) - 0.05, min(x[1] for x in ext) - 0.05,
                              max(x[2] for x in ext) + 0.05, max(x[3] for x in ext) + 0.05),
                        1 / 600, seed=7)
    CampaignDem.objects.create(campaign=campaign, path=str(dem))
    # Images of every block on both sources but one per province: the round must fetch those
    # itself (``fetch_missing_images``). Synthetic images are deterministic, so files made by an
    # earlier test of the session are reused.
    for i, b in enumerate(blocks):
        for src in sources:
            if i % 4 == 3 and src.slug == "google":
                continue
            _image_ensure(block=b, source=src)
    # Samples: blocks 0-2 of each province on mapbox; block 2 held out for validation.
    mapbox = sources[1]
    for p_index in range(len(provinces)):
        for k in range(3):
            block = blocks[p_index * 4 + k]
            img = block.images.get(source=mapbox)
            truth = Path(settings.DATA_DIR) / img.path.replace(".tif", ".truth.tif")
            polys = _truth_polygons(truth, min_pixels=4)
            sample = Sample.objects.create(
                block=block, source=mapbox, created_by=user,
                kind=SampleKind.POSITIVE if polys else SampleKind.NEGATIVE,
                split=SampleSplit.VALIDATION if k == 2 else SampleSplit.TRAIN)
            SamplePolygon.objects.bulk_create([
                SamplePolygon(sample=sample, created_by=user,
                              subtype=CroplandSubtype.IRRIGATED_DRY,
                              geometry=GEOSGeometry(memoryview(shapely.to_wkb(p)), srid=4326))
                for p in polys])
    # Coverage labels and verdicts on every block and source (two classes each, so the
    # classifier and the correctness model have something to separate).
    for i, b in enumerate(blocks):
        for j, src in enumerate(sources):
            CoverageLabel.objects.create(block=b, source=src, user=user,
                                         coverage_type="planting" if (i + j) % 3 else "cloudy")
            VerdictLabel.objects.create(block=b, source=src, user=user,
                                        verdict="tp" if (i + j) % 2 else "fp")
    return TinyCampaign(campaign=campaign, provinces=provinces, sources=sources, blocks=blocks)
