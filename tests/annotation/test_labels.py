"""Label API: verdict, coverage type and integration decision x role, provenance, audit, op_id."""

from __future__ import annotations

import uuid

import pytest

from annotation.models import (
    Assignment,
    AssignmentStatus,
    AuditAction,
    AuditEntry,
    CoverageLabel,
    IntegrationLabel,
    VerdictLabel,
)
from tests.annotation.conftest import ROLES
from tests.factories import current_prediction_make

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _predictions(request):
    """A current prediction of the test's blocks on both sources: what verdicts judge."""
    if "blocks" in request.fixturenames and "sources" in request.fixturenames:
        blocks = list(request.getfixturevalue("blocks"))
        current_prediction_make(blocks=blocks, sources=request.getfixturevalue("sources").values())
        if "queue" in request.fixturenames:  # another campaign's blocks
            current_prediction_make(
                blocks=request.getfixturevalue("queue"),
                sources=request.getfixturevalue("sources").values(),
            )


BODIES = {
    "verdict": {"verdict": "tp"},
    "coverage": {"coverage_type": "cloudy"},
    "integration": {"decision": "merge_both"},
}
MODELS = {"verdict": VerdictLabel, "coverage": CoverageLabel, "integration": IntegrationLabel}


def url(block, kind, source="mapbox"):
    if kind == "integration":
        return f"/api/blocks/{block.pk}/labels/integration/"
    return f"/api/blocks/{block.pk}/labels/{kind}/{source}/"


def put(c, block, kind, body=None, source="mapbox"):
    return c.put(url(block, kind, source), body or BODIES[kind], content_type="application/json")


def stored():
    return (
        VerdictLabel.objects.count(),
        CoverageLabel.objects.count(),
        IntegrationLabel.objects.count(),
        AuditEntry.objects.count(),
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["verdict", "coverage", "integration", "read"])
def test_every_label_endpoint_for_every_role(users, block, sources, role, kind, login):
    c = login(role)
    before = stored()
    r = c.get(f"/api/blocks/{block.pk}/labels/") if kind == "read" else put(c, block, kind)
    expected = {
        "anonymous": 403,
        "outsider": 404,
        "annotator": 403 if kind == "integration" else 200,
        "lead": 200,
        "admin": 200,
    }[role]
    assert r.status_code == expected, r.content
    if kind != "read" and r.status_code == 200:
        label = MODELS[kind].objects.get()
        assert label.user == users[role]
        entry = AuditEntry.objects.latest("id")
        assert entry.username == role and entry.action == f"{kind}_set"
        assert entry.version is None and entry.before is None
        assert entry.after["value"] == r.json()["value"]
    elif kind != "read":
        assert stored() == before


@pytest.mark.parametrize("kind", ["verdict", "coverage"])
def test_annotator_labels_only_blocks_assigned_to_them(users, block, queue, sources, kind, login):
    c = login("annotator")
    before = stored()
    r = put(c, queue[0], kind)
    assert r.status_code == 403 and "not assigned to you" in r.json()["detail"]
    # The refusal is a sentence for the interpreter: in their language.
    r = c.put(url(queue[0], kind), BODIES[kind], content_type="application/json",
              HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert r.status_code == 403 and r.json()["detail"] == "此图块未分配给您"
    assert put(login("lead"), queue[0], kind).status_code == 200
    assert stored()[3] == before[3] + 1


@pytest.mark.parametrize("status", [AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED])
@pytest.mark.parametrize("kind", ["verdict", "coverage"])
def test_labels_are_locked_while_submitted_or_accepted(users, block, sources, status, kind, login):
    Assignment.objects.filter(block=block).update(status=status)
    before = stored()
    r = put(login("annotator"), block, kind)
    assert r.status_code == 409 and str(status) in r.json()["detail"]
    assert stored() == before


def test_label_carries_provenance_and_each_change_is_audited(users, block, sources, login):
    current_prediction_make(blocks=[block], sources=sources.values(), name="m2f-r3", round_number=3)
    c = login("annotator")
    body = {"verdict": "fp", "model_version": "m2f-r3", "round_number": 3}
    r = put(c, block, "verdict", body, source="google")
    assert r.status_code == 200
    first = r.json()
    assert first | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0,
        "kind": "verdict",
        "block": block.pk,
        "source": "google",
        "value": "fp",
        "user": "annotator",
        "created_at": "",
        "updated_at": "",
        "model_version": "m2f-r3",
        "round_number": 3,
    }
    assert first["created_at"] and first["updated_at"]
    r = put(c, block, "verdict", {**body, "verdict": "noise"}, source="google")
    assert r.json()["value"] == "noise" and r.json()["id"] == first["id"]
    # one current label per block, source and person; the lead's is a label of its own
    assert VerdictLabel.objects.get().verdict == "noise"
    put(login("lead"), block, "verdict", {"verdict": "tp"}, source="google")
    assert VerdictLabel.objects.count() == 2
    entries = list(AuditEntry.objects.filter(action=AuditAction.VERDICT_SET).order_by("id"))
    assert [(e.username, e.before and e.before["value"], e.after["value"]) for e in entries] == [
        ("annotator", None, "fp"),
        ("annotator", "fp", "noise"),
        ("lead", None, "tp"),
    ]
    assert all(e.source.slug == "google" for e in entries)
    # the annotator's audit log leaves out the lead's verdict (blind labelling); the lead's not
    audit = c.get(f"/api/blocks/{block.pk}/audit/?source=google").json()
    assert len(audit["results"] if isinstance(audit, dict) else audit) == 2
    audit = login("lead").get(f"/api/blocks/{block.pk}/audit/?source=google").json()
    assert len(audit["results"] if isinstance(audit, dict) else audit) == 3


