"""Sample API: who may do what (every endpoint x role), If-Match/ETag, op_id retries, bad input."""

from __future__ import annotations

import json
import uuid

import pytest

from annotation import access
from annotation.models import AuditEntry, ClientOperation, Sample, SamplePolygon
from annotation.services import polygon_create
from croplayer_site.roles import ADMIN, LEAD
from tests.annotation.conftest import ROLES, square

pytestmark = pytest.mark.django_db

INSIDE = square(112.51, 30.31, 112.52, 30.32)


@pytest.fixture
def drawn(users, block, source):
    """One polygon drawn by the admin: the sample is at version 1."""
    r = polygon_create(
        user=users["admin"],
        block=block,
        source=source,
        geometry=INSIDE,
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    return r.polygon["id"]


def stored():
    return (
        SamplePolygon.objects.count(),
        AuditEntry.objects.count(),
        ClientOperation.objects.count(),
        list(Sample.objects.values_list("version", flat=True)),
    )


def base(block, source="mapbox"):
    return f"/api/blocks/{block.pk}/samples/{source}/"


def request(c, endpoint, block, polygon_id, *, version="1", source="mapbox", body=None):
    """One call of each endpoint with a valid body and If-Match."""
    url = base(block, source)
    headers = {"If-Match": f'"{version}"'} if version is not None else {}
    op = str(uuid.uuid4())
    if endpoint == "sample":
        return c.get(url)
    if endpoint == "audit":
        return c.get(f"/api/blocks/{block.pk}/audit/")
    if endpoint == "create":
        body = body or {"op_id": op, "geometry": INSIDE, "subtype": "paddy"}
        return c.post(f"{url}polygons/", body, content_type="application/json", headers=headers)
    if endpoint == "update":
        body = body or {"op_id": op, "subtype": "fallow"}
        return c.patch(
            f"{url}polygons/{polygon_id}/", body, content_type="application/json", headers=headers
        )
    if endpoint == "delete":
        return c.delete(f"{url}polygons/{polygon_id}/?op_id={op}", headers=headers)
    if endpoint == "negative":
        return c.post(
            f"{url}negative/", {"op_id": op}, content_type="application/json", headers=headers
        )
    raise AssertionError(endpoint)


READS = ["sample", "audit"]
WRITES = {"create": 201, "update": 200, "delete": 200, "negative": 200}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", [*READS, *WRITES])
def test_every_endpoint_for_every_role(users, block, drawn, role, endpoint, login):
    before = stored()
    r = request(login(role), endpoint, block, drawn)
    if role == "anonymous":
        assert r.status_code == 403
    elif role == "outsider":
        assert r.status_code == 404  # like blocks: nothing tells them what exists
    else:
        assert r.status_code == WRITES.get(endpoint, 200), r.content
    if endpoint in WRITES and r.status_code < 300:
        assert r["ETag"] == '"2"' and r.json()["version"] == 2
        assert AuditEntry.objects.count() == before[1] + 1
        assert AuditEntry.objects.latest("id").username == role
    elif endpoint in WRITES:
        assert stored() == before


@pytest.mark.parametrize("endpoint", list(WRITES))
def test_role_that_may_not_write_gets_403_and_can_still_read(
    users, block, drawn, monkeypatch, endpoint, login
):
    monkeypatch.setattr(access, "WRITE_ROLES", (LEAD, ADMIN))
    c = login("annotator")
    before = stored()
    r = request(c, endpoint, block, drawn)
    assert r.status_code == 403 and "may not change" in r.json()["detail"]
    assert stored() == before
    assert request(c, "sample", block, drawn).status_code == 200
    assert request(login("lead"), endpoint, block, drawn).status_code < 300


@pytest.mark.parametrize("endpoint", ["update", "delete"])
def test_foreign_or_unknown_objects_are_404(users, blocks, sources, drawn, endpoint, login):
    """A polygon of another block or source, addressed through this one, does not exist here."""
    east = polygon_create(
        user=users["annotator"],
        block=blocks[1],
        source=sources["mapbox"],
        geometry=square(112.56, 30.31, 112.57, 30.32),
        expected_version=0,
        op_id=uuid.uuid4(),
    ).polygon["id"]
    c = login("annotator")
    before = stored()
    assert request(c, endpoint, blocks[0], east).status_code == 404
    assert request(c, endpoint, blocks[0], drawn, source="google", version="0").status_code == 404
    assert request(c, endpoint, blocks[0], 999999).status_code == 404
    assert stored() == before
    for endpoint_ in ["sample", "create", "negative"]:
        assert request(c, endpoint_, blocks[0], drawn, source="sentinel").status_code == 404
    blocks[1].pk = 999999
    for endpoint_ in ["sample", "audit", "create"]:
        assert request(c, endpoint_, blocks[1], drawn).status_code == 404
    assert stored() == before


def test_read_the_sample_with_version_and_etag(users, block, sources, drawn, login):
    c = login("annotator")
    r = c.get(base(block))
    fc = r.json()
    assert r["ETag"] == '"1"'
    assert fc["type"] == "FeatureCollection" and fc["version"] == 1 and fc["kind"] == "positive"
    (f,) = fc["features"]
    assert f["id"] == drawn and f["geometry"] == INSIDE | {
        "coordinates": f["geometry"]["coordinates"]
    }
    assert f["properties"]["created_by"] == "admin" and f["properties"]["source"] == "mapbox"
    assert c.get(base(block), headers={"If-None-Match": '"1"'}).status_code == 304
    empty = c.get(base(block, "google")).json()
    assert (empty["version"], empty["kind"], empty["features"]) == (0, None, [])


def test_a_day_of_edits_through_the_api(users, block, source, login):
    """Each write answers with the version the next one sends; the audit tells the story."""
    c = login("annotator")
    version = c.get(base(block))["ETag"]
    r = c.post(
        f"{base(block)}polygons/",
        {"op_id": str(uuid.uuid4()), "geometry": square(112.54, 30.34, 112.6, 30.4)},
        content_type="application/json",
        headers={"If-Match": version},
    )
    assert r.status_code == 201 and r["ETag"] == '"1"'
    pid = r.json()["polygon"]["id"]
    # Clipped to the block edge.
    assert max(x for x, _ in r.json()["polygon"]["geometry"]["coordinates"][0]) == 112.55
    r = c.patch(
        f"{base(block)}polygons/{pid}/",
        {"op_id": str(uuid.uuid4()), "geometry": INSIDE, "subtype": "greenhouse"},
        content_type="application/json",
        headers={"If-Match": r["ETag"]},
    )
    assert r.status_code == 200 and r.json()["polygon"]["properties"]["subtype"] == "greenhouse"
    r = c.delete(
        f"{base(block)}polygons/{pid}/?op_id={uuid.uuid4()}", headers={"If-Match": r["ETag"]}
    )
    assert r.status_code == 200 and r.json() == {"version": 3, "kind": "positive", "polygon": None}
    r = c.post(
        f"{base(block)}negative/",
        {"op_id": str(uuid.uuid4())},
        content_type="application/json",
        headers={"If-Match": r["ETag"]},
    )
    assert r.status_code == 200 and r.json()["kind"] == "negative" and r["ETag"] == '"4"'
    audit = c.get(f"/api/blocks/{block.pk}/audit/").json()
    assert audit["count"] == 4
    actions = [e["action"] for e in audit["results"]]
    assert actions == ["sample_mark_negative", "polygon_delete", "polygon_update", "polygon_create"]
    update = audit["results"][2]
    assert update["before"]["properties"]["subtype"] == "irrigated_dry"
    assert update["after"]["properties"]["subtype"] == "greenhouse"
    assert update["user"] == "annotator" and update["source"] == "mapbox"
    assert c.get(f"/api/blocks/{block.pk}/audit/?source=google").json()["count"] == 0


def test_retry_with_the_same_op_id_is_answered_once(users, block, source, drawn, login):
    c = login("annotator")
    body = {"op_id": str(uuid.uuid4()), "geometry": square(112.52, 30.32, 112.53, 30.33)}
    first = request(c, "create", block, drawn, body=body)
    again = request(c, "create", block, drawn, body=body)  # same If-Match "1": a replay, not 412
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert SamplePolygon.objects.count() == 2
    body["subtype"] = "paddy"
    r = request(c, "create", block, drawn, body=body, version="2")
    assert r.status_code == 409 and "op_id" in r.json()


def test_stale_if_match_gets_412_with_the_current_polygons(users, block, drawn, login):
    c = login("lead")
    before = stored()
    for endpoint in WRITES:
        r = request(c, endpoint, block, drawn, version="0")
        assert r.status_code == 412, endpoint
        body = r.json()
        assert body["version"] == 1 and r["ETag"] == '"1"'
        assert [f["id"] for f in body["polygons"]["features"]] == [drawn]
    assert stored() == before


def _vertices(n):
    import math

    ring = [
        [
            112.525 + 0.01 * math.cos(2 * math.pi * i / n),
            30.325 + 0.01 * math.sin(2 * math.pi * i / n),
        ]
        for i in range(n)
    ]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


OP = "5b1e6a35-3c54-4b0a-9a4e-0d0c8a0e1f00"


def raw_with_first_longitude(text: str) -> str:
    """A create body as JSON text, with ``text`` written verbatim as the first longitude."""
    ring = f"[[{text}, 30.31], [112.52, 30.31], [112.52, 30.32], [112.51, 30.31]]"
    return f'{{"op_id": "{OP}", "geometry": {{"type": "Polygon", "coordinates": [{ring}]}}}}'


BOWTIE = [[112.51, 30.31], [112.52, 30.32], [112.52, 30.31], [112.51, 30.32], [112.51, 30.31]]


@pytest.mark.parametrize(
    ("headers", "raw", "status", "words"),
    [
        # NaN is not JSON: the parser refuses it.
        (
            {"If-Match": '"1"'},
            raw_with_first_longitude("NaN"),
            400,
            "JSON parse error",
        ),
        # 1e999 is JSON, and parses to infinity: the geometry rules refuse it.
        (
            {"If-Match": '"1"'},
            raw_with_first_longitude("1e999"),
            400,
            "finite",
        ),
        (
            {"If-Match": '"1"'},
            json.dumps({"op_id": OP, "geometry": {"type": "Polygon", "coordinates": [BOWTIE]}}),
            400,
            "the outline crosses or touches itself",
        ),
        (
            {"If-Match": '"1"'},
            json.dumps({"op_id": OP, "geometry": square(112.6, 30.4, 112.7, 30.5)}),
            400,
            "outside the block",
        ),
        (
            {"If-Match": '"1"'},
            json.dumps({"op_id": OP, "geometry": _vertices(5001)}),
            400,
            "too many vertices",
        ),
        ({"If-Match": '"1"'}, json.dumps({"op_id": OP, "geometry": None}), 400, "geometry"),
        ({"If-Match": '"1"'}, json.dumps({"geometry": INSIDE}), 400, "op_id"),
        (
            {"If-Match": '"1"'},
            json.dumps({"op_id": OP, "geometry": INSIDE, "subtype": "orchard"}),
            400,
            "subtype",
        ),
        ({"If-Match": '"1"'}, '{"op_id": "' + OP + '", "geometry": ', 400, "JSON parse error"),
        ({}, json.dumps({"op_id": OP, "geometry": INSIDE}), 428, "If-Match is required"),
        ({"If-Match": "latest"}, json.dumps({"op_id": OP, "geometry": INSIDE}), 400, "If-Match"),
        ({"If-Match": '"0"'}, json.dumps({"op_id": OP, "geometry": INSIDE}), 412, "version 1"),
    ],
    ids=[
        "nan",
        "inf",
        "self-intersection",
        "outside",
        "too-many-vertices",
        "null-geometry",
        "no-op-id",
        "bad-subtype",
        "malformed-json",
        "no-if-match",
        "bad-if-match",
        "stale-if-match",
    ],
)
def test_bad_create_requests_get_the_reason_and_store_nothing(
    users, block, drawn, headers, raw, status, words, login
):
    c = login("annotator")
    before = stored()
    r = c.post(f"{base(block)}polygons/", raw, content_type="application/json", headers=headers)
    assert r.status_code == status, r.content
    assert words in r.content.decode()
    assert stored() == before


def test_bad_update_and_delete_requests(users, block, drawn, login):
    c = login("annotator")
    url = f"{base(block)}polygons/{drawn}/"
    before = stored()
    r = c.patch(url, {"op_id": OP}, content_type="application/json", headers={"If-Match": "1"})
    assert r.status_code == 400 and "give a geometry, a subtype or both" in r.content.decode()
    bowtie = {"op_id": OP, "geometry": {"type": "Polygon", "coordinates": [BOWTIE]}}
    r = c.patch(url, bowtie, content_type="application/json", headers={"If-Match": "1"})
    assert r.status_code == 400 and "the outline crosses" in r.json()["geometry"][0]
    assert c.delete(url, headers={"If-Match": "1"}).status_code == 400  # no op_id
    assert c.delete(f"{url}?op_id={OP}").status_code == 428
    assert stored() == before


def test_openapi_schema_documents_the_sample_endpoints(users, login):
    r = login("admin").get("/api/schema/", HTTP_ACCEPT="application/json")
    schema = r.json()
    paths = schema["paths"]
    polygon = paths["/api/blocks/{block_id}/samples/{source}/polygons/{polygon_id}/"]
    assert set(polygon) >= {"patch", "delete"}
    create = paths["/api/blocks/{block_id}/samples/{source}/polygons/"]["post"]
    assert {"201", "400", "403", "404", "409", "412", "428"} <= set(create["responses"])
    assert any(p["name"] == "If-Match" and p["required"] for p in create["parameters"])
    assert "/api/blocks/{block_id}/audit/" in paths
    assert "/api/blocks/{block_id}/samples/{source}/negative/" in paths
