"""Work flow: assigning, the status machine, next block, self-claim, who may do what, agreement."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from annotation.models import (
    Assignment,
    AssignmentStatus,
    AuditAction,
    AuditEntry,
    CampaignWorkflow,
)
from annotation.services import (
    TransitionRefused,
    assignment_create,
    assignment_review,
    assignment_self_claim,
    assignment_start,
    assignment_submit,
    block_next_for_user,
)
from tests.annotation.conftest import ROLES, square
from tests.factories import user_make

pytestmark = pytest.mark.django_db



def post(c, path, body=None):
    return c.post(f"/api/{path}", body or {}, content_type="application/json")


def assign(c, blocks, people, **extra):
    body = {"blocks": [b.pk for b in blocks], "users": people, **extra}
    return post(c, "campaigns/queue/assignments/", body)


# --- assigning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_only_leads_and_admins_assign(users, queue, role, login):
    r = assign(login(role), queue[:2], ["annotator"])
    expected = {"anonymous": 403, "outsider": 404, "annotator": 403, "lead": 201, "admin": 201}
    assert r.status_code == expected[role], r.content
    assert Assignment.objects.filter(block__campaign__slug="queue").count() == (
        2 if role in ("lead", "admin") else 0
    )


def test_bulk_assign_with_priority_from_seed_order_and_repeats_skipped(users, queue, login):
    c = login("lead")
    r = assign(c, queue[:3], ["annotator"])
    assert r.status_code == 201
    created = r.json()["created"]
    assert [(a["block"], a["priority"], a["status"]) for a in created] == [
        (queue[0].pk, 5, "todo"),
        (queue[1].pk, 4, "todo"),
        (queue[2].pk, 3, "todo"),
    ]
    assert created[0]["assigned_by"] == "lead" and created[0]["user"] == "annotator"
    again = assign(c, queue[:3], ["annotator"], priority=1)
    assert again.status_code == 201 and again.json() == {"created": [], "skipped": 3}
    entries = AuditEntry.objects.filter(action=AuditAction.ASSIGNMENT_CREATE)
    assert entries.count() == 3 and {e.username for e in entries} == {"lead"}


def test_next_block_follows_the_latest_rounds_selection_then_priority(users, queue, login):
    """Assigned in seed order; once a round has selected blocks, its rank 1 comes first."""
    from annotation.services import block_next_for_user
    from learning.models import BlockSelection, Round, RoundState

    c = login("lead")
    assert assign(c, queue[:4], ["annotator"]).status_code == 201
    campaign = queue[0].campaign
    first = block_next_for_user(user=users["annotator"], campaign=campaign)
    assert first[0].block_id == queue[3].pk  # seed order: the lowest priority number first
    rnd = Round.objects.create(campaign=campaign, number=1, state=RoundState.DONE)
    for rank, blk in enumerate((queue[1], queue[0]), start=1):
        BlockSelection.objects.create(round=rnd, block=blk, rank=rank, score=1.0 / rank)
    nxt = block_next_for_user(user=users["annotator"], campaign=campaign)
    assert nxt[0].block_id == queue[1].pk and nxt[1] is False
    # A round still running does not reorder the queue; the finished one's ranks stay.
    running = Round.objects.create(campaign=campaign, number=2, state=RoundState.SELECTING)
    BlockSelection.objects.create(round=running, block=queue[2], rank=1, score=1.0)
    assert block_next_for_user(user=users["annotator"], campaign=campaign)[0].block_id == (
        queue[1].pk
    )


def test_two_people_per_block_at_most_and_bad_input_writes_nothing(users, queue, login):
    user_make("bob", role="annotator")
    user_make("carol", role="annotator")
    c = login("lead")
    assert assign(c, [queue[0]], ["annotator", "bob"]).status_code == 201
    before = Assignment.objects.count()
    r = assign(c, queue[:2], ["carol"])
    assert r.status_code == 409 and "at most 2" in r.json()["detail"]
    r = assign(c, [queue[1]], ["nobody"])
    assert r.status_code == 400 and "nobody" in str(r.json())
    r = assign(c, [queue[1]], ["outsider"])  # no role: may not work on blocks
    assert r.status_code == 400
    demo_block = Assignment.objects.filter(block__campaign__slug="demo").first().block
    r = assign(c, [queue[1], demo_block], ["carol"])
    assert r.status_code == 400 and "not blocks of campaign" in str(r.json())
    assert assign(c, [queue[1]], ["a", "b", "c"]).status_code == 400
    assert (
        post(c, "campaigns/nope/assignments/", {"blocks": [1], "users": ["bob"]}).status_code == 404
    )
    assert Assignment.objects.count() == before


def test_one_active_assignment_per_block_and_person_is_a_constraint(users, queue):
    Assignment.objects.create(block=queue[0], user=users["annotator"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(block=queue[0], user=users["annotator"])
    Assignment.objects.filter(block=queue[0]).update(status=AssignmentStatus.ACCEPTED)
    Assignment.objects.create(block=queue[0], user=users["annotator"])  # done: may come again


# --- the status machine ------------------------------------------------------------------------


def act(c, assignment, action):
    if action in ("accept", "reject"):
        body = {"decision": action, "comment": "fix the terraces" if action == "reject" else ""}
        return post(c, f"assignments/{assignment.pk}/review/", body)
    return post(c, f"assignments/{assignment.pk}/{action}/")


def test_the_whole_way_through_review_and_back(users, queue, login):
    a = assignment_create(
        lead=users["lead"],
        campaign=queue[0].campaign,
        block_ids=[queue[0].pk],
        assignees=[users["annotator"]],
    )[0][0]
    me, lead = login("annotator"), login("lead")
    r = act(me, a, "start")
    assert r.status_code == 200 and r.json()["status"] == "in_progress" and r.json()["started_at"]
    r = act(me, a, "submit")
    assert r.json()["status"] == "submitted" and r.json()["submitted_at"]
    r = act(lead, a, "reject")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["last_review"], body["review_comment"]) == (
        "in_progress",
        "rejected",
        "fix the terraces",
    )
    assert body["reviewed_by"] == "lead" and body["rejections"] == 1
    # the annotator sees the comment in their list
    mine = me.get("/api/assignments/?campaign=queue").json()
    rows = mine["results"] if isinstance(mine, dict) else mine
    assert rows[0]["review_comment"] == "fix the terraces"
    assert act(me, a, "submit").json()["status"] == "submitted"
    r = act(login("admin"), a, "accept")
    assert r.json()["status"] == "accepted" and r.json()["last_review"] == "accepted"
    assert r.json()["reviewed_by"] == "admin" and r.json()["rejections"] == 1
    actions = list(
        AuditEntry.objects.filter(object_type="assignment", block=queue[0])
        .order_by("id")
        .values_list("action", "username")
    )
    assert actions == [
        ("assignment_create", "lead"),
        ("assignment_start", "annotator"),
        ("assignment_submit", "annotator"),
        ("assignment_reject", "lead"),
        ("assignment_submit", "annotator"),
        ("assignment_accept", "admin"),
    ]
    last = AuditEntry.objects.latest("id")
    assert last.before["status"] == "submitted" and last.after["status"] == "accepted"


LEGAL = {
    ("todo", "start"): "in_progress",
    ("in_progress", "submit"): "submitted",
    ("submitted", "accept"): "accepted",
    ("submitted", "reject"): "in_progress",
}


@pytest.mark.parametrize("status", ["todo", "in_progress", "submitted", "accepted"])
@pytest.mark.parametrize("action", ["start", "submit", "accept", "reject"])
def test_every_transition_from_every_status(users, queue, status, action, login):
    a = Assignment.objects.create(block=queue[0], user=users["annotator"], status=status)
    c = login("lead" if action in ("accept", "reject") else "annotator")
    audit = AuditEntry.objects.count()
    r = act(c, a, action)
    a.refresh_from_db()
    if (status, action) in LEGAL:
        assert r.status_code == 200, r.content
        assert a.status == LEGAL[(status, action)] == r.json()["status"]
        assert AuditEntry.objects.count() == audit + 1
    else:
        assert r.status_code == 409, r.content
        assert r.json()["detail"].startswith(
            f"cannot {'review' if action in ('accept', 'reject') else action}: the assignment is"
        )
        assert a.status == status and AuditEntry.objects.count() == audit


def test_services_refuse_illegal_transitions_with_the_reason(users, queue):
    a = Assignment.objects.create(block=queue[0], user=users["annotator"])
    with pytest.raises(
        TransitionRefused, match="cannot submit: the assignment is to do, not in progress"
    ):
        assignment_submit(user=users["annotator"], assignment=a)
    a = assignment_start(user=users["annotator"], assignment=a)
    with pytest.raises(TransitionRefused, match="is in progress, not submitted"):
        assignment_review(reviewer=users["lead"], assignment=a, accept=True)
    a = assignment_submit(user=users["annotator"], assignment=a)
    with pytest.raises(ValueError, match="needs a comment"):
        assignment_review(reviewer=users["lead"], assignment=a, accept=False, comment="  ")
    a.refresh_from_db()
    assert a.status == AssignmentStatus.SUBMITTED


def test_who_may_act_on_an_assignment(users, queue, login):
    bob = user_make("bob", role="annotator")
    a = Assignment.objects.create(
        block=queue[0], user=users["annotator"], status=AssignmentStatus.IN_PROGRESS
    )
    own_lead = Assignment.objects.create(
        block=queue[1], user=users["lead"], status=AssignmentStatus.SUBMITTED
    )
    bob_c = login(bob)
    assert act(bob_c, a, "submit").status_code == 404  # someone else's: does not exist for bob
    assert act(login("outsider"), a, "submit").status_code == 404
    assert act(login("anonymous"), a, "submit").status_code == 403
    r = act(login("lead"), a, "submit")
    assert r.status_code == 403 and "only the person" in r.json()["detail"]
    Assignment.objects.filter(pk=a.pk).update(status=AssignmentStatus.SUBMITTED)
    r = act(login("annotator"), a, "accept")
    assert r.status_code == 403 and "only leads and admins" in r.json()["detail"]
    r = act(login("lead"), own_lead, "accept")
    assert r.status_code == 403 and "own work" in r.json()["detail"]
    r = post(login("lead"), f"assignments/{a.pk}/review/", {"decision": "reject"})
    assert r.status_code == 400 and "comment" in r.json()
    assert post(login("lead"), "assignments/999999/start/").status_code == 404
    a.refresh_from_db()
    assert a.status == AssignmentStatus.SUBMITTED


def test_submitted_work_is_locked_until_sent_back(users, block, source, login):
    a = Assignment.objects.get(block=block, user=users["annotator"])
    me, lead = login("annotator"), login("lead")
    body = {"op_id": str(uuid.uuid4()), "geometry": square(112.51, 30.31, 112.52, 30.32)}
    url = f"/api/blocks/{block.pk}/samples/mapbox/polygons/"
    assert act(me, a, "submit").status_code == 200
    r = me.post(url, body, content_type="application/json", headers={"If-Match": '"0"'})
    assert r.status_code == 409 and "waits for review" in r.json()["detail"]
    r = me.put(
        f"/api/blocks/{block.pk}/labels/verdict/mapbox/", {"verdict": "tp"}, "application/json"
    )
    assert r.status_code == 409
    assert act(lead, a, "reject").status_code == 200
    r = me.post(url, body, content_type="application/json", headers={"If-Match": '"0"'})
    assert r.status_code == 201


def test_assignment_list_per_role(users, blocks, queue, login):
    Assignment.objects.create(block=queue[0], user=users["lead"], priority=2)
    Assignment.objects.create(block=queue[1], user=user_make("bob", role="annotator"), priority=1)

    def listed(role, query=""):
        data = login(role).get(f"/api/assignments/{query}").json()
        rows = data["results"] if isinstance(data, dict) else data
        return [(r["block_code"], r["user"]) for r in rows]

    assert listed("annotator") == [(b.code, "annotator") for b in blocks]
    assert len(listed("lead")) == len(listed("admin")) == 4
    assert listed("lead", "?campaign=queue") == [(queue[1].code, "bob"), (queue[0].code, "lead")]
    assert listed("lead", "?user=bob") == [(queue[1].code, "bob")]
    assert listed("lead", "?status=in_progress") == [(b.code, "annotator") for b in blocks]
    assert listed("outsider") == []
    assert login("anonymous").get("/api/assignments/").status_code == 403


# --- next block and self-claim -----------------------------------------------------------------


def next_block(c, campaign="queue"):
    return post(c, f"campaigns/{campaign}/next-block/")


def test_next_block_is_the_highest_priority_unfinished_assignment(users, queue, login):
    me = users["annotator"]
    campaign = queue[0].campaign
    # queue[0..2] have seed order 5, 4, 3: the lead's assignment keeps that as priority
    assignment_create(
        lead=users["lead"], campaign=campaign, block_ids=[b.pk for b in queue[:3]], assignees=[me]
    )
    Assignment.objects.filter(block=queue[0]).update(priority=1)  # the lead moves it up
    c = login("annotator")
    order = []
    for _ in range(3):
        r = next_block(c)
        assert r.status_code == 200 and r.json()["claimed"] is False
        a = Assignment.objects.get(pk=r.json()["assignment"]["id"])
        order.append(a.block)
        assert next_block(c).json()["assignment"]["id"] == a.pk  # same until it is finished
        assignment_submit(user=me, assignment=assignment_start(user=me, assignment=a))
    assert order == [queue[0], queue[2], queue[1]]
    # then it claims unassigned blocks in seed order (1, 2, ...; no seed order last)
    r = next_block(c)
    assert r.json()["claimed"] is True and r.json()["assignment"]["block"] == queue[4].pk


def test_next_block_in_progress_and_rejected_work_counts_and_ignores_other_campaigns(
    users, blocks, queue, login
):
    me = users["annotator"]
    CampaignWorkflow.objects.create(campaign=queue[0].campaign, self_assign=False)
    assert next_block(login("annotator")).status_code == 204
    r = next_block(login("annotator"), "demo")
    assert r.status_code == 200 and r.json()["assignment"]["block"] == blocks[0].pk
    found = block_next_for_user(user=me, campaign=blocks[0].campaign)
    assert found is not None and found[0].block == blocks[0] and found[1] is False


def test_self_claim_gives_each_block_to_one_person_in_seed_order(users, queue, login):
    people = [
        users["annotator"],
        user_make("bob", role="annotator"),
        user_make("carol", role="annotator"),
    ]
    Assignment.objects.create(block=queue[4], user=users["lead"])  # seed 1, taken by the lead
    got = []
    for _ in range(2):
        for person in people:
            found = block_next_for_user(user=person, campaign=queue[0].campaign)
            if found is None:
                got.append((person.username, None))
                continue
            a, claimed = found
            assert claimed and a.self_claimed and a.priority == a.block.seed_order
            got.append((person.username, a.block.seed_order))
            assignment_submit(user=person, assignment=assignment_start(user=person, assignment=a))
    assert got == [
        ("annotator", 2),
        ("bob", 3),
        ("carol", 4),
        ("annotator", 5),
        ("bob", None),  # the block without seed order comes last
        ("carol", None),  # nothing left
    ]
    claimed = Assignment.objects.filter(self_claimed=True)
    assert claimed.count() == 5 and len({a.block_id for a in claimed}) == 5
    assert next_block(login("annotator")).status_code == 204


def test_next_block_per_role(users, queue, login):
    expected = {"anonymous": 403, "outsider": 404, "annotator": 200, "lead": 200, "admin": 200}
    for role, code in expected.items():
        assert next_block(login(role)).status_code == code, role
    assert post(login("annotator"), "campaigns/nope/next-block/").status_code == 404


def test_self_claim_off_refuses(users, queue):
    from annotation.services import AssignmentRefused

    CampaignWorkflow.objects.create(campaign=queue[0].campaign, self_assign=False)
    with pytest.raises(AssignmentRefused, match="self-assignment is off"):
        assignment_self_claim(user=users["annotator"], campaign=queue[0].campaign)
    assert not Assignment.objects.filter(block__campaign=queue[0].campaign).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_self_claims_never_share_a_block(users, queue):
    """Several annotators ask for their next block at the same moment: each gets another one."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers with a file lock; the race needs PostGIS")
    people = [users["annotator"], *(user_make(f"a{i}", role="annotator") for i in range(4))]
    campaign = queue[0].campaign
    barrier = threading.Barrier(len(people))
    got: list[int | None] = []
    errors: list[BaseException] = []

    def claim(person):
        try:
            barrier.wait(timeout=10)
            a = assignment_self_claim(user=person, campaign=campaign)
            got.append(a.block_id if a else None)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(got) == len(people)
    assert None not in got and len(set(got)) == len(people)
    assert set(got) == {b.pk for b in queue if b.seed_order is not None}


# Agreement (double annotation): tests/annotation/test_agreement.py
