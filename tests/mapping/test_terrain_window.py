"""Blocks read their DEM window from the campaign's DEM, also when it comes in tiles."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from django.contrib.gis.geos import MultiPolygon, Polygon
from rasterio.transform import from_origin

from learning.core.features.terrain import terrain_features
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, CampaignDem
from mapping.services.grid import grid_build
from mapping.services.terrain import DemError, block_dem_window

pytestmark = pytest.mark.django_db
RES = 1 / 1200  # 3 arc-seconds


def _tile(path, west, north, cols, rows, fn):
    yy, xx = np.mgrid[0:rows, 0:cols]
    lon = west + (xx + 0.5) * RES
    lat = north - (yy + 0.5) * RES
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(west, north, RES, RES), nodata=np.nan) as ds:
        ds.write(fn(lon, lat).astype("float32"), 1)


@pytest.fixture
def campaign(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    p = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=530000, name_zh="云南省", name_en="Yunnan",
        geometry=MultiPolygon(Polygon.from_bbox((101.0, 25.0, 101.05, 25.05)), srid=4326))
    c = Campaign.objects.create(slug="yn", name="yn", region="r", year=2020)
    c.provinces.add(p)
    grid_build(campaign=c)
    return c


def plane(lon, lat):  # 1,000 m per degree eastwards: a gentle, known slope
    return 1500 + 1000 * (lon - 101.0)


def test_two_tiles_make_one_window(campaign, tmp_path):
    # West tile covers 100.9..101.025, east tile 101.025..101.2: the block spans both.
    _tile(tmp_path / "w.tif", 100.9, 25.1, int(0.125 / RES), int(0.2 / RES), plane)
    _tile(tmp_path / "e.tif", 101.025, 25.1, int(0.175 / RES), int(0.2 / RES), plane)
    CampaignDem.objects.create(campaign=campaign, path="w.tif")
    CampaignDem.objects.create(campaign=campaign, path="e.tif")
    block = Block.objects.get(campaign=campaign)
    window = block_dem_window(block=block)
    assert not np.isnan(window.elevation).any()
    feats = terrain_features(window)
    assert feats.elevation == pytest.approx(1525, abs=1)
    assert feats.slope > 0


def test_no_dem_and_uncovered_block_give_clear_errors(campaign, tmp_path):
    block = Block.objects.get(campaign=campaign)
    with pytest.raises(DemError, match="has no DEM"):
        block_dem_window(block=block)
    _tile(tmp_path / "far.tif", 110.0, 30.0, 50, 50, plane)
    CampaignDem.objects.create(campaign=campaign, path="far.tif")
    with pytest.raises(DemError, match="no DEM file covers"):
        block_dem_window(block=block)
