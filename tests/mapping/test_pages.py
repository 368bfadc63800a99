"""Pages render for each role and show what a lead needs (statistics status, map)."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon

from mapping.models import AdminLevel, AdminUnit, Block, Campaign, OfficialStatistic
from mapping.services.grid import grid_build
from mapping.services.members import campaign_members_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(db, users):
    p = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=110000, name_zh="北京市", name_en="Beijing",
        geometry=MultiPolygon(Polygon.from_bbox((116.3, 39.9, 116.4, 40.0)), srid=4326))
    c = Campaign.objects.create(slug="bj", name="Beijing 2020", region="Beijing", year=2020)
    campaign_members_add(campaign=c, users=[users["lead"]])
    c.provinces.add(p)
    grid_build(campaign=c)
    OfficialStatistic.objects.create(campaign=c, province=p, value="9.35", unit="10k_ha",
                                     status="UNVERIFIED", source="not found")
    return c


def test_home_overview_and_block_pages(campaign, users, login):
    c = login("lead")
    home = c.get("/").content.decode()
    assert "Beijing 2020" in home and "lead" in home
    page = c.get(f"/campaigns/{campaign.slug}/").content.decode()
    assert "Unverified" in page and "status-unverified" in page and "北京市" in page
    assert "leaflet" in page.lower()
    assert "No imagery fetched yet" in page
    block = Block.objects.filter(campaign=campaign).first()
    assert block.code in c.get(f"/blocks/{block.pk}/").content.decode()


def test_pages_hidden_from_users_without_role(campaign, users, login):
    c = login("outsider")
    assert "Beijing 2020" not in c.get("/").content.decode()
    assert c.get(f"/campaigns/{campaign.slug}/").status_code == 404


def test_chinese_interface(campaign, users, login):
    c = login("annotator")
    r = c.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert r.status_code == 200 and r.headers["Content-Language"] == "zh-hans"