def test_same_label_again_changes_nothing(users, block, sources, login):
    c = login("annotator")
    first = put(c, block, "coverage").json()
    before = stored()
    again = put(c, block, "coverage")
    assert again.status_code == 200 and again.json() == first
    assert stored() == before


def test_annotator_reads_only_own_labels_lead_reads_all(users, blocks, sources, login):
    block = blocks[0]
    Assignment.objects.create(block=block, user=users["admin"])
    put(login("annotator"), block, "verdict", {"verdict": "tp"})
    put(login("admin"), block, "verdict", {"verdict": "artifact"})
    put(login("lead"), block, "integration", {"decision": "only_google"})
    mine = login("annotator").get(f"/api/blocks/{block.pk}/labels/").json()
    assert [v["value"] for v in mine["verdicts"]] == ["tp"]
    assert mine["integration"]["value"] == "only_google"
    assert mine["integration"]["user"] == "lead"
    every = login("lead").get(f"/api/blocks/{block.pk}/labels/").json()
    assert sorted(v["value"] for v in every["verdicts"]) == ["artifact", "tp"]
    other = login("lead").get(f"/api/blocks/{blocks[1].pk}/labels/").json()
    assert other == {"block": blocks[1].pk, "verdicts": [], "coverage": [], "integration": None}


def test_integration_is_one_decision_per_block_replaced_by_the_next_lead(users, block, login):
    put(login("lead"), block, "integration", {"decision": "neither"})
    r = put(login("admin"), block, "integration", {"decision": "only_mapbox"})
    assert r.status_code == 200 and r.json()["user"] == "admin"
    assert IntegrationLabel.objects.get().decision == "only_mapbox"
    entry = AuditEntry.objects.latest("id")
    assert entry.source is None and entry.before["user"] == "lead"
    assert entry.before["value"] == "neither" and entry.after["value"] == "only_mapbox"


def test_retry_with_op_id_is_answered_once_and_reuse_is_refused(users, block, sources, login):
    c = login("annotator")
    op = str(uuid.uuid4())
    first = put(c, block, "verdict", {"verdict": "tp", "op_id": op})
    # a newer label, then the old request arrives again from the outbox: it must not win
    put(c, block, "verdict", {"verdict": "fp"})
    before = stored()
    again = put(c, block, "verdict", {"verdict": "tp", "op_id": op})
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert stored() == before and VerdictLabel.objects.get().verdict == "fp"
    reused = put(c, block, "verdict", {"verdict": "noise", "op_id": op})
    assert reused.status_code == 409 and "op_id" in reused.json()
    assert stored() == before


