"""Every annotation endpoint x each role x own/foreign object -> the expected status.

The endpoints are read from the URL conf (every route served by a view of the ``annotation``
package, with each HTTP method its view implements), so a new endpoint without a row here
fails ``test_matrix`` until someone decides who may use it.

"Own" is the requester's own object: the block assigned to them, their assignment, their import,
a campaign they work in. "Foreign" belongs to bob, another annotator (or, for imports, to the
other lead/admin; for campaign-wide endpoints, a campaign the requester has nothing in). Users
without a role (outsider) and anonymous requests have nothing of their own: for them "own" is
the annotator's object.

Campaigns: "lead" is a member of campaign "demo", where every block below lies; "other_lead"
is a lead of campaign "other" only, where their own block, assignment and import are. For
other_lead, "own" is in "other" and "foreign" in "demo" (bob's block and assignment, the demo
lead's import, the campaign "demo"): a lead of another campaign gets 404 for all of it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import User
from django.contrib.gis.geos import Polygon
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from annotation.models import Assignment, AuditEntry, ClientOperation
from annotation.services import polygon_create
from mapping.models import Block, Campaign, ImagerySource
from mapping.services.members import campaign_members_add
from tests.annotation.conftest import square
from tests.factories import current_prediction_make, user_make

pytestmark = pytest.mark.django_db

ROLES = ("annotator", "lead", "admin", "outsider", "anonymous", "other_lead")
# roles that can own blocks, assignments, imports
OWNERS = ("annotator", "lead", "admin", "other_lead")
OBJECTS = ("own", "foreign")
SAFE = {"GET", "HEAD", "OPTIONS"}


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def annotation_endpoints() -> list[tuple[str, str]]:
    """(url name, METHOD) of every route whose view lives in the annotation package."""
    found = set()
    for _route, p in _walk(get_resolver().url_patterns):
        view = getattr(p.callback, "view_class", None) or getattr(p.callback, "cls", None)
        module = getattr(view or p.callback, "__module__", "")
        if not module.startswith("annotation.") or not (p.name or "").startswith("api-"):
            continue
        methods = [m for m in getattr(view, "http_method_names", []) if hasattr(view, m)]
        for m in methods:
            if m not in ("options", "head"):
                found.add((p.name, m.upper()))
    return sorted(found)


# --- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    users: dict[str, User]
    block: dict[str, Block]  # owner -> their block (annotator, lead, admin, bob, other_lead)
    polygon: dict[str, int]  # owner -> the polygon on their block
    assignment: dict[str, Assignment]  # owner -> their assignment
    free: dict[str, Block]  # campaign slug -> a block nobody has
    imports: dict[str, str] = field(default_factory=dict)
    login: Callable[..., Client] | None = None  # the ``login`` fixture

    def client(self, role: str) -> Client:
        """A client logged in as ``role`` (a key of ``users``), or nobody's for "anonymous"."""
        return self.login(self.users.get(role, role))

    def owner(self, role: str, obj: str, *, others: str = "bob") -> str:
        mine = role if role in OWNERS else "annotator"
        if obj == "own":
            return mine
        if others == "bob":
            return "bob"
        return "admin" if mine == "lead" else "lead"  # the other lead/admin


def _box(i: int) -> tuple[float, float, float, float]:
    x = 112.5 + 0.05 * i
    return (x, 30.3, x + 0.05, 30.35)


