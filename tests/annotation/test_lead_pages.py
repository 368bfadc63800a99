"""The leads' HTML pages: sample import (upload, preview, commit) and export, assigning blocks,
self-assignment; who may open them."""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from django.contrib.gis.geos import MultiPolygon
from django.contrib.gis.geos import Polygon as GeosPolygon
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotation.models import Assignment, Sample, SampleKind, SamplePolygon
from annotation.selectors import self_assign_allowed
from annotation.services import polygon_create, sample_mark_negative
from mapping.models import AdminLevel, AdminUnit
from tests.annotation.conftest import imports_left, nothing_written

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_var_dir")]

B0, B1 = "R2386C5850", "R2386C5851"  # the two blocks of campaign "demo"
INSIDE = shapely.box(112.51, 30.33, 112.52, 30.34)  # in B0
ACROSS = shapely.box(112.54, 30.31, 112.56, 30.32)  # crosses the edge B0 | B1 at 112.55
OUTSIDE = shapely.box(100.0, 20.0, 100.01, 20.01)  # in no block of the campaign


def geojson(*geoms, **props) -> bytes:
    features = [
        {"type": "Feature", "properties": dict(props), "geometry": shapely.geometry.mapping(g)}
        for g in geoms
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def upload(c: Client, name: str, data: bytes, *, source: str = "mapbox", campaign: str = "demo"):
    return c.post(
        f"/campaigns/{campaign}/samples/",
        {"file": SimpleUploadedFile(name, data), "source": source},
    )


def preview_url(r) -> str:
    assert r.status_code == 302, r.content.decode()[:2000]
    assert re.fullmatch(r"/campaigns/demo/samples/import/[0-9a-f-]{36}/", r["Location"])
    return r["Location"]


def text(r) -> str:
    """The page's text with tags and runs of white space collapsed (as a reader sees it)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r.content.decode()))


def row(r, attr: str) -> str:
    """The text of the table row with ``attr`` (e.g. ``data-block="R2386C5850"``)."""
    m = re.search(rf"<tr [^>]*{re.escape(attr)}[^>]*>(.*?)</tr>", r.content.decode(), re.S)
    assert m, f"no row {attr}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m[1])).strip()


# --- Who may open the pages ------------------------------------------------------------------

ROLE_STATUS = {"lead": 200, "admin": 200, "annotator": 403, "outsider": 404}
PAGES = ["/campaigns/demo/samples/", "/campaigns/demo/assign/"]


@pytest.mark.parametrize("url", PAGES)
@pytest.mark.parametrize("role", [*ROLE_STATUS, "anonymous"])
def test_pages_per_role(role, url, users, blocks, sources, login):
    r = login(role).get(url)
    if role == "anonymous":
        assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")
    else:
        assert r.status_code == ROLE_STATUS[role]


@pytest.mark.parametrize("role", ["annotator", "outsider", "anonymous"])
def test_writes_are_refused_for_non_leads_and_write_nothing(role, users, blocks, sources, login):
    c = login(role)
    expected = {"annotator": 403, "outsider": 404, "anonymous": 302}[role]
    assert upload(c, "f.geojson", geojson(INSIDE)).status_code == expected
    fake = uuid.uuid4()
    responses = [
        c.get(f"/campaigns/demo/samples/import/{fake}/"),
        c.post(f"/campaigns/demo/samples/import/{fake}/commit/"),
        c.post("/campaigns/demo/assign/", {"blocks": B1, "users": ["annotator"]}),
        c.post("/campaigns/demo/assign/self-assign/", {}),
    ]
    assert [r.status_code for r in responses] == [expected] * 4
    assert nothing_written()
    assert Assignment.objects.count() == 2  # the fixture's
    assert self_assign_allowed(campaign=blocks[0].campaign)


def test_no_such_campaign_is_404_for_a_lead(users, blocks, login):
    c = login("lead")
    assert c.get("/campaigns/nope/samples/").status_code == 404
    assert c.get("/campaigns/nope/assign/").status_code == 404


def test_campaign_page_links_the_pages_for_leads_only(users, blocks, login):
    lead = login("lead").get("/campaigns/demo/").content.decode()
    assert 'href="/campaigns/demo/assign/"' in lead and 'href="/campaigns/demo/samples/"' in lead
    annotator = login("annotator").get("/campaigns/demo/").content.decode()
    assert "/campaigns/demo/assign/" not in annotator
    assert "/campaigns/demo/samples/" not in annotator


# --- Import ----------------------------------------------------------------------------------


def test_upload_preview_then_import_creates_the_samples(users, blocks, sources, settings, login):
    lead = login("lead")
    page = lead.get("/campaigns/demo/samples/")
    assert 'enctype="multipart/form-data"' in page.content.decode()
    url = preview_url(upload(lead, "fields.geojson", geojson(INSIDE, ACROSS, subtype="paddy")))
    assert nothing_written()  # a preview writes no sample

    r = lead.get(url)
    assert r.status_code == 200
    assert "2 features in the file" in text(r) and "3 polygons to import" in text(r)
    assert "in 2 blocks" in text(r)
    b0, b1 = row(r, f'data-block="{B0}"').split(), row(r, f'data-block="{B1}"').split()
    # block, id, province, county, source, polygons to add
    assert b0[:6] == [B0, str(blocks[0].pk), "–", "–", "mapbox", "2"]
    assert b1[:6] == [B1, str(blocks[1].pk), "–", "–", "mapbox", "1"]
    assert "no sample yet" in row(r, f'data-block="{B0}"')
    assert "preview-rejected" not in r.content.decode()
    assert nothing_written()

    commit = re.search(r'<form id="commit-form" method="post" action="([^"]+)"', r.content.decode())
    assert commit and commit[1] == url + "commit/"
    done = lead.post(commit[1])
    assert done.status_code == 200
    assert "3 polygons imported" in text(done) and "2 new samples" in text(done)
    assert sorted(
        (p.sample.block.code, p.sample.source.slug, p.subtype, p.created_by.username)
        for p in SamplePolygon.objects.select_related(
            "sample__block", "sample__source", "created_by"
        )
    ) == [(B0, "mapbox", "paddy", "lead")] * 2 + [(B1, "mapbox", "paddy", "lead")]
    total = sum(p.geometry.area for p in SamplePolygon.objects.all())
    assert total == pytest.approx(INSIDE.area + ACROSS.area, rel=1e-9)
    assert imports_left(settings) == []

    # Committed: the preview is gone, and a second commit writes nothing more.
    again = lead.post(commit[1])
    assert again.status_code == 404 and "no such import" in text(again)
    assert lead.get(url).status_code == 404
    assert SamplePolygon.objects.count() == 3


def test_preview_says_what_is_already_there(users, blocks, source, login):
    polygon_create(
        user=users["lead"],
        block=blocks[0],
        source=source,
        geometry={
            "type": "Polygon",
            "coordinates": [
                [[112.501, 30.301], [112.502, 30.301], [112.502, 30.302], [112.501, 30.301]]
            ],
        },
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    sample_mark_negative(
        user=users["lead"], block=blocks[1], source=source, expected_version=0, op_id=uuid.uuid4()
    )
    lead = login("lead")
    r = lead.get(preview_url(upload(lead, "f.json", geojson(INSIDE, ACROSS))))
    assert "1 polygon kept, the new ones added" in row(r, f'data-block="{B0}"')
    assert "negative sample: it becomes positive" in row(r, f'data-block="{B1}"')
    done = lead.post(r.request["PATH_INFO"] + "commit/")
    assert "2 existing samples extended" in text(done)
    assert Sample.objects.get(block=blocks[1]).kind == SampleKind.POSITIVE
    assert Sample.objects.get(block=blocks[0]).polygons.count() == 3


def test_rejected_features_are_listed_and_block_the_import_unless_skipped(
    users, blocks, sources, login
):
    lead = login("lead")
    url = preview_url(upload(lead, "f.geojson", geojson(INSIDE, OUTSIDE)))
    r = lead.get(url)
    assert "1 feature rejected" in text(r)
    assert "the polygon lies outside every block of the campaign" in row(r, 'data-feature="2"')
    assert 'name="skip_rejected"' in r.content.decode()

    refused = lead.post(url + "commit/")
    assert refused.status_code == 400
    assert "1 feature(s) were rejected" in text(refused)
    assert nothing_written()

    done = lead.post(url + "commit/", {"skip_rejected": "on"})
    assert done.status_code == 200
    assert "1 polygon imported" in text(done) and "1 rejected feature left out" in text(done)
    assert SamplePolygon.objects.count() == 1


def _shapefile_zip_without_prj(tmp_path: Path) -> bytes:
    d = tmp_path / "shp"
    d.mkdir()
    df = gpd.GeoDataFrame({"subtype": ["paddy"]}, geometry=[INSIDE], crs="EPSG:4326")
    pyogrio.write_dataframe(df, d / "fields.shp")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in d.iterdir():
            if p.suffix != ".prj":
                zf.writestr(p.name, p.read_bytes())
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("fields.kml", lambda tmp: b"<kml/>", "unsupported file type"),
        ("fields.geojson", lambda tmp: b"not json at all", "the file is not a GeoJSON object"),
        ("fields.zip", _shapefile_zip_without_prj, "the Shapefile has no .prj file"),
        (
            "fields.geojson",
            lambda tmp: b'{"type": "FeatureCollection", "features": []}',
            "the file has no features",
        ),
    ],
)
def test_bad_upload_shows_the_reason_and_writes_nothing(
    name, make, reason, users, blocks, sources, settings, tmp_path, login
):
    lead = login("lead")
    r = upload(lead, name, make(tmp_path))
    assert r.status_code == 400
    assert reason in text(r)
    assert 'data-field="file"' in r.content.decode()  # shown at the file field, form kept
    assert nothing_written()
    assert imports_left(settings) == []


def test_upload_without_file_or_with_unknown_source_is_a_form_error(users, blocks, sources, login):
    lead = login("lead")
    r = lead.post("/campaigns/demo/samples/", {"source": "mapbox"})
    assert r.status_code == 400 and 'data-field="file"' in r.content.decode()
    r = upload(lead, "f.geojson", geojson(INSIDE), source="nope")
    assert r.status_code == 400 and 'data-field="source"' in r.content.decode()
    assert nothing_written()


def test_oversized_upload_is_refused_before_it_is_read(users, blocks, sources, monkeypatch, login):
    monkeypatch.setattr("annotation.lead_views.MAX_UPLOAD_BYTES", 1000)
    monkeypatch.setattr("annotation.lead_views.MULTIPART_SLACK", 0)
    lead = login("lead")
    r = upload(lead, "f.geojson", geojson(INSIDE) + b" " * 2000)
    assert r.status_code == 400 and "larger than" in text(r)
    assert nothing_written()


def test_a_preview_belongs_to_the_lead_who_uploaded_it(users, blocks, sources, login):
    lead = login("lead")
    url = preview_url(upload(lead, "f.geojson", geojson(INSIDE)))
    admin = login("admin")
    assert admin.get(url).status_code == 404
    assert admin.post(url + "commit/").status_code == 404
    assert nothing_written()
    assert lead.post(url + "commit/").status_code == 200


# --- Export ----------------------------------------------------------------------------------


def test_export_links_download_with_the_session(users, blocks, source, login):
    polygon_create(
        user=users["lead"],
        block=blocks[0],
        source=source,
        geometry=shapely.geometry.mapping(INSIDE),
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    lead = login("lead")
    page = lead.get("/campaigns/demo/samples/")
    assert "1 sample polygon" in text(page)
    hrefs = dict(re.findall(r'<a id="export-(gpkg|shp)" href="([^"]+)"', page.content.decode()))
    gpkg = lead.get(hrefs["gpkg"].replace("&amp;", "&"))
    assert gpkg.status_code == 200
    assert gpkg["Content-Type"] == "application/geopackage+sqlite3"
    assert gpkg.content.startswith(b"SQLite format 3\x00")
    shp = lead.get(hrefs["shp"].replace("&amp;", "&"))
    assert shp.status_code == 200 and shp["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(shp.content)).namelist()
    assert {"demo-samples.shp", "demo-samples.prj", "demo-samples.dbf"} <= set(names)
    # The same links refuse an annotator.
    assert login("annotator").get(hrefs["gpkg"]).status_code == 403


# --- Assign blocks ---------------------------------------------------------------------------


def test_assign_page_shows_counts_per_person(users, blocks, login):
    r = login("lead").get("/campaigns/demo/assign/")
    # The fixture gives both blocks to the annotator, in progress.
    cells = row(r, 'data-user="annotator"').split()
    assert cells == ["annotator", "0", "2", "0", "0", "0", "2"]
    assert "0 blocks nobody was given yet" in text(r)
    assert "annotator" in r.content.decode() and 'name="users"' in r.content.decode()


def test_assign_by_ids_and_codes_creates_assignments(users, queue, login):
    lead = login("lead")
    r = lead.post(
        "/campaigns/queue/assign/",
        {
            "blocks": f"{queue[0].pk}, R2390C5851\n{queue[2].pk}",
            "users": ["annotator"],
            "priority": "3",
        },
    )
    assert r.status_code == 302 and r["Location"] == "/campaigns/queue/assign/"
    rows = Assignment.objects.filter(block__campaign__slug="queue")
    assert sorted(
        (a.block_id, a.user.username, a.priority, a.agreement, a.assigned_by.username) for a in rows
    ) == [(queue[i].pk, "annotator", 3, False, "lead") for i in range(3)]
    page = lead.get(r["Location"])
    assert "3 assignment(s) created, 0 of them for agreement" in text(page)
    assert row(page, 'data-user="annotator"').split() == ["annotator", "3", "0", "0", "0", "0", "3"]

    # Repeating it is harmless: the pairs are already assigned.
    lead.post("/campaigns/queue/assign/", {"blocks": f"{queue[0].pk}", "users": ["annotator"]})
    assert rows.count() == 3
    assert "0 assignment(s) created" in text(lead.get("/campaigns/queue/assign/"))


def test_assign_unassigned_blocks_in_queue_order_shared_out(users, queue, login):
    lead = login("lead")
    r = lead.post("/campaigns/queue/assign/", {"count": "4", "users": ["annotator", "admin"]})
    assert r.status_code == 302
    got = {
        a.block_id: (a.user.username, a.priority)
        for a in Assignment.objects.filter(block__campaign__slug="queue")
    }
    # Seed order 1, 2, 3, 4 are queue[4], queue[3], queue[2], queue[1]: shared out in turn, in
    # the order the people are listed (by name).
    assert got == {
        queue[4].pk: ("admin", 1),
        queue[3].pk: ("annotator", 2),
        queue[2].pk: ("admin", 3),
        queue[1].pk: ("annotator", 4),
    }
    # The rest of the queue next time; only blocks nobody was given.
    lead.post("/campaigns/queue/assign/", {"count": "5", "users": ["lead"]})
    assert {a.block_id for a in Assignment.objects.filter(user=users["lead"])} == {
        queue[0].pk,
        queue[5].pk,
    }
    r = lead.post("/campaigns/queue/assign/", {"count": "1", "users": ["lead"]})
    assert r.status_code == 400 and "No block is left" in text(r)


def test_assign_unassigned_blocks_of_one_province(users, queue, login):
    geom = MultiPolygon(GeosPolygon.from_bbox((112, 30, 113, 31)), srid=4326)
    hubei = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省", name_en="Hubei", geometry=geom
    )
    for b in queue[:2]:
        b.province = hubei
        b.save()
    lead = login("lead")
    page = lead.get("/campaigns/queue/assign/").content.decode()
    assert '<option value="420000">湖北省 · Hubei (2)</option>' in page
    r = lead.post(
        "/campaigns/queue/assign/", {"count": "10", "province": "420000", "users": ["annotator"]}
    )
    assert r.status_code == 302
    assert {a.block_id for a in Assignment.objects.all() if a.block.campaign.slug == "queue"} == {
        queue[0].pk,
        queue[1].pk,
    }


def test_assign_with_an_agreement_share_for_a_second_annotator(users, queue, login):
    lead = login("lead")
    r = lead.post(
        "/campaigns/queue/assign/",
        {"count": "4", "users": ["annotator"], "second": "admin", "second_percent": "50"},
    )
    assert r.status_code == 302
    qs = Assignment.objects.filter(block__campaign__slug="queue")
    assert sorted(
        qs.filter(user=users["annotator"]).values_list("block_id", "agreement")
    ) == sorted((queue[i].pk, False) for i in (1, 2, 3, 4))
    # Half of the annotator's four blocks, spread over their queue: the 1st and the 3rd.
    assert sorted(qs.filter(user=users["admin"]).values_list("block_id", "agreement")) == sorted(
        [(queue[4].pk, True), (queue[2].pk, True)]
    )
    page = lead.get("/campaigns/queue/assign/")
    assert "6 assignment(s) created, 2 of them for agreement" in text(page)
    assert row(page, 'data-user="admin"').split() == ["admin", "2", "0", "0", "0", "2", "2"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"blocks": "R9999C9999 12345678", "users": ["annotator"]},
            "Not blocks of this campaign: R9999C9999, 12345678",
        ),
        (
            {"blocks": "R2390C5850", "count": "2", "users": ["annotator"]},
            "Give block ids or a number of blocks, not both.",
        ),
        ({"users": ["annotator"]}, "Give block ids or a number of blocks."),
        ({"blocks": "R2390C5850"}, "This field is required."),
        ({"blocks": "R2390C5850", "users": ["outsider"]}, "Select a valid choice."),
        (
            {"count": "2", "users": ["annotator"], "second": "annotator", "second_percent": "10"},
            "The second annotator cannot also be one of the annotators.",
        ),
        (
            {"count": "2", "users": ["annotator"], "second": "admin", "second_percent": ""},
            "Give the share for the second annotator.",
        ),
        ({"count": "0", "users": ["annotator"]}, "greater than or equal to 1"),
    ],
)
def test_bad_assignment_shows_the_reason_and_writes_nothing(data, message, users, queue, login):
    r = login("lead").post("/campaigns/queue/assign/", data)
    assert r.status_code == 400
    assert message in text(r).replace("&#x27;", "'")
    assert not Assignment.objects.filter(block__campaign__slug="queue").exists()


def test_a_block_of_another_campaign_is_refused(users, blocks, queue, login):
    r = login("lead").post(
        "/campaigns/queue/assign/", {"blocks": str(blocks[1].pk), "users": ["admin"]}
    )
    assert r.status_code == 400 and "Not a block of this campaign" in text(r)
    assert not Assignment.objects.filter(user=users["admin"]).exists()


def test_a_third_person_is_refused_all_or_nothing(users, blocks, login):
    # Both demo blocks are the annotator's; admin becomes each one's second; a third is refused.
    lead = login("lead")
    assert (
        lead.post("/campaigns/demo/assign/", {"blocks": B0, "users": ["admin"]}).status_code == 302
    )
    r = lead.post("/campaigns/demo/assign/", {"blocks": f"{B1} {B0}", "users": ["lead"]})
    assert r.status_code == 400 and "at most 2" in text(r)
    assert not Assignment.objects.filter(user=users["lead"]).exists()


def test_self_assignment_switch(users, blocks, login):
    lead = login("lead")
    campaign = blocks[0].campaign
    assert "now on" in text(lead.get("/campaigns/demo/assign/"))
    r = lead.post("/campaigns/demo/assign/self-assign/", {})
    assert r.status_code == 302 and not self_assign_allowed(campaign=campaign)
    assert "now off" in text(lead.get("/campaigns/demo/assign/"))
    lead.post("/campaigns/demo/assign/self-assign/", {"self_assign": "on"})
    assert self_assign_allowed(campaign=campaign)
