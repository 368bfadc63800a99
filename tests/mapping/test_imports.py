"""import_admin_units and import_statistics: all or nothing, with clear errors."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from django.core.management import CommandError, call_command

from mapping.models import AdminLevel, AdminUnit, Campaign, OfficialStatistic
from mapping.services.admin_units import DEFAULT_PROVINCES

pytestmark = pytest.mark.django_db


def _provinces(path: Path, *, crs="EPSG:4326", geoms=None, **cols) -> Path:
    data = {
        "province_adcode": [420000, 430000],
        "province_name": ["湖北省", "湖南省"],
        "short_name": ["湖北", "湖南"],
    }
    data.update(cols)
    geoms = geoms or [shapely.box(108, 29, 116, 33), shapely.box(108, 24, 114, 29)]
    gpd.GeoDataFrame(data, geometry=geoms, crs=crs).to_file(path, driver="GPKG")
    return path


def _counties(path: Path, parent=420000) -> Path:
    gpd.GeoDataFrame(
        {
            "district_adcode": [420501, 420502],
            "district_name": ["西陵区", "夷陵区"],
            "city_adcode": [parent, parent],
        },
        geometry=[shapely.box(110, 30, 111, 31), shapely.box(111, 30, 112, 31)],
        crs="EPSG:4326",
    ).to_file(path, driver="GeoJSON")
    return path


def test_import_provinces_then_counties_attach_to_province(tmp_path):
    call_command("import_admin_units", str(_provinces(tmp_path / "p.gpkg")), "--level", "province")
    hubei = AdminUnit.objects.get(level=AdminLevel.PROVINCE, adcode=420000)
    assert hubei.name_en == "Hubei" and hubei.geometry.srid == 4326
    call_command("import_admin_units", str(_counties(tmp_path / "c.geojson")), "--level", "county")
    c = AdminUnit.objects.get(level=AdminLevel.COUNTY, adcode=420501)
    assert c.parent == hubei and c.name_en == "Xiling"


def test_wrong_crs_is_rejected_unless_reprojected(tmp_path):
    path = _provinces(
        tmp_path / "p.gpkg",
        crs="EPSG:3857",
        geoms=[shapely.box(1.2e7, 3.3e6, 1.3e7, 3.9e6), shapely.box(1.2e7, 2.8e6, 1.27e7, 3.3e6)],
    )
    with pytest.raises(CommandError, match=r"not EPSG:4326.*--reproject"):
        call_command("import_admin_units", str(path), "--level", "province")
    assert AdminUnit.objects.count() == 0
    call_command("import_admin_units", str(path), "--level", "province", "--reproject")
    x0, y0, x1, y1 = AdminUnit.objects.get(adcode=420000).geometry.extent
    assert 107 < x0 < 108 and 28 < y0 < 29


def test_missing_fields_invalid_geometry_and_unknown_parent_write_nothing(tmp_path):
    no_name = tmp_path / "n.gpkg"
    gpd.GeoDataFrame(
        {"province_adcode": [1]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326
    ).to_file(no_name)
    with pytest.raises(CommandError, match="missing field.*province_name"):
        call_command("import_admin_units", str(no_name), "--level", "province")
    bow_tie = shapely.Polygon([(108, 29), (116, 33), (116, 29), (108, 33)])
    bad = _provinces(tmp_path / "bad.gpkg", geoms=[shapely.box(108, 29, 116, 33), bow_tie])
    with pytest.raises(CommandError, match="feature 1: invalid geometry.*Self-intersection"):
        call_command("import_admin_units", str(bad), "--level", "province")
    assert AdminUnit.objects.count() == 0  # the valid first feature was not written either
    with pytest.raises(CommandError, match="unknown city code.*420000|unknown city code"):
        call_command(
            "import_admin_units",
            str(_counties(tmp_path / "c.geojson", parent=999999)),
            "--level",
            "county",
        )
    assert AdminUnit.objects.count() == 0


def test_custom_field_mapping(tmp_path):
    path = tmp_path / "custom.geojson"
    gpd.GeoDataFrame(
        {"code": [420000], "zh": ["湖北省"], "en": ["Hubei Province"]},
        geometry=[shapely.box(108, 29, 116, 33)],
        crs=4326,
    ).to_file(path)
    call_command(
        "import_admin_units",
        str(path),
        "--level",
        "province",
        "--adcode-field",
        "code",
        "--name-field",
        "zh",
        "--name-en-field",
        "en",
    )
    assert AdminUnit.objects.get(adcode=420000).name_en == "Hubei Province"


def test_default_boundaries_and_statistics_keep_status():
    call_command("import_admin_units", "--default")
    assert AdminUnit.objects.filter(level=AdminLevel.PROVINCE).count() == 34
    assert AdminUnit.objects.filter(level=AdminLevel.COUNTY).count() == 2891
    assert AdminUnit.objects.filter(level=AdminLevel.CITY).count() == 375
    assert DEFAULT_PROVINCES.stat().st_size < 1_000_000
    camp = Campaign.objects.create(slug="china-2020", name="China", region="China", year=2020)
    out = StringIO()
    call_command("import_statistics", "--default", "--campaign", "china-2020", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["created"] == 32 and report["skipped"] == ["line 2: national total"]
    beijing = OfficialStatistic.objects.get(campaign=camp, province__adcode=110000)
    assert beijing.status == "UNVERIFIED" and float(beijing.hectares) == pytest.approx(93_500)
    taiwan = OfficialStatistic.objects.get(campaign=camp, province__adcode=710000)
    # Not part of the survey, and the shipped evidence says so (clean text from shared/).
    assert taiwan.status == "OTHER_SOURCE" and "different definition" in taiwan.evidence


def test_statistics_unknown_province_and_bad_values_write_nothing(tmp_path):
    call_command("import_admin_units", str(_provinces(tmp_path / "p.gpkg")), "--level", "province")
    Campaign.objects.create(slug="c", name="c", region="r", year=2020)
    csv = tmp_path / "s.csv"
    csv.write_text(
        "province_zh,cultivated_land_10k_ha,status,source\n"
        "湖北,476.86,VERIFIED,bulletin\n"
        "火星,1,VERIFIED,x\n"
        "湖南,-3,VERIFIED,y\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError, match=r"unknown province '火星'.*not a non-negative number"):
        call_command("import_statistics", str(csv), "--campaign", "c")
    assert OfficialStatistic.objects.count() == 0
    csv.write_text("province,value\n湖北,1\n", encoding="utf-8")
    with pytest.raises(CommandError, match="missing a value column"):
        call_command("import_statistics", str(csv), "--campaign", "c")
    csv.write_text("province,value,unit,status,source\n湖北,9051.26,10k_mu,BOGUS,x\n")
    with pytest.raises(CommandError, match="status 'BOGUS'"):
        call_command("import_statistics", str(csv), "--campaign", "c")
    csv.write_text("province,value,unit,status,source\n湖北,15,10k_mu,UNVERIFIED,x\n")
    call_command("import_statistics", str(csv), "--campaign", "c")
    s = OfficialStatistic.objects.get()
    assert float(s.hectares) == pytest.approx(10_000) and s.status == "UNVERIFIED"
