"""manage.py import_admin_units with hostile files: one CommandError line naming the feature
and the problem, nothing written, no request made, no server file read."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from mapping.models import AdminUnit
from tests.hostile.conftest import leaks
from tests.hostile.hostile_files import (
    feature_collection,
    ogr_curl_vrt,
    ogr_file_vrt,
    square,
    zip_with,
)

pytestmark = pytest.mark.django_db

NAN = float("nan")


def _run(path) -> str:
    with pytest.raises(CommandError) as err:
        call_command("import_admin_units", str(path), "--level", "province")
    return str(err.value)


def _refused(path, *words: str) -> str:
    before = AdminUnit.objects.count()
    text = _run(path)
    assert "\n" not in text, text
    for w in words:
        assert w in text, text
    assert AdminUnit.objects.count() == before
    return text


@pytest.mark.parametrize("name", ["boundaries.geojson", "boundaries.vrt", "boundaries.json"])
def test_ogr_vrt_fetching_a_url_is_refused(name, db, tmp_path, listener):
    path = tmp_path / name
    path.write_text(ogr_curl_vrt(listener.url("p.geojson")))
    text = _refused(path, "not a GeoPackage, GeoJSON, Shapefile")
    assert listener.connections() == 0, "the command made an outbound request"
    assert "http" not in text


def test_ogr_vrt_reading_a_server_file_is_refused(db, tmp_path, canary):
    path = tmp_path / "boundaries.geojson"
    path.write_text(ogr_file_vrt(canary))
    text = _refused(path, "not a GeoPackage")
    assert "CANARY" not in text


def test_zip_holding_an_ogr_vrt_is_refused(db, tmp_path, listener):
    path = zip_with(tmp_path / "b.zip", {"b.vrt": ogr_curl_vrt(listener.url("p.geojson"))})
    _refused(path, "only the parts of one Shapefile")
    assert listener.connections() == 0


def test_zip_with_a_path_outside_is_refused(db, tmp_path):
    path = zip_with(tmp_path / "b.zip", {"../../b.shp": b"\x00\x00\x27\x0a"})
    _refused(path, "outside the archive")


def test_nan_coordinates_name_the_feature(db, tmp_path):
    poly = {"type": "Polygon",
            "coordinates": [[[118.9, 31.9], [NAN, 31.9], [119.2, 32.2], [118.9, 31.9]]]}
    path = tmp_path / "nan.geojson"
    path.write_text(feature_collection(square(), poly))
    text = _refused(path, "feature 1", "not numbers")
    assert "LinearRing" not in text


def test_unclosed_ring_names_the_feature(db, tmp_path):
    poly = {"type": "Polygon",
            "coordinates": [[[118.9, 31.9], [119.2, 31.9], [119.2, 32.2], [118.9, 32.2]]]}
    path = tmp_path / "open.geojson"
    path.write_text(feature_collection(poly))
    _refused(path, "feature 0")


def test_point_is_not_reported_as_a_number(db, tmp_path):
    path = tmp_path / "point.geojson"
    path.write_text(feature_collection({"type": "Point", "coordinates": [119.0, 32.0]}))
    text = _refused(path, "feature 0", "Point", "not a polygon")
    assert "0 is not a polygon" not in text


@pytest.mark.parametrize("reproject", [False, True])
def test_crs_problems_are_one_line(reproject, db, tmp_path):
    """Projected coordinates no transformation can bring to lon/lat (1e300 m)."""
    big = 1e300
    fc = json.loads(feature_collection({"type": "Polygon", "coordinates": [
        [[0, 0], [big, 0], [big, big], [0, 0]]]}))
    fc["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}}
    path = tmp_path / "crs.geojson"
    path.write_text(json.dumps(fc))
    before = AdminUnit.objects.count()
    args = ["--reproject"] if reproject else []
    with pytest.raises(CommandError) as err:
        call_command("import_admin_units", str(path), "--level", "province", *args)
    text = str(err.value)
    assert "\n" not in text and ("feature 0" in text or "--reproject" in text), text
    assert AdminUnit.objects.count() == before


def test_huge_adcode_is_refused(db, tmp_path):
    path = tmp_path / "code.geojson"
    path.write_text(feature_collection(
        square(), props=[{"province_adcode": 99999999999999, "province_name": "x"}]))
    _refused(path, "feature 0", "adcode")


@pytest.mark.parametrize("prefix", ["/vsicurl/", "/vsizip/", "GPKG:"])
def test_gdal_virtual_paths_are_refused(prefix, db, listener):
    text = _refused(f"{prefix}{listener.url('p.geojson')}")
    assert leaks(text.replace(prefix, "")) == []
    assert listener.connections() == 0


def test_errors_show_no_temporary_paths(db, tmp_path):
    """A zipped Shapefile whose .shp is damaged: the reason names no extracted temp file."""
    path = zip_with(tmp_path / "b.zip", {
        "b.shp": b"\x00\x00\x27\x0a" + b"\x00" * 20, "b.shx": b"x", "b.dbf": b"x",
        "b.prj": b'GEOGCS["WGS 84"]'})
    text = _refused(path)
    assert leaks(text.replace(str(path), "FILE")) == [], text
    assert "See previous exception" not in text