@pytest.fixture
def world(users, settings, login) -> World:
    bob = user_make("bob", role="annotator")
    other_lead = user_make("other_lead", role="lead")
    people = {**users, "bob": bob, "other_lead": other_lead}
    source = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    demo = Campaign.objects.create(slug="demo", name="Demo", region="Hubei", year=2020)
    other = Campaign.objects.create(slug="other", name="Other", region="Hubei", year=2020)
    campaign_members_add(campaign=demo, users=[users["lead"]])
    campaign_members_add(campaign=other, users=[other_lead])
    block, polygon, assignment = {}, {}, {}
    owners = [("annotator", demo, 0), ("lead", demo, 1), ("admin", demo, 2), ("bob", demo, 3)]
    for owner, campaign, i in [*owners, ("other_lead", other, 6)]:
        b = Block.objects.create(
            campaign=campaign,
            row=2406,
            col=5850 + i,
            geometry=Polygon.from_bbox(_box(i)),
            seed_order=i,
        )
        block[owner] = b
        assignment[owner] = Assignment.objects.create(block=b, user=people[owner], priority=1)
        w, s, _e, _n = _box(i)
        polygon[owner] = polygon_create(
            user=people[owner],
            block=b,
            source=source,
            geometry=square(w + 0.01, s + 0.01, w + 0.02, s + 0.02),
            expected_version=0,
            op_id=uuid.uuid4(),
        ).polygon["id"]
    free = {
        "demo": Block.objects.create(
            campaign=demo, row=2406, col=5854, geometry=Polygon.from_bbox(_box(4)), seed_order=4
        ),
        "other": Block.objects.create(
            campaign=other, row=2406, col=5855, geometry=Polygon.from_bbox(_box(5)), seed_order=5
        ),
    }
    # What verdicts judge: a current prediction of every block (each campaign its own model).
    for campaign in (demo, other):
        blocks = [b for b in [*block.values(), *free.values()] if b.campaign_id == campaign.pk]
        current_prediction_make(blocks=blocks, sources=[source])
    return World(
        users=people, block=block, polygon=polygon, assignment=assignment, free=free, login=login
    )


def _json(c: Client, method: str, url: str, body=None, headers=None):
    return getattr(c, method.lower())(
        url, json.dumps(body or {}), content_type="application/json", headers=headers or {}
    )


# --- one call per endpoint ----------------------------------------------------------------------


def _sample_url(w: World, role: str, obj: str) -> str:
    return f"/api/blocks/{w.block[w.owner(role, obj)].pk}/samples/mapbox/"


def _block_url(w: World, role: str, obj: str, rest: str) -> str:
    return f"/api/blocks/{w.block[w.owner(role, obj)].pk}/{rest}"


def _campaign(role: str, obj: str) -> str:
    """The requester's campaign ("other" for other_lead, else "demo"), or the other one."""
    home, away = ("other", "demo") if role == "other_lead" else ("demo", "other")
    return home if obj == "own" else away


IF_MATCH = {"If-Match": '"1"'}


def _op() -> dict:
    return {"op_id": str(uuid.uuid4())}


def _geojson_upload(w: World, campaign: str) -> SimpleUploadedFile:
    x0, y0, _x1, _y1 = w.free[campaign].geometry.extent
    feature = {
        "type": "Feature",
        "properties": {"subtype": "paddy"},
        "geometry": square(x0 + 0.01, y0 + 0.01, x0 + 0.03, y0 + 0.03),
    }
    body = json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()
    return SimpleUploadedFile("s.geojson", body, content_type="application/geo+json")


def _preview(w: World, uploader: str) -> str:
    """An import previewed by ``uploader`` in their campaign; its id."""
    c = w.client(uploader)
    campaign = _campaign(uploader, "own")
    r = c.post(
        f"/api/campaigns/{campaign}/samples/import/preview",
        {"file": _geojson_upload(w, campaign), "source": "mapbox"},
    )
    assert r.status_code == 200, r.content
    return r.json()["import_id"]


def _commit(w: World, c: Client, role: str, obj: str):
    mine = role if role in ("lead", "admin", "other_lead") else "lead"
    uploader = mine if obj == "own" else w.owner(mine, "foreign", others="leads")
    import_id = _preview(w, uploader)
    return c.post(f"/api/campaigns/{_campaign(uploader, 'own')}/samples/import/{import_id}/commit")


