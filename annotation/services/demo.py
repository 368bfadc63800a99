"""The synthetic demo: a campaign over real boundaries, synthetic imagery, users and samples."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import shapely
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.gis.geos import GEOSGeometry
from django.db import transaction
from rasterio.features import shapes

from annotation.models import (
    Assignment,
    CampaignWorkflow,
    CroplandSubtype,
    Sample,
    SampleKind,
    SamplePolygon,
    SampleSplit,
)
from annotation.services import assignment_create
from croplayer_site.roles import roles_ensure
from mapping.imagery.dem import write_synthetic_dem
from mapping.models import (
    AdminLevel,
    AdminUnit,
    Block,
    BlockImageStatus,
    Campaign,
    CampaignDem,
    ImagerySource,
)
from mapping.services.admin_units import admin_units_load_default
from mapping.services.grid import grid_build
from mapping.services.imagery import block_image_fetch
from mapping.services.members import campaign_members_add
from mapping.services.statistics import DEFAULT_STATISTICS, statistics_import

DEMO_SLUG = "demo-2020"
# Zoom 14 (about 9.5 m) keeps the demo's synthetic images near 600 px so that it loads in
# about a minute; real campaigns use zoom 16 (about 2.4 m).
DEMO_ZOOM = 14
SEED = 2020
# 8 x 8 blocks (0.4 degree) in each of three provinces: Jianghan plain (Hubei), Dongting
# lake plain (Hunan) and the hills of Ganzhou (Jiangxi). Every round predicts every block on
# both sources (384 images), most of a round's time on a CPU: 8 x 8 rather than 10 x 10 keeps
# a played demo within about 15 minutes on a 2-core machine (issue 13).
WINDOWS = {
    420000: (112.50, 30.30, 112.90, 30.70),
    430000: (112.30, 28.80, 112.70, 29.20),
    360000: (114.80, 25.70, 115.20, 26.10),
}
SAMPLES_PER_PROVINCE = 8
# Coverage scenarios of the demo's images. The paper's shares (the synthetic source's default)
# are national: its 8-13 % snow-covered blocks are north China's winter imagery. The demo's
# three windows are subtropical lowlands and hills where snow on imagery is rare, so there
# snow is 1 % and the rest of the paper's snow share is bare winter fields (non-planting).
# Cloud and no-data stay the paper's: an interpreter calls a hidden field an artifact, which
# counts against the correctness criterion as it did in the paper.
DEMO_SCENARIO_SHARES = {
    "mapbox": {"planting": 50.7, "non_planting": 39.5, "cloudy": 8.5, "snow": 1.0, "nodata": 0.4},
    "google": {"planting": 41.3, "non_planting": 53.2, "cloudy": 1.9, "snow": 1.0, "nodata": 2.6},
}
# Blocks given to the demo annotator up front (in seed order); more come by self-assignment.
ASSIGNED_TO_ANNOTATOR = 12


@dataclass
class DemoReport:
    campaign: str
    blocks: int
    images: int
    samples: int
    logins: dict[str, str] = field(default_factory=dict)


def _users() -> dict[str, str]:
    groups = roles_ensure()
    logins = {}
    for name in ("annotator", "lead", "admin"):
        password = secrets.token_urlsafe(9)
        user, _ = User.objects.get_or_create(username=name)
        user.set_password(password)
        user.is_staff = name in ("lead", "admin")
        user.is_superuser = name == "admin"
        user.save()
        user.groups.set([groups[name]])
        logins[name] = password
    return logins


def _truth_polygons(truth_path: Path, min_pixels: int = 12) -> list[shapely.Polygon]:
    with rasterio.open(truth_path) as src:
        mask = src.read(1)
        transform = src.transform
    out = []
    for geom, value in shapes(mask, mask=mask == 1, transform=transform, connectivity=4):
        if value != 1:
            continue
        poly = shapely.geometry.shape(geom)
        if poly.area / abs(transform.a * transform.e) < min_pixels:
            continue
        poly = shapely.make_valid(poly.simplify(abs(transform.a) * 0.7))
        parts = getattr(poly, "geoms", [poly])
        out.extend(p for p in parts if p.geom_type == "Polygon" and not p.is_empty)
    return out


def demo_load(*, fetch_all: bool = True) -> DemoReport:
    """Create (or refresh) the demo; safe to run again."""
    if not AdminUnit.objects.filter(level=AdminLevel.PROVINCE).exists():
        admin_units_load_default()
    logins = _users()
    campaign, _ = Campaign.objects.update_or_create(
        slug=DEMO_SLUG,
        defaults={
            "name": "CropLayer demo 2020",
            "region": "China (demo windows)",
            "year": 2020,
            "zoom": DEMO_ZOOM,
        },
    )
    # The demo lead runs the demo campaign (a lead sees only the campaigns they are in).
    campaign_members_add(campaign=campaign, users=[User.objects.get(username="lead")])
    provinces = list(AdminUnit.objects.filter(level=AdminLevel.PROVINCE, adcode__in=WINDOWS))
    campaign.provinces.set(provinces)
    statistics_import(campaign=campaign, path=DEFAULT_STATISTICS)
    grid_build(campaign=campaign, within=list(WINDOWS.values()))
    demo_statistics_write(campaign=campaign)

    sources = {}
    for look in ("mapbox", "google"):
        sources[look], _ = ImagerySource.objects.update_or_create(
            slug=look,
            defaults={
                "name": f"{look.capitalize()} (synthetic)",
                "kind": "synthetic",
                "config": {"look": look, "seed": SEED, "write_truth": True,
                           "scenario_shares": DEMO_SCENARIO_SHARES[look]},
            },
        )
    # One synthetic DEM per window (with a 0.1 degree margin): the windows lie hundreds of
    # kilometres apart, and one raster over all of them was 11x the pixels, most never used.
    for adcode, (w, s, e, n) in WINDOWS.items():
        dem = Path(settings.DATA_DIR) / "dem" / f"demo_dem_{adcode}.tif"
        if not dem.exists():
            dem.parent.mkdir(parents=True, exist_ok=True)
            # 3 arc-seconds, like SRTM
            write_synthetic_dem(dem, (w - 0.1, s - 0.1, e + 0.1, n + 0.1), 1 / 1200, seed=SEED)
        CampaignDem.objects.get_or_create(
            campaign=campaign,
            path=str(dem.relative_to(settings.DATA_DIR)),
            defaults={"description": "synthetic DEM (3 arc-seconds)"},
        )

    # Seeded order for the annotators' queue until the first learning round sets priorities.
    blocks = list(Block.objects.filter(campaign=campaign).select_related("campaign"))
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(blocks))
    for b, o in zip(blocks, order, strict=True):
        b.seed_order = int(o)
    Block.objects.bulk_update(blocks, ["seed_order"], batch_size=1000)

    # Labelled samples: the first blocks of each province in seed order, drawn on Mapbox,
    # from the synthetic ground truth; every fourth is held out for validation.
    n_images = 0
    n_samples = 0
    admin_user = User.objects.get(username="admin")
    for adcode in WINDOWS:
        chosen = sorted(
            (b for b in blocks if b.province and b.province.adcode == adcode),
            key=lambda b: b.seed_order,
        )[:SAMPLES_PER_PROVINCE]
        for i, block in enumerate(chosen):
            image = block_image_fetch(block=block, source=sources["mapbox"])
            n_images += 1
            if image.status != BlockImageStatus.OK:
                continue
            truth = Path(settings.DATA_DIR) / image.path.replace(".tif", ".truth.tif")
            polygons = _truth_polygons(truth)
            with transaction.atomic():
                sample, _ = Sample.objects.update_or_create(
                    block=block,
                    source=sources["mapbox"],
                    defaults={
                        "kind": SampleKind.POSITIVE if polygons else SampleKind.NEGATIVE,
                        "split": SampleSplit.VALIDATION if i % 4 == 3 else SampleSplit.TRAIN,
                        "created_by": admin_user,
                    },
                )
                sample.polygons.all().delete()
                SamplePolygon.objects.bulk_create(
                    [
                        SamplePolygon(
                            sample=sample,
                            created_by=admin_user,
                            subtype=CroplandSubtype.IRRIGATED_DRY,
                            geometry=GEOSGeometry(memoryview(shapely.to_wkb(p)), srid=4326),
                        )
                        for p in polygons
                    ]
                )
            n_samples += 1
    _demo_work(campaign=campaign, blocks=blocks)
    return DemoReport(
        campaign=campaign.slug,
        blocks=len(blocks),
        images=n_images,
        samples=n_samples,
        logins=logins,
    )


# The demo's footprint figures: truth rendered at a quarter of the demo zoom's pixels per side
# (the landscape is drawn in ground units, so the cropland share holds; 16x less work).
DEMO_STATS_DECIMATION = 4
DEMO_STATS_SOURCE = (
    "croplayer demo: cropland of the synthetic ground truth (seed {seed}) inside the demo "
    "campaign's blocks of this county; not an official statistic"
)


def demo_statistics_write(*, campaign: Campaign) -> int:
    """The demo's own area figures: for each county its blocks touch, the ground truth's
    cropland inside those blocks, as a county figure with status DEMO that counts only the
    campaign's part of the county (``campaign_part``). The TNLS province figures stay as they
    are (the demo covers 5-10 % of each province, so they are not comparable). Returns how
    many figures were written."""
    from collections import defaultdict
    from decimal import Decimal

    from mapping.geo.grid import BlockId, block_raster
    from mapping.imagery.synthetic import truth_mask
    from mapping.models import OfficialStatistic, StatisticStatus

    per_county: dict[int, float] = defaultdict(float)
    for block in Block.objects.filter(campaign=campaign, county__isnull=False).order_by("pk"):
        w, s, e, n = block.geometry.extent
        full = block_raster((w, s, e, n), campaign.zoom)
        raster = type(full)(
            west=full.west, south=full.south, east=full.east, north=full.north,
            width=max(16, full.width // DEMO_STATS_DECIMATION),
            height=max(16, full.height // DEMO_STATS_DECIMATION),
        )
        truth = truth_mask(BlockId(block.row, block.col), raster, seed=SEED)
        lat = np.radians((s + n) / 2)
        block_ha = (e - w) * 111_320.0 * np.cos(lat) * (n - s) * 110_574.0 / 10_000.0
        per_county[block.county_id] += float(truth.mean()) * float(block_ha)
    with transaction.atomic():
        for county_id, ha in per_county.items():
            OfficialStatistic.objects.update_or_create(
                campaign=campaign,
                province_id=county_id,
                defaults={
                    "value": Decimal(f"{ha:.4f}"),
                    "unit": "ha",
                    "status": StatisticStatus.DEMO,
                    "source": DEMO_STATS_SOURCE.format(seed=SEED),
                    "evidence": "",
                    "campaign_part": True,
                },
            )
    return len(per_county)


def _demo_work(*, campaign: Campaign, blocks: list[Block]) -> None:
    """Self-assignment on, and the annotator's first blocks in seed order (the queue's order
    until a learning round sets priorities), so that "next block" works at once. Left alone on
    a second run once the annotator has work in the campaign."""
    CampaignWorkflow.objects.update_or_create(campaign=campaign, defaults={"self_assign": True})
    annotator = User.objects.get(username="annotator")
    if Assignment.objects.filter(user=annotator, block__campaign=campaign).exists():
        return
    taken = set(
        Assignment.objects.filter(block__campaign=campaign).values_list("block_id", flat=True)
    )
    first = [b.pk for b in sorted(blocks, key=lambda b: b.seed_order) if b.pk not in taken]
    assignment_create(
        lead=User.objects.get(username="lead"),
        campaign=campaign,
        block_ids=first[:ASSIGNED_TO_ANNOTATOR],
        assignees=[annotator],
    )
