"""``manage.py campaign_create`` and its service: a campaign in one step, all or nothing, with
a one-line reason for each refusal."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.management import CommandError, call_command

from mapping.models import AdminLevel, AdminUnit, Campaign
from mapping.services.campaigns import CampaignCreateError, campaign_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def provinces():
    out = {}
    for adcode, zh, en, x in ((420000, "湖北省", "Hubei", 112), (430000, "湖南省", "Hunan", 111)):
        out[adcode] = AdminUnit.objects.create(
            level=AdminLevel.PROVINCE,
            adcode=adcode,
            name_zh=zh,
            name_en=en,
            geometry=MultiPolygon(Polygon.from_bbox((x, 29, x + 1, 30)), srid=4326),
        )
    return out


def cmd(*args: str) -> str:
    out = StringIO()
    call_command("campaign_create", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_with_provinces_and_json(provinces):
    out = cmd(
        "hubei-2021",
        "--name",
        "Hubei 2021",
        "--year",
        "2021",
        "--provinces",
        "420000",
        "430000",
        "--zoom",
        "15",
        "--json",
    )
    data = json.loads(out)
    assert data == {
        "slug": "hubei-2021",
        "name": "Hubei 2021",
        "year": 2021,
        "region": "Hubei, Hunan",
        "zoom": 15,
        "block_size_deg": 0.05,
        "provinces": [420000, 430000],
    }
    c = Campaign.objects.get(slug="hubei-2021")
    assert set(c.provinces.values_list("adcode", flat=True)) == {420000, 430000}


def test_national_campaign_needs_no_boundaries_yet():
    out = cmd("china-2020", "--name", "China 2020", "--year", "2020")
    assert out.strip() == "created china-2020: China 2020, 2020, every imported province, zoom 16"
    c = Campaign.objects.get()
    assert c.region == "China" and c.zoom == 16 and not c.provinces.exists()


def test_comma_separated_provinces_like_imagery_fetch(provinces):
    cmd("c", "--name", "C", "--year", "2020", "--provinces", "420000,430000", "--region", "Two")
    c = Campaign.objects.get()
    assert c.region == "Two" and c.provinces.count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provinces", "420000", "990000"], "no province with adcode 990000"),
        (["--provinces", "hubei"], "--provinces: 'hubei' is not an adcode"),
        (["--year", "1800"], "year 1800: must be between 1990 and 2100"),
        (["--zoom", "30"], "zoom 30: must be between 1 and 22"),
        (["--zoom", "0"], "zoom 0: must be between 1 and 22"),
        (["--name", "  "], "the name is empty"),
    ],
)
def test_refusals_are_one_clear_line_and_write_nothing(provinces, args, message):
    base = {"--name": "X", "--year": "2020"}
    for flag in ("--name", "--year"):
        if flag in args:
            base.pop(flag)
    argv = ["x-2020", *[v for kv in base.items() for v in kv], *args]
    with pytest.raises(CommandError) as e:
        cmd(*argv)
    text = str(e.value)
    assert message in text and "nothing created" in text and "\n" not in text
    assert not Campaign.objects.exists()


def test_duplicate_slug_is_refused_and_the_first_campaign_kept(provinces):
    cmd("dup", "--name", "First", "--year", "2020", "--provinces", "420000")
    with pytest.raises(CommandError, match="a campaign 'dup' already exists; nothing created"):
        cmd("dup", "--name", "Second", "--year", "2021")
    c = Campaign.objects.get()
    assert c.name == "First" and c.provinces.count() == 1


def test_bad_slug_and_missing_boundaries():
    with pytest.raises(CampaignCreateError, match="letters, digits, hyphens"):
        campaign_create(slug="China 2020", name="C", year=2020)
    with pytest.raises(CampaignCreateError, match="run `manage.py import_admin_units --default`"):
        campaign_create(slug="c", name="C", year=2020, province_adcodes=[420000])
    assert not Campaign.objects.exists()


def test_year_as_text_is_an_argument_error():
    with pytest.raises(CommandError, match="invalid int value"):
        cmd("c", "--name", "C", "--year", "twenty")