def _set_status(w: World, role: str, obj: str, status: str) -> Assignment:
    a = w.assignment[w.owner(role, obj)]
    Assignment.objects.filter(pk=a.pk).update(status=status)
    return a


CALLS: dict[tuple[str, str], Callable] = {
    ("api-sample-detail", "GET"): lambda w, c, r, o: c.get(_sample_url(w, r, o)),
    ("api-polygon-create", "POST"): lambda w, c, r, o: _json(
        c,
        "POST",
        _sample_url(w, r, o) + "polygons/",
        {**_op(), "geometry": square(*w.block[w.owner(r, o)].geometry.extent)},
        IF_MATCH,
    ),
    ("api-polygon-detail", "PATCH"): lambda w, c, r, o: _json(
        c,
        "PATCH",
        f"{_sample_url(w, r, o)}polygons/{w.polygon[w.owner(r, o)]}/",
        {**_op(), "subtype": "fallow"},
        IF_MATCH,
    ),
    ("api-polygon-detail", "DELETE"): lambda w, c, r, o: c.delete(
        f"{_sample_url(w, r, o)}polygons/{w.polygon[w.owner(r, o)]}/?op_id={uuid.uuid4()}",
        headers=IF_MATCH,
    ),
    ("api-sample-negative", "POST"): lambda w, c, r, o: _json(
        c, "POST", _sample_url(w, r, o) + "negative/", _op(), IF_MATCH
    ),
    ("api-block-audit", "GET"): lambda w, c, r, o: c.get(_block_url(w, r, o, "audit/")),
    ("api-block-prediction", "GET"): lambda w, c, r, o: c.get(
        _block_url(w, r, o, "sources/mapbox/prediction/")
    ),
    ("api-block-labels", "GET"): lambda w, c, r, o: c.get(_block_url(w, r, o, "labels/")),
    ("api-label-verdict", "PUT"): lambda w, c, r, o: _json(
        c, "PUT", _block_url(w, r, o, "labels/verdict/mapbox/"), {"verdict": "tp"}
    ),
    ("api-label-coverage", "PUT"): lambda w, c, r, o: _json(
        c, "PUT", _block_url(w, r, o, "labels/coverage/mapbox/"), {"coverage_type": "planting"}
    ),
    ("api-label-integration", "PUT"): lambda w, c, r, o: _json(
        c, "PUT", _block_url(w, r, o, "labels/integration/"), {"decision": "merge_both"}
    ),
    ("api-campaign-assignments", "POST"): lambda w, c, r, o: _json(
        c,
        "POST",
        f"/api/campaigns/{_campaign(r, o)}/assignments/",
        {"blocks": [w.free[_campaign(r, o)].pk], "users": ["bob"]},
    ),
    ("api-campaign-next-block", "POST"): lambda w, c, r, o: c.post(
        f"/api/campaigns/{_campaign(r, o)}/next-block/"
    ),
    ("api-campaign-agreement", "GET"): lambda w, c, r, o: c.get(
        f"/api/campaigns/{_campaign(r, o)}/agreement/"
    ),
    ("api-campaign-agreement-assign", "POST"): lambda w, c, r, o: _json(
        c,
        "POST",
        f"/api/campaigns/{_campaign(r, o)}/agreement/assign/",
        {"users": ["annotator", "bob"], "blocks": [w.free[_campaign(r, o)].pk]},
    ),
    ("api-campaign-overview", "GET"): lambda w, c, r, o: c.get(
        f"/api/campaigns/{_campaign(r, o)}/overview.geojson"
    ),
    ("api-campaign-tiles", "GET"): lambda w, c, r, o: c.get(
        f"/api/campaigns/{_campaign(r, o)}/tiles/3/6/3.pbf"
    ),
    ("api-campaign-overview-counts", "GET"): lambda w, c, r, o: c.get(
        f"/api/campaigns/{_campaign(r, o)}/overview-counts/"
    ),
    ("api-assignment-list", "GET"): lambda w, c, r, o: c.get(
        "/api/assignments/" + ("" if o == "own" else "?user=bob")
    ),
    ("api-assignment-start", "POST"): lambda w, c, r, o: c.post(
        f"/api/assignments/{w.assignment[w.owner(r, o)].pk}/start/"
    ),
    ("api-assignment-submit", "POST"): lambda w, c, r, o: c.post(
        f"/api/assignments/{_set_status(w, r, o, 'in_progress').pk}/submit/"
    ),
    ("api-assignment-review", "POST"): lambda w, c, r, o: _json(
        c,
        "POST",
        f"/api/assignments/{_set_status(w, r, o, 'submitted').pk}/review/",
        {"decision": "accept"},
    ),
    ("api-samples-import-preview", "POST"): lambda w, c, r, o: c.post(
        f"/api/campaigns/{_campaign(r, o)}/samples/import/preview",
        {"file": _geojson_upload(w, _campaign(r, o)), "source": "mapbox"},
    ),
    ("api-samples-import-commit", "POST"): _commit,
    ("api-samples-export", "GET"): lambda w, c, r, o: c.get(
        f"/api/campaigns/{_campaign(r, o)}/samples/export?format=gpkg"
    ),
}


