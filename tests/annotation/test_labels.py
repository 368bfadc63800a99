"""Label API: verdict, coverage type and integration decision x role, provenance, audit, op_id."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from annotation.models import (
    Assignment,
    AssignmentStatus,
    AuditAction,
    AuditEntry,
    CoverageLabel,
    IntegrationLabel,
    VerdictLabel,
)

pytestmark = pytest.mark.django_db

ROLES = ["annotator", "lead", "admin", "outsider", "anonymous"]
BODIES = {
    "verdict": {"verdict": "tp"},
    "coverage": {"coverage_type": "cloudy"},
    "integration": {"decision": "merge_both"},
}
MODELS = {"verdict": VerdictLabel, "coverage": CoverageLabel, "integration": IntegrationLabel}


def client_for(users, role) -> Client:
    c = Client()
    if role != "anonymous":
        c.force_login(users[role])
    return c


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
def test_every_label_endpoint_for_every_role(users, block, sources, role, kind):
    c = client_for(users, role)
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
def test_annotator_labels_only_blocks_assigned_to_them(users, block, queue, sources, kind):
    c = client_for(users, "annotator")
    before = stored()
    r = put(c, queue[0], kind)
    assert r.status_code == 403 and "not assigned to you" in r.json()["detail"]
    assert put(client_for(users, "lead"), queue[0], kind).status_code == 200
    assert stored()[3] == before[3] + 1


@pytest.mark.parametrize("status", [AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED])
@pytest.mark.parametrize("kind", ["verdict", "coverage"])
def test_labels_are_locked_while_submitted_or_accepted(users, block, sources, status, kind):
    Assignment.objects.filter(block=block).update(status=status)
    before = stored()
    r = put(client_for(users, "annotator"), block, kind)
    assert r.status_code == 409 and str(status) in r.json()["detail"]
    assert stored() == before


def test_label_carries_provenance_and_each_change_is_audited(users, block, sources):
    c = client_for(users, "annotator")
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
    put(client_for(users, "lead"), block, "verdict", {"verdict": "tp"}, source="google")
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
    audit = client_for(users, "lead").get(f"/api/blocks/{block.pk}/audit/?source=google").json()
    assert len(audit["results"] if isinstance(audit, dict) else audit) == 3


def test_same_label_again_changes_nothing(users, block, sources):
    c = client_for(users, "annotator")
    first = put(c, block, "coverage").json()
    before = stored()
    again = put(c, block, "coverage")
    assert again.status_code == 200 and again.json() == first
    assert stored() == before


def test_annotator_reads_only_own_labels_lead_reads_all(users, blocks, sources):
    block = blocks[0]
    Assignment.objects.create(block=block, user=users["admin"])
    put(client_for(users, "annotator"), block, "verdict", {"verdict": "tp"})
    put(client_for(users, "admin"), block, "verdict", {"verdict": "artifact"})
    put(client_for(users, "lead"), block, "integration", {"decision": "only_google"})
    mine = client_for(users, "annotator").get(f"/api/blocks/{block.pk}/labels/").json()
    assert [v["value"] for v in mine["verdicts"]] == ["tp"]
    assert mine["integration"]["value"] == "only_google"
    assert mine["integration"]["user"] == "lead"
    every = client_for(users, "lead").get(f"/api/blocks/{block.pk}/labels/").json()
    assert sorted(v["value"] for v in every["verdicts"]) == ["artifact", "tp"]
    other = client_for(users, "lead").get(f"/api/blocks/{blocks[1].pk}/labels/").json()
    assert other == {"block": blocks[1].pk, "verdicts": [], "coverage": [], "integration": None}


def test_integration_is_one_decision_per_block_replaced_by_the_next_lead(users, block):
    put(client_for(users, "lead"), block, "integration", {"decision": "neither"})
    r = put(client_for(users, "admin"), block, "integration", {"decision": "only_mapbox"})
    assert r.status_code == 200 and r.json()["user"] == "admin"
    assert IntegrationLabel.objects.get().decision == "only_mapbox"
    entry = AuditEntry.objects.latest("id")
    assert entry.source is None and entry.before["user"] == "lead"
    assert entry.before["value"] == "neither" and entry.after["value"] == "only_mapbox"


def test_retry_with_op_id_is_answered_once_and_reuse_is_refused(users, block, sources):
    c = client_for(users, "annotator")
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


def test_bad_label_requests(users, block, sources):
    c = client_for(users, "lead")
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


def test_verdict_provenance_comes_from_the_current_prediction(users, block, sources):
    """With a current segmenter prediction on the block, the verdict is filed against it,
    whatever the browser says; a browser still showing an older model's prediction gets 409."""
    from learning.models import BlockPrediction, ModelKind, ModelVersion, Round

    rnd = Round.objects.create(campaign=block.campaign, number=4, state="done")
    seg = ModelVersion.objects.create(campaign=block.campaign, kind=ModelKind.SEGMENTER,
                                      name="seg-r4", bundle_path="x", round=rnd, is_current=True)
    BlockPrediction.objects.create(block=block, source=sources["mapbox"], model_version=seg,
                                   round=rnd, mask_path="m.tif", cropland_fraction=0.0)
    c = client_for(users, "annotator")
    r = put(c, block, "verdict", {"verdict": "tp", "model_version": "", "round_number": 99})
    assert r.status_code == 200
    assert (r.json()["model_version"], r.json()["round_number"]) == ("seg-r4", 4)
    stale = put(c, block, "verdict", {"verdict": "fp", "model_version": "seg-r3"})
    assert stale.status_code == 409 and "seg-r4" in stale.json()["model_version"][0]
    assert VerdictLabel.objects.get(block=block).verdict == "tp"  # nothing overwritten
    ok = put(c, block, "verdict", {"verdict": "fp", "model_version": "seg-r4"})
    assert ok.status_code == 200 and ok.json()["value"] == "fp"
