"""The rounds and model-registry API: who may do what, 409 on a second start, 4xx reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.gis.geos import MultiPolygon, Polygon

from learning.models import ModelKind, ModelVersion, Round
from mapping.geo.grid import grid_for
from mapping.models import AdminLevel, AdminUnit, Block, Campaign
from mapping.services.members import campaign_members_add


@pytest.fixture
def campaign(db):
    c = Campaign.objects.create(slug="api-c", name="API", region="t", year=2020)
    p, _ = AdminUnit.objects.get_or_create(
        level=AdminLevel.PROVINCE, adcode=420000,
        defaults={"name_zh": "湖北", "name_en": "Hubei",
                  "geometry": MultiPolygon(Polygon.from_bbox((112, 30, 113, 31)), srid=4326)})
    bid = grid_for(0.05).block_at(112.51, 30.31)
    Block.objects.create(campaign=c, row=bid.row, col=bid.col, province=p,
                         geometry=Polygon.from_bbox(grid_for(0.05).bounds(bid)))
    c.provinces.set([p])
    return c


def test_round_endpoints(campaign, users, login):
    campaign_members_add(campaign=campaign, users=[users["lead"]])
    url = f"/api/campaigns/{campaign.slug}/rounds/"
    admin, lead = login("admin", api=True), login("lead", api=True)
    assert login(api=True).post(url, {}, format="json").status_code in (401, 403)
    assert login("outsider", api=True).get(url).status_code == 404
    assert login("annotator", api=True).get(url).status_code == 403
    assert lead.post(url, {}, format="json").status_code == 403  # leads watch, admins start

    bad = admin.post(url, {"config": {"epochs": "many"}}, format="json")
    assert bad.status_code == 400 and "epochs" in bad.json()["detail"]
    bad = admin.post(url, {"provinces": [110000]}, format="json")
    assert bad.status_code == 400 and "110000 is not a province" in bad.json()["detail"]

    r = admin.post(url, {"provinces": [420000], "config": {"segmenter_preset": "tiny"}},
                   format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["number"], body["state"], body["provinces"]) == (1, "queued", [420000])
    assert body["config"]["segmenter_preset"] == "tiny" and body["config"]["epochs"] == 10
    assert body["websocket"] == f"/ws/rounds/{body['round']}/"
    detail = f"/api/campaigns/{campaign.slug}/rounds/1/"
    assert body["url"] == detail

    again = admin.post(url, {}, format="json")
    assert again.status_code == 409
    assert again.json()["url"] == detail and again.json()["active_round"] == 1

    listed = lead.get(url).json()
    assert [x["number"] for x in listed] == [1]
    assert lead.get(detail).json()["state"] == "queued"
    assert lead.get(f"/api/campaigns/{campaign.slug}/rounds/9/").status_code == 404
    assert lead.post(detail + "cancel/").status_code == 403
    cancelled = admin.post(detail + "cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert admin.post(detail + "cancel/").status_code == 409
    assert Round.objects.get(campaign=campaign).state == "cancelled"

    status = lead.get(f"/api/campaigns/{campaign.slug}/stop-status/").json()
    assert status["provinces"][0]["adcode"] == 420000
    assert status["provinces"][0]["decision"] == "continue"

    sys_url = f"/api/campaigns/{campaign.slug}/systematic-sample/"
    assert login("annotator", api=True).post(sys_url, {}, format="json").status_code == 403
    made = lead.post(sys_url, {"spacing_deg": 0.5}, format="json")
    # 0.5 degree points at (k + 0.5) * 0.5: (112.75, 30.25) is not in the one block.
    assert made.status_code == 201 and made.json()["blocks"] == []
    assert lead.post(sys_url, {"spacing_deg": 0}, format="json").status_code == 400


def test_model_version_endpoints(campaign, users, login):
    campaign_members_add(campaign=campaign, users=[users["lead"]])
    from learning.core.bundle import bundle_writer

    url = f"/api/campaigns/{campaign.slug}/model-versions/"
    admin, lead = login("admin", api=True), login("lead", api=True)
    rel = "models/api-c/correctness/ext-1"
    with bundle_writer(Path(settings.DATA_DIR) / rel, kind="correctness-xgb",
                       overwrite=True) as tmp:
        (tmp / "model.json").write_text("{}")
    half = Path(settings.DATA_DIR) / "models/api-c/correctness/half"
    half.mkdir(parents=True, exist_ok=True)  # a folder without a manifest: never registered
    (half / "model.json").write_text("{}")

    assert lead.post(url, {"kind": "correctness", "name": "x", "bundle_path": rel},
                     format="json").status_code == 403
    r = admin.post(url, {"kind": "correctness", "name": "half",
                         "bundle_path": "models/api-c/correctness/half"}, format="json")
    assert r.status_code == 400 and "not a model bundle" in r.json()["bundle_path"]
    r = admin.post(url, {"kind": "correctness", "name": "x", "bundle_path": "../etc"},
                   format="json")
    assert r.status_code == 400
    r = admin.post(url, {"kind": "correctness", "name": "ext-1", "bundle_path": rel,
                         "make_current": True}, format="json")
    assert r.status_code == 201 and r.json()["is_current"] is True
    first = r.json()["id"]
    other = ModelVersion.objects.create(campaign=campaign, kind=ModelKind.CORRECTNESS,
                                        name="ext-2", bundle_path=rel)
    r = admin.post(f"{url}{other.pk}/set-current/")
    assert r.status_code == 200 and r.json()["is_current"] is True
    assert not ModelVersion.objects.get(pk=first).is_current  # one current per kind
    listed = lead.get(url, {"kind": "correctness"}).json()
    assert {m["name"]: m["is_current"] for m in listed} == {"ext-1": False, "ext-2": True}
    assert lead.get(url, {"kind": "nonsense"}).status_code == 400
    # A bundle that got corrupted on disk cannot be made current.
    (Path(settings.DATA_DIR) / rel / "model.json").write_text("{\"changed\": 1}")
    r = admin.post(f"{url}{first}/set-current/")
    assert r.status_code == 400 and "checksum" in r.json()["detail"]
    assert ModelVersion.objects.get(pk=other.pk).is_current


def test_a_segmenter_made_current_by_hand_queues_the_overview_sums(
    campaign, users, login, monkeypatch, django_capture_on_commit_callbacks
):
    """A round's end counts the overview map's low-zoom sums in its worker; a segmenter made
    current through the registry queues the same count for a worker (by task name), so the
    first lead to open the map does not wait for it. Other kinds queue nothing."""
    from annotation.models import OverviewCellSums
    from croplayer_site.celery import app
    from learning.core.bundle import bundle_writer
    from learning.services.round import dispatch

    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(dispatch.app, "send_task",
                        lambda name, args=(), countdown=None: sent.append((name, args)))
    rel = "models/api-c/segmenter/ext-1"
    with bundle_writer(Path(settings.DATA_DIR) / rel, kind="segmenter-unet",
                       overwrite=True) as tmp:
        (tmp / "model.json").write_text("{}")
    seg = ModelVersion.objects.create(campaign=campaign, kind=ModelKind.SEGMENTER,
                                      name="ext-1", bundle_path=rel)
    corr = ModelVersion.objects.create(campaign=campaign, kind=ModelKind.CORRECTNESS,
                                       name="ext-c", bundle_path=rel)
    url = f"/api/campaigns/{campaign.slug}/model-versions/"
    admin = login("admin", api=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.post(f"{url}{corr.pk}/set-current/").status_code == 200
    assert sent == []
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.post(f"{url}{seg.pk}/set-current/").status_code == 200
    assert sent == [(dispatch.OVERVIEW_SUMS, [campaign.pk])]
    assert not OverviewCellSums.objects.filter(campaign=campaign).exists()
    # The worker's side: the task registered under that name counts and keeps the sums.
    import learning.tasks  # noqa: F401  (registers the tasks, as a worker does)

    assert app.tasks[dispatch.OVERVIEW_SUMS](*sent[0][1]) is True
    assert OverviewCellSums.objects.filter(campaign=campaign, segmenter_id=seg.pk).exists()
