"""Sample import (preview, commit) and export: real files written by geopandas/pyogrio, unsafe
archives, feature rules, all-or-nothing writes, who may do what."""

from __future__ import annotations

import io
import json
import stat
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from django.contrib.gis.geos import MultiPolygon
from django.contrib.gis.geos import Polygon as GeosPolygon
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from annotation import sample_files, transfer
from annotation.models import AuditEntry, Sample, SampleKind, SamplePolygon, SampleSplit
from annotation.services import polygon_create, sample_mark_negative
from mapping.models import AdminLevel, AdminUnit
from tests.annotation.conftest import imports_left, nothing_written, square
from tests.factories import current_prediction_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_var_dir")]

B0, B1 = "R2386C5850", "R2386C5851"  # the two fixture blocks, 112.50-112.55 and 112.55-112.60


@pytest.fixture
def named_blocks(blocks):
    """The blocks lie in 湖北省 / 荆州区 (Chinese names must survive a Shapefile)."""
    geom = MultiPolygon(GeosPolygon.from_bbox((112, 30, 113, 31)), srid=4326)
    province = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省", geometry=geom
    )
    county = AdminUnit.objects.create(
        level=AdminLevel.COUNTY, adcode=421003, name_zh="荆州区", parent=province, geometry=geom
    )
    for b in blocks:
        b.province, b.county = province, county
        b.save()
    return blocks


@pytest.fixture
def lead(users, login):
    return login("lead")


def gdf(rows: list[dict], crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        [{k: v for k, v in r.items() if k != "geometry"} for r in rows],
        geometry=[r["geometry"] for r in rows],
        crs="EPSG:4326",
    ).to_crs(crs)


def gpkg_bytes(df: gpd.GeoDataFrame, tmp_path: Path) -> bytes:
    path = tmp_path / f"{uuid.uuid4().hex}.gpkg"
    pyogrio.write_dataframe(df, path, layer="drawn", driver="GPKG")
    return path.read_bytes()


def shp_members(df: gpd.GeoDataFrame, tmp_path: Path) -> dict[str, bytes]:
    d = tmp_path / uuid.uuid4().hex
    d.mkdir()
    pyogrio.write_dataframe(df, d / "fields.shp", encoding="UTF-8")
    return {p.name: p.read_bytes() for p in d.iterdir()}


