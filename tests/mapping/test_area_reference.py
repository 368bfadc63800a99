"""County-level official figures and the area a partial campaign is compared with (issue 13)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.gis.geos import Polygon
from django.core.management import CommandError, call_command

from mapping.models import AdminLevel, AdminUnit, Block, Campaign, OfficialStatistic
from mapping.services.area_reference import area_reference
from tests.factories import multipolygon

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    prov = AdminUnit.objects.create(level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省",
                                    name_en="Hubei", geometry=multipolygon((110, 30, 111, 31)))
    c1 = AdminUnit.objects.create(level=AdminLevel.COUNTY, adcode=420501, name_zh="西陵区",
                                  name_en="Xiling", parent=prov,
                                  geometry=multipolygon((110, 30, 110.1, 30.1)))
    c2 = AdminUnit.objects.create(level=AdminLevel.COUNTY, adcode=420502, name_zh="伍家岗区",
                                  name_en="Wujiagang", parent=prov,
                                  geometry=multipolygon((110.1, 30, 110.2, 30.1)))
    camp = Campaign.objects.create(slug="part", name="part", year=2020)
    # All four blocks of county 1, two of the four of county 2: 6 of the province's 400.
    corners = [(110, 30, c1), (110.05, 30, c1), (110, 30.05, c1), (110.05, 30.05, c1),
               (110.1, 30, c2), (110.15, 30, c2)]
    for n, (w, s, county) in enumerate(corners):
        Block.objects.create(campaign=camp, row=n, col=0, province=prov, county=county,
                             geometry=Polygon.from_bbox((w, s, w + 0.05, s + 0.05)))
    OfficialStatistic.objects.create(campaign=camp, province=prov, value=272, unit="10k_ha",
                                     status="VERIFIED", source="TNLS")
    return camp, prov, c1, c2


def test_partial_campaign_with_only_the_province_figure_is_not_comparable(world):
    camp, prov, *_ = world
    ref = area_reference(campaign=camp, province=prov)
    assert ref.scope == "none" and ref.official_ha is None
    assert ref.coverage_share == pytest.approx(6 * 0.0025 / 1.0)


def test_county_figures_sum_over_the_counties_the_campaign_covers(world):
    camp, prov, c1, c2 = world
    csv = ("county,value_ha,status,source\n"
           "420501,1200,VERIFIED,county bulletin\n"
           "伍家岗区,800,UNVERIFIED,county bulletin\n")
    from mapping.services.statistics import statistics_import

    report = statistics_import(campaign=camp, text=csv, level="county")
    assert report.created == 2
    ref = area_reference(campaign=camp, province=prov)
    # County 2 is only half covered: its figure would count land the campaign never maps.
    assert ref.scope == "counties" and ref.counties == [420501]
    assert ref.official_ha == pytest.approx(1200) and ref.status == "VERIFIED"
    assert ref.block_ids == set(Block.objects.filter(county=c1).values_list("pk", flat=True))
    # A figure for the campaign's part of county 2 (the demo's kind) counts it too.
    OfficialStatistic.objects.filter(province=c2).update(campaign_part=True, status="DEMO")
    ref = area_reference(campaign=camp, province=prov)
    assert ref.counties == [420501, 420502] and ref.official_ha == pytest.approx(2000)
    assert ref.status == "DEMO"  # the least official figure names the sum
    assert ref.block_ids is not None and len(ref.block_ids) == 6


def test_whole_province_uses_the_province_figure(world):
    camp, prov, *_ = world
    small = AdminUnit.objects.create(level=AdminLevel.PROVINCE, adcode=430000, name_zh="湖南省",
                                     name_en="Hunan", geometry=multipolygon((112, 28, 112.1, 28.1)))
    for i, (w, s) in enumerate([(112, 28), (112.05, 28), (112, 28.05), (112.05, 28.05)]):
        Block.objects.create(campaign=camp, row=100 + i, col=0, province=small,
                             geometry=Polygon.from_bbox((w, s, w + 0.05, s + 0.05)))
    OfficialStatistic.objects.create(campaign=camp, province=small, value=5000, unit="ha",
                                     status="UNVERIFIED", source="TNLS")
    ref = area_reference(campaign=camp, province=small)
    assert ref.scope == "province" and ref.official_ha == pytest.approx(5000)
    assert ref.status == "UNVERIFIED" and ref.block_ids is None


def test_county_import_is_all_or_nothing_with_reasons(world, tmp_path):
    camp, *_ = world
    bad = tmp_path / "c.csv"
    bad.write_text("county,value_ha,status,source\n420501,10,VERIFIED,x\n999999,5,VERIFIED,y\n"
                   "420502,3,MADE_UP,z\n", encoding="utf-8")
    with pytest.raises(CommandError) as e:
        call_command("import_statistics", str(bad), "--campaign", "part", "--level", "county")
    assert "unknown county '999999'" in str(e.value) and "MADE_UP" in str(e.value)
    assert not OfficialStatistic.objects.filter(province__level="county").exists()
    with pytest.raises(CommandError, match="county column"):
        bad.write_text("province,value_ha,status,source\n420000,1,VERIFIED,x\n")
        call_command("import_statistics", str(bad), "--campaign", "part", "--level", "county")
    good = tmp_path / "g.csv"
    good.write_text("county,province,value_ha,status,source\n西陵区,湖北省,10,DEMO,demo\n",
                    encoding="utf-8")
    out = StringIO()
    call_command("import_statistics", str(good), "--campaign", "part", "--level", "county",
                 stdout=out)
    assert "1 created" in out.getvalue()
    assert OfficialStatistic.objects.get(province__adcode=420501).status == "DEMO"
