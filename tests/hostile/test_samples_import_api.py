"""POST /api/campaigns/<slug>/samples/import/preview with hostile files: 400 naming the
problem, no import kept, no request made, no server file or path shown."""

from __future__ import annotations

import json
import sqlite3

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import SamplePolygon
from mapping.models import ImagerySource
from tests.hostile.conftest import leaks
from tests.hostile.hostile_files import (
    feature_collection,
    ogr_curl_vrt,
    ogr_file_vrt,
    zip_with,
)

pytestmark = pytest.mark.django_db

NAN = float("nan")


@pytest.fixture
def preview(users, campaign, settings, tmp_path, login):
    settings.VAR_DIR = tmp_path / "var"
    ImagerySource.objects.create(slug="mapbox", name="mapbox", kind="synthetic")
    c = login("lead")

    def send(name: str, data: bytes):
        r = c.post(f"/api/campaigns/{campaign.slug}/samples/import/preview", {
            "file": SimpleUploadedFile(name, data), "source": "mapbox"})
        return r
    return send


def _kept(settings) -> list:
    folder = settings.VAR_DIR / "imports"
    return sorted(folder.iterdir()) if folder.exists() else []


def _refused(r, settings, *words: str) -> str:
    text = r.content.decode()
    assert r.status_code == 400, text
    for w in words:
        assert w in text, text
    assert leaks(text) == [], text
    assert "See previous exception" not in text
    assert SamplePolygon.objects.count() == 0
    assert _kept(settings) == []
    return text


@pytest.mark.parametrize("name", ["s.geojson", "s.json"])
def test_ogr_vrt_named_geojson(name, preview, settings, listener):
    _refused(preview(name, ogr_curl_vrt(listener.url("a.geojson")).encode()), settings,
             "GeoJSON")
    assert listener.connections() == 0


def test_ogr_vrt_reading_a_server_file(preview, settings, canary):
    _refused(preview("s.geojson", ogr_file_vrt(canary).encode()), settings)


def test_zip_holding_a_vrt(preview, settings, listener, tmp_path):
    data = zip_with(tmp_path / "s.zip", {"s.vrt": ogr_curl_vrt(listener.url())}).read_bytes()
    _refused(preview("s.zip", data), settings, "only the parts of one Shapefile")
    assert listener.connections() == 0


def test_zip_shapefile_with_damaged_parts_shows_no_temp_path(preview, settings, tmp_path):
    data = zip_with(tmp_path / "s.zip", {
        "s.shp": b"\x00\x00\x27\x0a" + b"\x00" * 96, "s.shx": b"\x00" * 100,
        "s.dbf": b"\x03" + b"\x00" * 40, "s.prj": b'GEOGCS["WGS 84"]'}).read_bytes()
    _refused(preview("s.zip", data), settings)


def test_geojson_with_nan(preview, settings):
    ring = [[119.01, 32.01], [NAN, 32.01], [119.02, 32.02], [119.01, 32.01]]
    body = feature_collection({"type": "Polygon", "coordinates": [ring]},
                              props=[{"block": "x"}])
    r = preview("s.geojson", body.encode())
    # A preview lists the feature as rejected, with the reason; nothing is written.
    assert r.status_code == 200, r.content
    (rejected,) = r.json()["rejected"]
    assert rejected["feature"] == 1 and "finite" in rejected["reason"]
    assert "LinearRing" not in r.content.decode()
    assert r.json()["polygons"] == 0 and SamplePolygon.objects.count() == 0


def test_broken_geopackage_shows_no_server_path(preview, settings, tmp_path):
    """A GeoPackage whose layer table is missing: GDAL names the stored upload's path."""
    path = tmp_path / "s.gpkg"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        db.execute("PRAGMA user_version = 10300")
        db.execute("CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT, srs_id INTEGER PRIMARY KEY,"
                   " organization TEXT, organization_coordsys_id INTEGER, definition TEXT,"
                   " description TEXT)")
        db.execute("CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT,"
                   " identifier TEXT, description TEXT, last_change TEXT, min_x REAL,"
                   " min_y REAL, max_x REAL, max_y REAL, srs_id INTEGER)")
        db.execute("CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT,"
                   " geometry_type_name TEXT, srs_id INTEGER, z INTEGER, m INTEGER)")
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, srs_id)"
                   " VALUES ('samples', 'features', 4326)")
        db.execute("INSERT INTO gpkg_geometry_columns VALUES"
                   " ('samples', 'geom', 'POLYGON', 4326, 0, 0)")
    _refused(preview("s.gpkg", path.read_bytes()), settings)


def test_truncated_geojson(preview, settings):
    body = json.dumps({"type": "FeatureCollection", "features": []})[:-3]
    _refused(preview("s.geojson", body.encode()), settings)
