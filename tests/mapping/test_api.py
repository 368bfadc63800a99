"""Mapping API: who may see what, GeoJSON blocks, TileJSON and XYZ tiles with caching."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.test import Client
from PIL import Image

from mapping.geo.grid import BlockId, block_raster, tile_range
from mapping.models import AdminLevel, AdminUnit, Block, BlockImage, Campaign, ImagerySource
from mapping.services.grid import grid_build
from mapping.services.imagery import block_image_fetch
from mapping.services.members import campaign_members_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(db, settings, tmp_path, users):
    settings.DATA_DIR = tmp_path
    p = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE,
        adcode=420000,
        name_zh="湖北省",
        name_en="Hubei",
        geometry=MultiPolygon(Polygon.from_bbox((112.5, 30.3, 112.65, 30.4)), srid=4326),
    )
    c = Campaign.objects.create(slug="demo", name="Demo", region="Hubei", year=2020, zoom=13)
    campaign_members_add(campaign=c, users=[users["lead"]])
    c.provinces.add(p)
    grid_build(campaign=c)
    return c


def test_anonymous_is_refused_everywhere(campaign, login):
    c = login()
    assert c.get("/api/campaigns/").status_code == 403
    assert c.get(f"/api/campaigns/{campaign.slug}/blocks.geojson").status_code == 403
    assert c.get("/").status_code == 302  # to the login page


def test_user_without_role_sees_nothing(campaign, users, login):
    c = login("outsider")
    assert c.get("/api/campaigns/").json() == []
    assert c.get(f"/api/campaigns/{campaign.slug}/blocks.geojson").status_code == 404
    block = Block.objects.filter(campaign=campaign).first()
    assert c.get(f"/api/blocks/{block.pk}/").status_code == 404


@pytest.mark.parametrize("role", ["annotator", "lead", "admin"])
def test_campaign_list_and_blocks(campaign, users, role, login):
    c = login(role)
    data = c.get("/api/campaigns/").json()
    assert data[0]["n_blocks"] == 6 and data[0]["slug"] == "demo"
    fc = c.get(f"/api/campaigns/{campaign.slug}/blocks.geojson").json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 6
    assert fc["features"][0]["properties"]["province"] == "湖北省"


def test_blocks_filters_and_bad_input(campaign, users, login):
    c = login("lead")
    url = f"/api/campaigns/{campaign.slug}/blocks.geojson"
    fc = c.get(url, {"bbox": "112.5,30.3,112.55,30.35"}).json()
    assert len(fc["features"]) == 1
    fc = c.get(url, {"limit": 2}).json()
    assert len(fc["features"]) == 2 and fc["truncated"] is True
    r = c.get(url, {"bbox": "1,2,3"})
    assert r.status_code == 400 and "bbox" in r.json()
    r = c.get(url, {"bbox": "120,30,110,31"})
    assert r.status_code == 400
    assert c.get("/api/campaigns/nope/blocks.geojson").status_code == 404


def test_tiles_served_with_cache_headers(campaign, users, login):
    src = ImagerySource.objects.create(
        slug="mapbox", name="m", kind="synthetic", config={"look": "mapbox", "seed": 1}
    )
    block = Block.objects.filter(campaign=campaign).first()
    image = block_image_fetch(block=block, source=src)
    assert image.status == "ok", image.reason
    c = login("annotator")
    tj = c.get(f"/api/blocks/{block.pk}/imagery/mapbox/tilejson.json").json()
    assert tj["tilejson"] == "2.2.0" and tj["tiles"][0].endswith("/{z}/{x}/{y}.png")
    rng = tile_range(block.geometry.extent, 14)
    url = f"/api/blocks/{block.pk}/imagery/mapbox/14/{rng.x_min}/{rng.y_min}.png"
    r = c.get(url)
    assert r.status_code == 200 and r["Content-Type"] == "image/png"
    assert "max-age" in r["Cache-Control"] and r["ETag"]
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    assert img.shape == (256, 256, 4) and img[..., 3].any()
    assert c.get(url, HTTP_IF_NONE_MATCH=r["ETag"]).status_code == 304
    # outside the block: no content; zoom out of range: 400 with the reason; no image: 404
    assert c.get(f"/api/blocks/{block.pk}/imagery/mapbox/14/0/0.png").status_code == 204
    bad = c.get(f"/api/blocks/{block.pk}/imagery/mapbox/3/0/0.png")
    assert bad.status_code == 400 and "zoom" in str(bad.json())
    assert c.get(f"/api/blocks/{block.pk}/imagery/google/tilejson.json").status_code == 404
    assert c.get("/api/blocks/999999/").status_code == 404


def test_block_detail_lists_images(campaign, users, login):
    block = Block.objects.filter(campaign=campaign).first()
    src = ImagerySource.objects.create(
        slug="google", name="g", kind="synthetic", config={"look": "google", "seed": 1}
    )
    BlockImage.objects.create(block=block, source=src, status="failed", reason="upstream HTTP 500")
    d = login("annotator").get(f"/api/blocks/{block.pk}/").json()
    assert d["code"] == str(BlockId(block.row, block.col))
    assert d["images"] == [
        {
            "source": "google",
            "status": "failed",
            "reason": "upstream HTTP 500",
            "width": None,
            "height": None,
            "checksum": "",
            "fetched_at": None,
        }
    ]
    raster = block_raster(block.geometry.extent, 13)
    assert raster.width > 100


def test_openapi_schema_lists_endpoints(users, login):
    r = login("admin").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    text = r.content.decode()
    assert "/api/campaigns/{slug}/blocks.geojson" in text
    assert "/api/blocks/{block_id}/imagery/{source}/{z}/{x}/{y}.png" in text


def test_login_page_and_healthz(db):
    c = Client()
    assert c.get("/accounts/login/").status_code == 200
    health = c.get("/healthz").json()
    # "ok" needs a live worker (tests/site/test_liveness.py); the web side answers either way.
    assert health["status"] in ("ok", "degraded") and health["broker"] == "ok"
