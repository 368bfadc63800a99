"""Double annotation: a share of blocks given to two people, the second draws blind into their own
copy, and leads see the agreement (IoU of the cropland, verdict agreement) by API and page."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from django.contrib.gis.geos import Polygon
from django.db import IntegrityError, transaction

from annotation.models import (
    AgreementPolygon,
    AgreementSample,
    Assignment,
    AssignmentStatus,
    Sample,
    SamplePolygon,
)
from annotation.selectors import SampleCopy, polygon_iou
from annotation.services import (
    agreement_blocks_choose,
    assignment_create,
    polygon_create,
    sample_mark_negative,
    verdict_label_set,
)
from mapping.models import Block, Campaign
from mapping.services.members import campaign_members_add
from tests.annotation.conftest import ROLES, square
from tests.factories import current_prediction_make, user_make

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _predictions(request):
    """A current prediction of the test's blocks on both sources: what verdicts judge."""
    if "blocks" in request.fixturenames and "sources" in request.fixturenames:
        current_prediction_make(
            blocks=request.getfixturevalue("blocks"),
            sources=request.getfixturevalue("sources").values(),
        )

A = square(112.51, 30.31, 112.53, 30.33)  # 0.02 x 0.02 degrees
B = square(112.52, 30.31, 112.54, 30.33)  # A moved east by half its width: IoU 1/3


def draw(c, block, geometry, *, version, source="mapbox"):
    return c.post(
        f"/api/blocks/{block.pk}/samples/{source}/polygons/",
        {"op_id": str(uuid.uuid4()), "geometry": geometry},
        content_type="application/json",
        headers={"If-Match": f'"{version}"'},
    )


def agreement_assign(c, body, slug="demo"):
    return c.post(f"/api/campaigns/{slug}/agreement/assign/", body, content_type="application/json")


@pytest.fixture
def bob(users, blocks, login):
    """A second annotator, given ``blocks[0]`` (the annotator's) for agreement by the lead."""
    bob = user_make("bob", role="annotator")
    r = agreement_assign(
        login("lead"), {"users": ["annotator", "bob"], "blocks": [blocks[0].pk]}
    )
    assert r.status_code == 201, r.content
    assert [(a["user"], a["agreement"]) for a in r.json()["created"]] == [("bob", True)]
    assert r.json()["skipped"] == 1  # the annotator had it already
    Assignment.objects.filter(user=bob).update(status=AssignmentStatus.IN_PROGRESS)
    return bob


def test_second_annotator_draws_blind_into_their_own_copy(users, blocks, sources, bob, login):
    block = blocks[0]
    me = login("annotator")
    him = login(bob)
    assert draw(me, block, A, version=0).status_code == 201
    # bob sees an empty block: not the annotator's polygon, and his copy starts at version 0
    seen = him.get(f"/api/blocks/{block.pk}/samples/mapbox/").json()
    assert (seen["features"], seen["version"], seen["agreement"]) == ([], 0, True)
    r = draw(him, block, B, version=0)
    assert r.status_code == 201 and r.json()["version"] == 1, r.content
    mine = me.get(f"/api/blocks/{block.pk}/samples/mapbox/").json()
    his = him.get(f"/api/blocks/{block.pk}/samples/mapbox/").json()
    assert [f["properties"]["created_by"] for f in mine["features"]] == ["annotator"]
    assert [f["properties"]["created_by"] for f in his["features"]] == ["bob"]
    assert mine["agreement"] is False and his["agreement"] is True
    # a stale write to his copy is judged against his copy's version, not the sample's
    assert draw(him, block, A, version=0).status_code == 412
    # the sample training uses is still one per block and source, with the primary polygon
    assert Sample.objects.filter(block=block).count() == 1
    assert SamplePolygon.objects.get().created_by == users["annotator"]
    assert AgreementSample.objects.get().annotator == bob
    assert AgreementPolygon.objects.get().created_by == bob
    # the lead reads the primary sample at the same URL
    lead = login("lead").get(f"/api/blocks/{block.pk}/samples/mapbox/").json()
    assert [f["properties"]["created_by"] for f in lead["features"]] == ["annotator"]