def zip_bytes(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def preview(c: Client, name: str, data: bytes, *, source: str = "mapbox", campaign="demo"):
    return c.post(
        f"/api/campaigns/{campaign}/samples/import/preview",
        {"file": SimpleUploadedFile(name, data), "source": source},
    )


def commit(c: Client, import_id: str, *, skip: bool = False, campaign="demo"):
    q = "?skip_rejected=1" if skip else ""
    return c.post(f"/api/campaigns/{campaign}/samples/import/{import_id}/commit{q}")


def stored_polygons() -> list[tuple[str, str, str, float]]:
    return sorted(
        (p.sample.block.code, p.sample.source.slug, p.subtype, p.geometry.area)
        for p in SamplePolygon.objects.select_related("sample__block", "sample__source")
    )


FIELD = shapely.box(112.51, 30.31, 112.52, 30.32)


# --- Round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["gpkg", "shp"])
def test_round_trip_export_import_keeps_every_feature_and_attribute(
    fmt, users, named_blocks, sources, lead, tmp_path
):
    b0, b1 = named_blocks
    ring = [[112.511, 30.311], [112.519, 30.311], [112.519, 30.319], [112.511, 30.319]]
    hole = [[112.514, 30.314], [112.516, 30.314], [112.516, 30.316], [112.514, 30.314]]
    with_hole = {"type": "Polygon", "coordinates": [[*ring, ring[0]], hole]}
    drawn = [
        (b0, "mapbox", with_hole, "paddy"),
        (b0, "mapbox", square(112.53, 30.33, 112.5401234567, 30.3412345678), "terraces"),
        (b0, "google", square(112.52, 30.32, 112.53, 30.33), "greenhouse"),
        (b1, "google", square(112.56, 30.31, 112.57, 30.32), "scattered_trees"),
    ]
    current_prediction_make(
        blocks=named_blocks, sources=sources.values(), name="m-3", round_number=3
    )
    versions: dict[tuple[int, str], int] = {}
    for block, src, geom, subtype in drawn:
        key = (block.pk, src)
        polygon_create(
            user=users["annotator"],
            block=block,
            source=sources[src],
            geometry=geom,
            subtype=subtype,
            expected_version=versions.get(key, 0),
            op_id=uuid.uuid4(),
            model_version="m-3",
            round_number=3,
        )
        versions[key] = versions.get(key, 0) + 1
    Sample.objects.filter(block=b1).update(split=SampleSplit.VALIDATION)
    before = stored_polygons()

    r = lead.get(f"/api/campaigns/demo/samples/export?format={fmt}")
    assert r.status_code == 200, r.content[:300]
    data = b"".join(r.streaming_content) if r.streaming else r.content
    name = "demo-samples.gpkg" if fmt == "gpkg" else "demo-samples.zip"
    assert name in r["Content-Disposition"]
    exported = tmp_path / name
    exported.write_bytes(data)
    if fmt == "shp":
        with zipfile.ZipFile(exported) as zf:
            names = set(zf.namelist())
            assert {f"demo-samples.{s}" for s in ("shp", "shx", "dbf", "prj", "cpg")} <= names
            assert zf.read("demo-samples.cpg").strip().upper() in (b"UTF-8", b"UTF8")
        read_path = f"/vsizip/{exported}"
    else:
        read_path = str(exported)
    df = pyogrio.read_dataframe(read_path)
    assert len(df) == 4
    assert set(df["province"]) == {"湖北省"} and set(df["county"]) == {"荆州区"}
    assert set(df["created_by"]) == {"annotator"}
    model_col = "model_version" if fmt == "gpkg" else "model_ver"
    assert set(df[model_col]) == {"m-3"}
    assert sorted(df["subtype"]) == sorted(d[3] for d in drawn)
    assert set(zip(df["block"], df["split"], strict=True)) == {
        (B0, "train"),
        (B1, "validation"),
    }

    Sample.objects.all().delete()
    r = preview(lead, name, data)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["rejected"] == [] and body["features"] == 4 and body["polygons"] == 4
    assert {(b["block"], b["source"], b["polygons"]) for b in body["blocks"]} == {
        (B0, "mapbox", 2),
        (B0, "google", 1),
        (B1, "google", 1),
    }
    assert nothing_written(), "a preview writes nothing"
    r = commit(lead, body["import_id"])
    assert r.status_code == 201, r.json()

    after = stored_polygons()
    assert [a[:3] for a in after] == [b[:3] for b in before]
    for a, b in zip(after, before, strict=True):
        assert a[3] == pytest.approx(b[3], rel=1e-9)
    assert Sample.objects.get(block=b1).split == SampleSplit.VALIDATION
    assert set(SamplePolygon.objects.values_list("created_by__username", flat=True)) == {"lead"}
    assert set(SamplePolygon.objects.values_list("model_version", flat=True)) == {""}
    # The file's own provenance is kept in the audit log, under the import id as op_id.
    entries = AuditEntry.objects.filter(op_id=body["import_id"], object_type="sample_polygon")
    assert entries.count() == 4
    assert {e.after["import"]["attributes"]["created_by"] for e in entries} == {"annotator"}
    assert imports_left_after_commit(body["import_id"])

    r = lead.get(f"/api/campaigns/demo/samples/export?format={fmt}")
    (tmp_path / f"again-{name}").write_bytes(r.content)
    again = pyogrio.read_dataframe(
        f"/vsizip/{tmp_path / f'again-{name}'}" if fmt == "shp" else str(tmp_path / f"again-{name}")
    )
    cols = ["block", "source", "subtype", "kind", "split", "province", "county"]
    assert sorted(map(tuple, again[cols].values.tolist())) == sorted(
        map(tuple, df[cols].values.tolist())
    )


def imports_left_after_commit(import_id: str) -> bool:
    from django.conf import settings

    return not list((Path(settings.VAR_DIR) / "imports").glob(f"{import_id}*"))


def test_zipped_shapefile_in_web_mercator_is_reprojected(users, blocks, sources, lead, tmp_path):
    field = shapely.box(112.51, 30.31, 112.52, 30.32)
    df = gdf([{"subtype": "paddy", "geometry": field}], crs="EPSG:3857")
    assert df.total_bounds[0] > 1e7  # metres, not degrees
    r = preview(lead, "mercator.zip", zip_bytes(shp_members(df, tmp_path)))
    assert r.status_code == 200, r.json()
    assert [(b["block"], b["polygons"]) for b in r.json()["blocks"]] == [(B0, 1)]
    assert commit(lead, r.json()["import_id"]).status_code == 201
    p = SamplePolygon.objects.get()
    stored = shapely.from_wkb(bytes(p.geometry.wkb))
    assert stored.area == pytest.approx(field.area, rel=1e-6)
    assert shapely.symmetric_difference(stored, field).area < 1e-6 * field.area
    assert p.subtype == "paddy"


def test_geojson_multipolygon_is_split_and_clipped_per_block(users, blocks, sources, lead):
    across = shapely.box(112.54, 30.31, 112.56, 30.32)  # crosses the edge at 112.55
    inside = shapely.box(112.51, 30.33, 112.52, 30.34)
    feature = {
        "type": "Feature",
        "properties": {"subtype": "fallow"},
        "geometry": shapely.geometry.mapping(shapely.MultiPolygon([across, inside])),
    }
    data = json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()
    r = preview(lead, "drawn.geojson", data, source="google")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["polygons"] == 3
    assert {(b["block"], b["source"], b["polygons"]) for b in body["blocks"]} == {
        (B0, "google", 2),
        (B1, "google", 1),
    }
    assert commit(lead, body["import_id"]).status_code == 201
    total = sum(p.geometry.area for p in SamplePolygon.objects.all())
    assert total == pytest.approx(across.area + inside.area, rel=1e-9)
    for p in SamplePolygon.objects.select_related("sample__block"):
        assert p.sample.block.geometry.covers(p.geometry)
        assert p.subtype == "fallow"


def test_block_column_limits_a_polygon_to_that_block(users, blocks, sources, lead, tmp_path):
    across = shapely.box(112.54, 30.31, 112.56, 30.32)
    df = gdf(
        [
            {"block": B1, "geometry": across},
            {"block": "R0001C0001", "geometry": across},
        ]
    )
    r = preview(lead, "blocks.gpkg", gpkg_bytes(df, tmp_path))
    body = r.json()
    assert [(b["block"], b["polygons"]) for b in body["blocks"]] == [(B1, 1)]
    assert body["rejected"] == [
        {"feature": 2, "reason": "the polygon does not overlap block R0001C0001 of this campaign"}
    ]


def test_import_into_negative_sample_turns_it_positive_and_bumps_version(
    users, blocks, source, lead, tmp_path
):
    sample_mark_negative(
        user=users["annotator"],
        block=blocks[0],
        source=source,
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    r = preview(lead, "f.gpkg", gpkg_bytes(gdf([{"geometry": FIELD}]), tmp_path))
    r = commit(lead, r.json()["import_id"])
    assert r.status_code == 201
    assert r.json()["samples_updated"] == 1
    s = Sample.objects.get()
    assert (s.kind, s.version, s.polygons.count()) == (SampleKind.POSITIVE, 2, 1)
    assert s.polygons.get().subtype == "irrigated_dry"  # the default without a subtype column


# --- Files refused before reading ---------------------------------------------------------------


def _good_shp(tmp_path: Path) -> dict[str, bytes]:
    return shp_members(gdf([{"subtype": "paddy", "geometry": FIELD}]), tmp_path)


def _without(members: dict[str, bytes], suffix: str) -> dict[str, bytes]:
    return {k: v for k, v in members.items() if not k.endswith(suffix)}


def _renamed(members: dict[str, bytes], prefix: str) -> dict[str, bytes]:
    return {prefix + k: v for k, v in members.items()}


BAD_FILES = {
    "zip slip": (
        lambda t: ("evil.zip", zip_bytes(_renamed(_good_shp(t), "../"))),
        "points outside the archive",
    ),
    "absolute path": (
        lambda t: ("abs.zip", zip_bytes(_renamed(_good_shp(t), "/tmp/"))),
        "absolute path",
    ),
    "symlink member": (
        lambda t: ("link.zip", zip_bytes(_good_shp(t), symlinks={"fields.qmd": "/etc/passwd"})),
        "symbolic link",
    ),
    "zip bomb": (
        lambda t: ("bomb.zip", zip_bytes({**_good_shp(t), "fields.xml": b"\0" * (8 * 2**20)})),
        "zip bomb",
    ),
    "kml inside": (
        lambda t: ("kml.zip", zip_bytes({**_good_shp(t), "fields.kml": b"<kml/>"})),
        "only the parts of one Shapefile",
    ),
    "csv inside": (
        lambda t: ("csv.zip", zip_bytes({**_good_shp(t), "fields.csv": b"WKT\n"})),
        "only the parts of one Shapefile",
    ),
    "zip in zip": (
        lambda t: ("nested.zip", zip_bytes({"inner.zip": zip_bytes(_good_shp(t))})),
        "only the parts of one Shapefile",
    ),
    "too many members": (
        lambda t: ("many.zip", zip_bytes({f"f{i}.qmd": b"x" for i in range(40)})),
        "members; at most",
    ),
    "missing .prj": (
        lambda t: ("noprj.zip", zip_bytes(_without(_good_shp(t), ".prj"))),
        "has no .prj file",
    ),
    "two shapefiles": (
        lambda t: (
            "two.zip",
            zip_bytes({**_good_shp(t), **_renamed(_good_shp(t), "other/")}),
        ),
        "exactly one Shapefile",
    ),
    "corrupt zip": (lambda t: ("bad.zip", b"PK\x03\x04" + b"\x13" * 500), "damaged"),
    "corrupt shapefile": (
        lambda t: (
            "trunc.zip",
            zip_bytes({**_good_shp(t), "fields.shp": _good_shp(t)["fields.shp"][:60]}),
        ),
        "cannot be read",
    ),
    "corrupt geopackage": (
        lambda t: ("bad.gpkg", b"SQLite format 3\x00" + b"\x07" * 4000),
        "cannot be read",
    ),
    "zip named .gpkg": (
        lambda t: ("fake.gpkg", zip_bytes(_good_shp(t))),
        "not a GeoPackage",
    ),
    "corrupt geojson": (lambda t: ("bad.geojson", b'{"type": "FeatureColl'), "cannot be read"),
    "topojson named .geojson": (
        lambda t: (
            "topo.geojson",
            json.dumps(
                {
                    "type": "Topology",
                    "objects": {
                        "a": {
                            "type": "GeometryCollection",
                            "geometries": [{"type": "Polygon", "arcs": [[0]]}],
                        }
                    },
                    "arcs": [[[112.51, 30.31], [112.52, 30.31], [112.52, 30.32], [112.51, 30.31]]],
                }
            ).encode(),
        ),
        "not 'GeoJSON'",
    ),
    "kml upload": (lambda t: ("fields.kml", b"<kml/>"), "unsupported file type"),
    "csv upload": (lambda t: ("fields.csv", b"WKT\n"), "unsupported file type"),
    "empty geojson": (
        lambda t: ("empty.geojson", b'{"type": "FeatureCollection", "features": []}'),
        "no features",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_refused_with_the_reason_and_nothing_is_kept(
    case, users, blocks, sources, lead, tmp_path, settings
):
    make, reason = BAD_FILES[case]
    name, data = make(tmp_path)
    r = preview(lead, name, data)
    assert r.status_code == 400, r.content[:500]
    assert reason in " ".join(r.json()["file"]), r.json()
    assert nothing_written()
    assert imports_left(settings) == []


def test_zip_slip_never_writes_outside(users, blocks, sources, lead, tmp_path, settings):
    r = preview(lead, "evil.zip", zip_bytes(_renamed(_good_shp(tmp_path), "../../")))
    assert r.status_code == 400
    assert not list(Path(settings.VAR_DIR).parent.glob("fields.*"))


def test_plain_sqlite_named_gpkg_is_refused(users, blocks, sources, lead, tmp_path):
    import sqlite3

    path = tmp_path / "plain.gpkg"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (wkt TEXT)")
    r = preview(lead, "plain.gpkg", path.read_bytes())
    assert r.status_code == 400
    assert "cannot be read as GPKG" in r.json()["file"][0]
    assert "gpkg_contents" in r.json()["file"][0]  # GDAL's own reason is passed on


def test_oversized_upload_is_refused_before_it_is_parsed(users, blocks, sources, lead, monkeypatch):
    from annotation.apis import transfer as transfer_apis

    monkeypatch.setattr(transfer_apis, "MAX_UPLOAD_BYTES", 1000)
    r = preview(lead, "big.geojson", b"{" + b" " * 200_000 + b"}")
    assert r.status_code == 400 and "larger than" in r.json()["file"][0]
    assert nothing_written()


def test_archive_size_limits(users, blocks, sources, lead, tmp_path, monkeypatch):
    monkeypatch.setattr(sample_files, "MAX_UNCOMPRESSED_BYTES", 500)
    r = preview(lead, "big.zip", zip_bytes(_good_shp(tmp_path)))
    assert r.status_code == 400 and "unpacks to more than" in r.json()["file"][0]
    monkeypatch.setattr(transfer, "MAX_UPLOAD_BYTES", 1000)
    r = preview(lead, "f.gpkg", gpkg_bytes(gdf([{"geometry": FIELD}]), tmp_path))
    assert r.status_code == 400 and "larger than" in r.json()["file"][0]
    assert nothing_written()


# --- Features refused -------------------------------------------------------------------------


def test_rejected_features_block_the_commit_unless_skipped(users, blocks, sources, lead, tmp_path):
    bowtie = shapely.Polygon([(112.51, 30.31), (112.52, 30.32), (112.52, 30.31), (112.51, 30.32)])
    df = gdf(
        [
            {"subtype": "paddy", "geometry": FIELD},
            {"subtype": "paddy", "geometry": bowtie},
            {"subtype": "orchard", "geometry": FIELD},
            {"subtype": "paddy", "geometry": shapely.box(100.0, 20.0, 100.1, 20.1)},
            {
                "subtype": "paddy",
                "geometry": shapely.LineString([(112.51, 30.31), (112.52, 30.32)]),
            },
        ]
    )
    r = preview(lead, "mixed.gpkg", gpkg_bytes(df, tmp_path))
    assert r.status_code == 200, r.json()
    body = r.json()
    reasons = {x["feature"]: x["reason"] for x in body["rejected"]}
    assert set(reasons) == {2, 3, 4, 5}
    assert "the outline crosses or touches itself" in reasons[2]
    assert "unknown subtype 'orchard'" in reasons[3]
    assert "outside every block" in reasons[4]
    assert "not a polygon" in reasons[5]
    assert body["polygons"] == 1

    r = commit(lead, body["import_id"])
    assert r.status_code == 400
    assert "4 feature(s) were rejected" in r.json()["detail"]
    assert [x["feature"] for x in r.json()["rejected"]] == [2, 3, 4, 5]
    assert nothing_written()

    r = commit(lead, body["import_id"], skip=True)
    assert r.status_code == 201, r.json()
    assert [x["feature"] for x in r.json()["skipped"]] == [2, 3, 4, 5]
    assert SamplePolygon.objects.count() == 1
    assert commit(lead, body["import_id"], skip=True).status_code == 404  # once only


def test_features_plan_unit_rules():
    cells = [transfer.BlockCell(1, B0, (112.5, 30.3, 112.55, 30.35))]
    nan_poly = shapely.Polygon([(112.51, 30.31), (float("nan"), 30.31), (112.52, 30.32)])
    many = shapely.Point(112.52, 30.32).buffer(0.005, quad_segs=2000)
    df = gpd.GeoDataFrame(
        {"split": ["train", "holdout", None, None], "source": [None, None, "bing", None]},
        geometry=[FIELD, FIELD, FIELD, nan_poly],
        crs=4326,
    )
    df = gpd.GeoDataFrame(
        pd.concat([df, gpd.GeoDataFrame({"split": [None]}, geometry=[many], crs=4326)]),
        crs=4326,
    )
    plan = transfer.features_plan(df, blocks=cells, source="mapbox", sources={"mapbox"})
    reasons = {r.feature: r.reason for r in plan.rejected}
    assert "unknown split 'holdout'" in reasons[2]
    assert "unknown imagery source 'bing'" in reasons[3]
    assert "finite" in reasons[4]
    assert "too many vertices" in reasons[5]
    assert [p.feature for p in plan.polygons] == [1]


# --- Who may do what --------------------------------------------------------------------------


ROLE_STATUS = {"annotator": 403, "outsider": 404, "anonymous": 403, "lead": None, "admin": None}


@pytest.mark.parametrize("role", list(ROLE_STATUS))
def test_permissions_per_role(role, users, blocks, sources, tmp_path, login):
    c = login(role)
    data = gpkg_bytes(gdf([{"geometry": FIELD}]), tmp_path)
    r_preview = preview(c, "f.gpkg", data)
    r_export = c.get("/api/campaigns/demo/samples/export?format=gpkg")
    expected = ROLE_STATUS[role]
    if expected is None:
        assert r_preview.status_code == 200
        assert r_export.status_code == 200
        assert r_export["Content-Type"] == "application/geopackage+sqlite3"
        assert commit(c, r_preview.json()["import_id"]).status_code == 201
    else:
        assert r_preview.status_code == expected
        assert r_export.status_code == expected
        assert commit(c, str(uuid.uuid4())).status_code == expected
        assert nothing_written()


def test_an_import_belongs_to_its_lead_and_campaign(users, blocks, sources, tmp_path, login):
    lead, admin = login("lead"), login("admin")
    r = preview(lead, "f.gpkg", gpkg_bytes(gdf([{"geometry": FIELD}]), tmp_path))
    import_id = r.json()["import_id"]
    assert commit(admin, import_id).status_code == 404
    assert commit(lead, import_id, campaign="nope").status_code == 404
    assert preview(lead, "f.gpkg", b"x", campaign="nope").status_code == 404
    assert preview(lead, "f.gpkg", b"x", source="nope").status_code == 404
    assert nothing_written()
    assert commit(lead, import_id).status_code == 201


def test_expired_preview_is_gone(users, blocks, sources, lead, tmp_path, settings):
    r = preview(lead, "f.gpkg", gpkg_bytes(gdf([{"geometry": FIELD}]), tmp_path))
    import_id = r.json()["import_id"]
    meta = Path(settings.VAR_DIR) / "imports" / f"{import_id}.json"
    data = json.loads(meta.read_text())
    data["expires_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    meta.write_text(json.dumps(data))
    assert commit(lead, import_id).status_code == 404
    assert imports_left(settings) == []
    assert nothing_written()


def test_export_format_is_checked(users, blocks, lead):
    r = lead.get("/api/campaigns/demo/samples/export?format=kml")
    assert r.status_code == 400 and "format" in r.json()


def test_export_of_no_samples_is_an_empty_layer(users, blocks, lead, tmp_path):
    r = lead.get("/api/campaigns/demo/samples/export?format=shp")
    assert r.status_code == 200
    path = tmp_path / "empty.zip"
    path.write_bytes(r.content)
    assert len(pyogrio.read_dataframe(f"/vsizip/{path}")) == 0


# --- Management commands ----------------------------------------------------------------------


def test_commands_round_trip(users, named_blocks, source, tmp_path):
    polygon_create(
        user=users["lead"],
        block=named_blocks[0],
        source=source,
        geometry=square(112.51, 30.31, 112.52, 30.32),
        subtype="terraces",
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    out = tmp_path / "samples.zip"
    call_command(
        "samples_export", campaign="demo", format="shp", out=str(out), stdout=io.StringIO()
    )
    assert out.is_file()
    Sample.objects.all().delete()
    stdout = io.StringIO()
    call_command(
        "samples_import", str(out), campaign="demo", source="mapbox", user="admin", stdout=stdout
    )
    assert json.loads(stdout.getvalue())["polygons"] == 1
    p = SamplePolygon.objects.get()
    assert (p.subtype, p.created_by.username) == ("terraces", "admin")

    assert AuditEntry.objects.filter(username="admin", op_id__isnull=False).count() == 1
    Sample.objects.all().delete()
    call_command("samples_import", str(out), campaign="demo", source="mapbox", stdout=stdout)
    p = SamplePolygon.objects.get()
    assert p.created_by is None
    assert AuditEntry.objects.filter(username="manage.py samples_import").count() == 1

    bad = tmp_path / "bad.gpkg"
    bad.write_bytes(b"nope")
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("samples_import", str(bad), campaign="demo", source="mapbox")