def E(
    annotator: int,
    lead: int,
    admin: int,
    outsider: int = 404,
    anonymous: int = 403,
    *,
    other_lead: int,
) -> dict:
    """Expected status per role (an outsider learns nothing: 404; anonymous: 403; other_lead is
    a lead of another campaign)."""
    return dict(zip(ROLES, (annotator, lead, admin, outsider, anonymous, other_lead), strict=True))


# Annotators: their own blocks only (403 "not assigned to you" on others'); leads: every block
# of the campaigns they are members of, admins: every block; integration, assigning, agreement
# and imports: leads and admins; assignments: the assignee starts and submits, someone else
# reviews; others' assignments are invisible to annotators (404). A campaign a lead is not a
# member of is answered as if it did not exist (404), with its blocks, assignments and imports:
# "lead" on the campaign "other", other_lead on everything in "demo".
WORK_READ = {
    "own": E(200, 200, 200, other_lead=200),
    "foreign": E(403, 200, 200, other_lead=404),
}
EXPECTED: dict[tuple[str, str], dict[str, dict[str, int]]] = {
    ("api-sample-detail", "GET"): WORK_READ,
    ("api-polygon-create", "POST"): {
        "own": E(201, 201, 201, other_lead=201),
        "foreign": E(403, 201, 201, other_lead=404),
    },
    ("api-polygon-detail", "PATCH"): WORK_READ,
    ("api-polygon-detail", "DELETE"): WORK_READ,
    ("api-sample-negative", "POST"): WORK_READ,
    ("api-block-audit", "GET"): WORK_READ,
    # the block's current prediction: read as the block's work is
    ("api-block-prediction", "GET"): WORK_READ,
    ("api-block-labels", "GET"): WORK_READ,
    ("api-label-verdict", "PUT"): WORK_READ,
    ("api-label-coverage", "PUT"): WORK_READ,
    ("api-label-integration", "PUT"): {
        "own": E(403, 200, 200, other_lead=200),
        "foreign": E(403, 200, 200, other_lead=404),
    },
    ("api-campaign-assignments", "POST"): {
        "own": E(403, 201, 201, other_lead=201),
        "foreign": E(403, 404, 201, other_lead=404),
    },
    ("api-campaign-next-block", "POST"): {
        "own": E(200, 200, 200, other_lead=200),
        "foreign": E(200, 404, 200, other_lead=404),
    },
    ("api-campaign-agreement", "GET"): {
        "own": E(403, 200, 200, other_lead=200),
        "foreign": E(403, 404, 200, other_lead=404),
    },
    ("api-campaign-agreement-assign", "POST"): {
        "own": E(403, 201, 201, other_lead=201),
        "foreign": E(403, 404, 201, other_lead=404),
    },
    ("api-campaign-overview", "GET"): {
        "own": E(200, 200, 200, other_lead=200),
        "foreign": E(200, 404, 200, other_lead=404),
    },
    ("api-campaign-tiles", "GET"): {
        "own": E(200, 200, 200, other_lead=200),
        "foreign": E(200, 404, 200, other_lead=404),
    },
    ("api-campaign-overview-counts", "GET"): {
        "own": E(200, 200, 200, other_lead=200),
        "foreign": E(200, 404, 200, other_lead=404),
    },
    # a list: without a role, or of a campaign not yours, it is empty, not an error
    ("api-assignment-list", "GET"): {
        "own": E(200, 200, 200, outsider=200, other_lead=200),
        "foreign": E(200, 200, 200, outsider=200, other_lead=200),
    },
    ("api-assignment-start", "POST"): {
        "own": E(200, 200, 200, other_lead=200),
        "foreign": E(404, 403, 403, other_lead=404),
    },
    ("api-assignment-submit", "POST"): {
        "own": E(200, 200, 200, other_lead=200),
        "foreign": E(404, 403, 403, other_lead=404),
    },
    ("api-assignment-review", "POST"): {
        "own": E(403, 403, 403, other_lead=403),
        "foreign": E(404, 200, 200, other_lead=404),
    },
    ("api-samples-import-preview", "POST"): {
        "own": E(403, 200, 200, other_lead=200),
        "foreign": E(403, 404, 200, other_lead=404),
    },
    ("api-samples-import-commit", "POST"): {
        "own": E(403, 201, 201, other_lead=201),
        "foreign": E(403, 404, 404, other_lead=404),
    },
    ("api-samples-export", "GET"): {
        "own": E(403, 200, 200, other_lead=200),
        "foreign": E(403, 404, 200, other_lead=404),
    },
}