def test_verdicts_and_audit_stay_blind(users, blocks, sources, bob, login):
    block = blocks[0]
    me = login("annotator")
    him = login(bob)
    assert draw(me, block, A, version=0).status_code == 201
    assert draw(him, block, B, version=0).status_code == 201
    for c, verdict in ((me, "tp"), (him, "fp")):
        r = c.put(
            f"/api/blocks/{block.pk}/labels/verdict/mapbox/",
            {"verdict": verdict},
            content_type="application/json",
        )
        assert r.status_code == 200
    assert [v["value"] for v in him.get(f"/api/blocks/{block.pk}/labels/").json()["verdicts"]] == [
        "fp"
    ]

    def audit(c):
        page = c.get(f"/api/blocks/{block.pk}/audit/").json()
        return {(e["user"], e["object_type"]) for e in page["results"]}

    assert audit(him) == {
        ("bob", "agreement_polygon"),
        ("bob", "verdict_label"),
        ("lead", "assignment"),
    }
    assert ("annotator", "sample_polygon") in audit(me)
    assert not {t for u, t in audit(me) if u == "bob"}
    lead_sees = audit(login("lead"))
    assert {("bob", "agreement_polygon"), ("annotator", "sample_polygon")} <= lead_sees
    assert {("bob", "verdict_label"), ("annotator", "verdict_label")} <= lead_sees