def test_bad_label_requests(users, block, sources, login):
    c = login("lead")
    before = stored()
    r = put(c, block, "verdict", {"verdict": "maybe"})
    assert r.status_code == 400 and "verdict" in r.json()
    assert put(c, block, "coverage", {"coverage_type": "fog"}).status_code == 400
    assert put(c, block, "integration", {"decision": "both"}).status_code == 400
    assert put(c, block, "verdict", {"verdict": "tp", "round_number": -1}).status_code == 400
    assert put(c, block, "verdict", source="sentinel").status_code == 404
    block.pk = 999999
    for kind in BODIES:
        assert put(c, block, kind).status_code == 404
    assert c.get(f"/api/blocks/{block.pk}/labels/").status_code == 404
    assert stored() == before


def test_verdict_provenance_comes_from_the_current_prediction(users, block, sources, login):
    """With a current segmenter prediction on the block, the verdict is filed against it,
    whatever the browser says; a browser still showing an older model's prediction gets 409."""
    current_prediction_make(
        blocks=[block], sources=[sources["mapbox"]], name="seg-r4", round_number=4
    )
    c = login("annotator")
    r = put(c, block, "verdict", {"verdict": "tp", "model_version": "", "round_number": 99})
    assert r.status_code == 200
    assert (r.json()["model_version"], r.json()["round_number"]) == ("seg-r4", 4)
    stale = put(c, block, "verdict", {"verdict": "fp", "model_version": "seg-r3"})
    assert stale.status_code == 409 and "seg-r4" in stale.json()["model_version"][0]
    assert VerdictLabel.objects.get(block=block).verdict == "tp"  # nothing overwritten
    ok = put(c, block, "verdict", {"verdict": "fp", "model_version": "seg-r4"})
    assert ok.status_code == 200 and ok.json()["value"] == "fp"


def test_a_verdict_needs_a_prediction_to_judge(users, block, sources, login):
    """No current segmenter, or one without a prediction of the block on the source: 409 with
    the reason, nothing written. Coverage types label the image and need none."""
    from learning.models import BlockPrediction, ModelVersion

    c = login("annotator")
    BlockPrediction.objects.filter(source=sources["google"]).delete()
    before = stored()
    r = put(c, block, "verdict", source="google")
    assert r.status_code == 409, r.content
    assert "no prediction to judge on google" in r.json()["detail"]
    assert "no prediction for this block on google" in r.json()["detail"]
    ModelVersion.objects.update(is_current=False)
    r = put(c, block, "verdict")
    assert r.status_code == 409 and "no current segmenter" in r.json()["detail"]
    assert stored() == before
    r = put(c, block, "coverage")
    assert r.status_code == 200
    assert (r.json()["model_version"], r.json()["round_number"]) == ("", None)


def test_label_provenance_is_checked_not_taken(users, block, sources, login):
    """Coverage types and polygons carry the prediction the browser names only if that model
    predicted this block on the source; else 400. Without a name: the current prediction."""
    from annotation.models import SamplePolygon

    c = login("annotator")
    r = put(c, block, "coverage", {"coverage_type": "cloudy", "model_version": "seg-r9"})
    assert r.status_code == 400 and "seg-r9" in r.json()["model_version"][0]
    assert not CoverageLabel.objects.exists()
    r = put(c, block, "coverage", {"coverage_type": "cloudy", "round_number": 7})
    assert r.status_code == 200
    assert (r.json()["model_version"], r.json()["round_number"]) == ("seg-r1", 1)
    ring = [[112.51, 30.31], [112.52, 30.31], [112.52, 30.32], [112.51, 30.31]]
    poly = {
        "op_id": str(uuid.uuid4()),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "model_version": "seg-r9",
        "round_number": 9,
    }
    polygons = f"/api/blocks/{block.pk}/samples/mapbox/polygons/"
    r = c.post(polygons, poly, content_type="application/json", headers={"If-Match": '"0"'})
    assert r.status_code == 400 and "seg-r9" in r.json()["model_version"][0]
    assert not SamplePolygon.objects.exists()
    poly = {**poly, "op_id": str(uuid.uuid4()), "model_version": "seg-r1", "round_number": 9}
    r = c.post(polygons, poly, content_type="application/json", headers={"If-Match": '"0"'})
    assert r.status_code == 201, r.content
    assert SamplePolygon.objects.values_list("model_version", "round_number").get() == ("seg-r1", 1)
    # Decided by the server for integration decisions too (lead only).
    r = put(
        login("lead"),
        block,
        "integration",
        {"decision": "only_mapbox", "model_version": "made-up", "round_number": 5},
    )
    assert r.status_code == 200
    assert (r.json()["model_version"], r.json()["round_number"]) == ("seg-r1", 1)