ENDPOINTS = annotation_endpoints()


def test_the_url_conf_was_read():
    """Guards the discovery itself: it must find the endpoints we know exist."""
    assert ("api-polygon-detail", "DELETE") in ENDPOINTS
    assert ("api-samples-export", "GET") in ENDPOINTS
    assert len(ENDPOINTS) >= 20


def test_every_row_is_a_real_endpoint():
    assert set(EXPECTED) - set(ENDPOINTS) == set()
    assert set(CALLS) == set(EXPECTED)


def _state() -> tuple:
    return (
        AuditEntry.objects.count(),
        ClientOperation.objects.count(),
        sorted(Assignment.objects.values_list("pk", "status")),
    )


@pytest.mark.parametrize("obj", OBJECTS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]}:{e[1]}")
def test_matrix(world, endpoint, role, obj):
    assert endpoint in EXPECTED, f"{endpoint} has no row in the permission matrix: add one"
    expected = EXPECTED[endpoint][obj][role]
    c = world.client(role)
    call = CALLS[endpoint]
    if endpoint[1] in SAFE or expected < 400:
        r = call(world, c, role, obj)
    else:
        # refused writes change nothing (the call itself may set up an assignment's status)
        r = call(world, c, role, obj)
        before = _state()
        r2 = call(world, c, role, obj)
        assert r2.status_code == r.status_code
        assert _state() == before
    assert r.status_code == expected, (endpoint, role, obj, r.content[:300])


def test_a_lead_lists_only_the_assignments_of_their_campaigns(world):
    """The list is 200 for everyone with a role; what is in it depends on the campaign."""

    def listed(role: str, query: str = "") -> set[str]:
        r = world.client(role).get("/api/assignments/" + query)
        assert r.status_code == 200
        return {a["user"] for a in r.json()["results"]}

    assert listed("lead") == {"annotator", "lead", "admin", "bob"}
    assert listed("other_lead") == {"other_lead"}
    assert listed("other_lead", "?user=bob") == set()
    assert listed("admin") == {"annotator", "lead", "admin", "bob", "other_lead"}
    assert listed("annotator") == {"annotator"}