def test_agreement_of_two_squares_computed_by_hand(users, blocks, sources, bob, login):
    """Mapbox: A and B overlap by half a square, union one and a half: IoU 1/3; verdicts tp/fp.
    Google: nobody drew, both said tp: IoU null, verdicts agree. Block 2 (given to the annotator
    only) is not in the report."""
    block = blocks[0]
    me = users["annotator"]
    mapbox, google = sources["mapbox"], sources["google"]
    polygon_create(
        user=me, block=block, source=mapbox, geometry=A, expected_version=0, op_id=uuid.uuid4()
    )
    polygon_create(
        user=bob,
        block=block,
        source=mapbox,
        geometry=B,
        expected_version=0,
        op_id=uuid.uuid4(),
        copy=SampleCopy(annotator=bob),
    )
    verdict_label_set(user=me, block=block, source=mapbox, verdict="tp")
    verdict_label_set(user=bob, block=block, source=mapbox, verdict="fp")
    verdict_label_set(user=me, block=block, source=google, verdict="tp")
    verdict_label_set(user=bob, block=block, source=google, verdict="tp")
    polygon_create(
        user=me,
        block=blocks[1],
        source=mapbox,
        geometry=square(112.56, 30.31, 112.57, 30.32),
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    r = login("lead").get("/api/campaigns/demo/agreement/")
    assert r.status_code == 200
    data = r.json()
    assert data["blocks"] == 1 and data["rows_compared"] == 1
    assert data["mean_iou"] == pytest.approx(1 / 3, rel=1e-6)
    assert (data["verdicts_compared"], data["verdicts_agreed"], data["verdict_agreement"]) == (
        2,
        1,
        0.5,
    )
    rows = {row["source"]: row for row in data["rows"]}
    assert set(rows) == {"mapbox", "google"}
    assert rows["mapbox"]["iou"] == pytest.approx(1 / 3, rel=1e-6)
    assert rows["mapbox"]["users"] == ["annotator", "bob"]
    assert rows["mapbox"]["statuses"] == ["in_progress", "in_progress"]
    assert rows["mapbox"]["kinds"] == ["positive", "positive"]
    assert rows["mapbox"]["verdicts"] == ["tp", "fp"] and rows["mapbox"]["verdict_agrees"] is False
    assert rows["google"]["iou"] is None and rows["google"]["verdict_agrees"] is True
    assert rows["google"]["kinds"] == [None, None]
    assert data["by_source"]["mapbox"]["mean_iou"] == pytest.approx(1 / 3, rel=1e-6)
    assert data["by_source"]["google"] == {
        "rows_compared": 0,
        "mean_iou": None,
        "verdicts_compared": 1,
        "verdicts_agreed": 1,
        "verdict_agreement": 1.0,
    }
    # bob marks google negative: still nobody drew there, but his kind shows it
    sample_mark_negative(
        user=bob,
        block=block,
        source=google,
        expected_version=0,
        op_id=uuid.uuid4(),
        copy=SampleCopy(annotator=bob),
    )
    rows = {
        r["source"]: r
        for r in login("lead").get("/api/campaigns/demo/agreement/").json()["rows"]
    }
    assert rows["google"]["kinds"] == [None, "negative"] and rows["google"]["iou"] is None


def test_only_one_side_drew_is_iou_zero_and_identical_is_one(users, blocks, sources, bob, login):
    block = blocks[0]
    polygon_create(
        user=users["annotator"],
        block=block,
        source=sources["google"],
        geometry=A,
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    for source in (sources["mapbox"],):
        polygon_create(
            user=users["annotator"],
            block=block,
            source=source,
            geometry=B,
            expected_version=0,
            op_id=uuid.uuid4(),
        )
        polygon_create(
            user=bob,
            block=block,
            source=source,
            geometry=B,
            expected_version=0,
            op_id=uuid.uuid4(),
            copy=SampleCopy(annotator=bob),
        )
    data = login("lead").get("/api/campaigns/demo/agreement/").json()
    rows = {r["source"]: r["iou"] for r in data["rows"]}
    assert rows == {"google": 0.0, "mapbox": pytest.approx(1.0)}
    assert data["mean_iou"] == pytest.approx(0.5)


def test_polygon_iou_by_hand():
    import shapely

    a = shapely.box(0, 0, 2, 2)
    assert polygon_iou(a, shapely.box(1, 0, 3, 2)) == pytest.approx(1 / 3)
    assert polygon_iou(a, shapely.box(5, 5, 6, 6)) == 0.0
    assert polygon_iou(shapely.Polygon(), shapely.Polygon()) is None


# --- handing out a share ------------------------------------------------------------------------


@pytest.fixture
def ten(users):
    """Ten blocks of campaign "share" (the lead a member), given to the annotator in seed order
    1..10 (to do)."""
    c = Campaign.objects.create(slug="share", name="Share", region="Hubei", year=2020)
    campaign_members_add(campaign=c, users=[users["lead"]])
    out = []
    for i in range(10):
        x = 113.0 + 0.05 * i
        out.append(
            Block.objects.create(
                campaign=c,
                row=2406,
                col=5860 + i,
                geometry=Polygon.from_bbox((x, 30.3, x + 0.05, 30.35)),
                seed_order=i + 1,
            )
        )
    assignment_create(
        lead=users["lead"],
        campaign=c,
        block_ids=[b.pk for b in out],
        assignees=[users["annotator"]],
    )
    return out


def test_blocks_chosen_evenly_over_the_queue():
    queue = list(range(100, 110))
    assert agreement_blocks_choose(block_ids=queue, percent=30) == [100, 103, 106]
    assert agreement_blocks_choose(block_ids=queue, percent=100) == queue
    assert agreement_blocks_choose(block_ids=queue, percent=1) == [100]  # at least one
    assert agreement_blocks_choose(block_ids=[], percent=50) == []
    for bad in (0, -5, 100.5):
        with pytest.raises(ValueError, match="share"):
            agreement_blocks_choose(block_ids=queue, percent=bad)


def test_lead_gives_a_percentage_of_someones_blocks_to_a_second_person(users, ten, login):
    user_make("bob", role="annotator")
    c = login("lead")
    r = agreement_assign(c, {"users": ["annotator", "bob"], "percent": 30}, slug="share")
    assert r.status_code == 201, r.content
    got = [(a["block"], a["user"], a["agreement"]) for a in r.json()["created"]]
    assert got == [(ten[i].pk, "bob", True) for i in (0, 3, 6)]
    # asked again, the blocks that already have a second person are not chosen again
    r = agreement_assign(c, {"users": ["annotator", "bob"], "percent": 30}, slug="share")
    # the 7 left: 30 % of 7 is 2, spread evenly: the 1st and the 4th of them
    assert [a["block"] for a in r.json()["created"]] == [ten[i].pk for i in (1, 5)]
    assert Assignment.objects.filter(agreement=True).count() == 5
    # the second person's queue serves them their agreement blocks
    bob = login(User.objects.get(username="bob"))
    nxt = bob.post("/api/campaigns/share/next-block/").json()
    assert nxt["assignment"]["block"] == ten[0].pk and nxt["assignment"]["agreement"] is True


def test_bad_agreement_requests_get_the_reason_and_write_nothing(users, ten, login):
    user_make("bob", role="annotator")
    user_make("carol", role="annotator")
    c = login("lead")
    before = Assignment.objects.count()
    cases = [
        ({"users": ["annotator", "bob"]}, 400, "either percent or blocks"),
        ({"users": ["annotator", "bob"], "percent": 10, "blocks": [ten[0].pk]}, 400, "either"),
        ({"users": ["annotator", "bob"], "percent": 0}, 400, "percent"),
        ({"users": ["annotator", "bob"], "percent": 101}, 400, "percent"),
        ({"users": ["annotator", "annotator"], "percent": 10}, 400, "two different"),
        ({"users": ["annotator"], "percent": 10}, 400, "users"),
        ({"users": ["annotator", "nobody"], "percent": 10}, 400, "nobody"),
        ({"users": ["bob", "annotator"], "percent": 10}, 400, "no open block"),
        ({"users": ["annotator", "bob"], "blocks": [999999]}, 400, "not blocks of campaign"),
    ]
    for body, code, reason in cases:
        r = agreement_assign(c, body, slug="share")
        assert r.status_code == code and reason in str(r.json()), (body, r.content)
    assert Assignment.objects.count() == before
    assert agreement_assign(c, {"users": ["annotator", "bob"], "blocks": [ten[0].pk]}, "share")
    r = agreement_assign(c, {"users": ["annotator", "carol"], "blocks": [ten[0].pk]}, "share")
    assert r.status_code == 409 and "at most 2" in r.json()["detail"]
    Assignment.objects.filter(user__username="bob").update(status=AssignmentStatus.ACCEPTED)
    r = agreement_assign(c, {"users": ["annotator", "carol"], "blocks": [ten[0].pk]}, "share")
    assert r.status_code == 409 and "already has a second annotator" in r.json()["detail"]


@pytest.mark.parametrize("role", ROLES)
def test_agreement_assign_is_for_leads(users, ten, role, login):
    user_make("bob", role="annotator")
    r = agreement_assign(
        login(role), {"users": ["annotator", "bob"], "percent": 50}, slug="share"
    )
    expected = {"anonymous": 403, "outsider": 404, "annotator": 403, "lead": 201, "admin": 201}
    assert r.status_code == expected[role], r.content
    assert Assignment.objects.filter(agreement=True).count() == (5 if r.status_code == 201 else 0)


def test_one_active_second_annotator_per_block_is_a_constraint(users, blocks):
    bob, carol = user_make("bob", role="annotator"), user_make("carol", role="annotator")
    Assignment.objects.create(block=blocks[0], user=bob, agreement=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(block=blocks[0], user=carol, agreement=True)


def test_two_people_at_once_first_is_primary(users, queue):
    bob = user_make("bob", role="annotator")
    created, _ = assignment_create(
        lead=users["lead"],
        campaign=queue[0].campaign,
        block_ids=[queue[0].pk],
        assignees=[users["annotator"], bob],
    )
    assert [(a.user.username, a.agreement) for a in created] == [
        ("annotator", False),
        ("bob", True),
    ]


# --- the report: API and page --------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_agreement_is_for_leads(users, blocks, role, login):
    r = login(role).get("/api/campaigns/demo/agreement/")
    expected = {"anonymous": 403, "outsider": 404, "annotator": 403, "lead": 200, "admin": 200}
    assert r.status_code == expected[role]
    if role == "lead":
        assert r.json() == {
            "campaign": "demo",
            "blocks": 0,
            "rows_compared": 0,
            "mean_iou": None,
            "verdicts_compared": 0,
            "verdicts_agreed": 0,
            "verdict_agreement": None,
            "by_source": {},
            "rows": [],
        }


@pytest.mark.parametrize(
    "role,code", [("annotator", 403), ("lead", 200), ("admin", 200), ("outsider", 404)]
)
def test_agreement_page_for_leads_linked_from_the_campaign(
    users, blocks, sources, bob, role, code, login
):
    polygon_create(
        user=users["annotator"],
        block=blocks[0],
        source=sources["mapbox"],
        geometry=A,
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    polygon_create(
        user=bob,
        block=blocks[0],
        source=sources["mapbox"],
        geometry=B,
        expected_version=0,
        op_id=uuid.uuid4(),
        copy=SampleCopy(annotator=bob),
    )
    c = login(role)
    r = c.get("/campaigns/demo/agreement/")
    assert r.status_code == code
    overview = c.get("/campaigns/demo/")
    if code != 200:
        assert 'id="agreement-link"' not in overview.content.decode()
        return
    page = r.content.decode()
    assert f'data-block="{blocks[0].pk}" data-source="mapbox"' in page
    assert ">0.333<" in page and blocks[0].code in page and "bob" in page
    assert f'href="/annotate/blocks/{blocks[0].pk}/"' in page
    assert 'href="/campaigns/demo/agreement/"' in overview.content.decode()
