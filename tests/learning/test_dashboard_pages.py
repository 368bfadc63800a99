"""The rounds page, the model registry page and the round progress API: content and access."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.urls import reverse
from django.utils import timezone

from learning.models import ModelVersion, ProvinceStatus, Round, RoundState
from mapping.models import AdminLevel, AdminUnit, Campaign
from mapping.services.members import campaign_members_add


@pytest.fixture
def camp(db, users):
    c = Campaign.objects.create(slug="pg", name="Pages", region="t", year=2020, zoom=12)
    campaign_members_add(campaign=c, users=[users["lead"]])
    units = []
    for adcode, zh, en, x in [(420000, "湖北省", "Hubei", 112), (430000, "湖南省", "Hunan", 114)]:
        units.append(AdminUnit.objects.create(
            level=AdminLevel.PROVINCE, adcode=adcode, name_zh=zh, name_en=en,
            geometry=MultiPolygon(Polygon.from_bbox((x, 30, x + 1, 31)), srid=4326)))
    c.provinces.set(units)
    ProvinceStatus.objects.create(campaign=c, province=units[1], decision="converged")
    return c


@pytest.fixture
def running(camp):
    r = Round.objects.create(
        campaign=camp, number=3, state=RoundState.PREDICTING, stage_done=3, stage_total=4,
        started_at=timezone.now() - dt.timedelta(seconds=100),
        timings={"training": 40.0}, log="t0 round 3 queued\nt1 predicting block 3 of 4\n",
    )
    r.provinces.set(camp.provinces.filter(adcode=420000))
    return r


def test_admin_sees_the_start_form_and_the_running_round(camp, running, users, login):
    r = login("admin").get(reverse("learning-rounds", args=[camp.slug]))
    assert r.status_code == 200
    html = r.content.decode()
    assert 'id="round-start"' in html and 'id="cancel-button"' in html
    # Hunan is converged: offered but not choosable.
    assert 'value="430000" disabled' in html and 'value="420000">' in html
    assert f'data-round="{running.pk}"' in html
    assert "predicting block 3 of 4" in html
    assert f"?round={running.pk}" in html  # the running round is linked
    assert '"tiny"' in html  # the presets handed to the script


def test_lead_watches_but_cannot_start(camp, running, users, login):
    html = login("lead").get(reverse("learning-rounds", args=[camp.slug])
                ).content.decode()
    assert 'id="round-start"' not in html and 'id="cancel-button"' not in html
    assert f'data-round="{running.pk}"' in html


@pytest.mark.parametrize(("who", "status"), [("annotator", 403), ("outsider", 404)])
def test_rounds_and_models_pages_are_for_leads_and_admins(camp, users, who, status, login):
    assert login(who).get(reverse("learning-rounds", args=[camp.slug])
                ).status_code == status
    assert login(who).get(reverse("learning-models", args=[camp.slug])
                ).status_code == status


def test_watching_a_round_of_another_campaign_is_404(camp, running, users, login):
    other = Campaign.objects.create(slug="other", name="O", region="t", year=2020)
    url = reverse("learning-rounds", args=[other.slug]) + f"?round={running.pk}"
    assert login("lead").get(url).status_code == 404
    assert login("lead").get(reverse("learning-rounds", args=[camp.slug])
                + "?round=x").status_code == 404


def test_progress_api(camp, running, users, login):
    url = reverse("api-learning-round-progress", args=[running.pk])
    data = login("lead").get(url).json()
    assert (data["state"], data["stage_done"], data["stage_total"]) == ("predicting", 3, 4)
    assert data["stage_percent"] == pytest.approx(75.0)
    # No finished round timed yet: the default shares (training 5 %, predicting 75 %), so
    # three quarters of predicting is 5 + 0.75 * 75 = 61.25 % of the round, not (1 + 0.75) / 5.
    assert data["overall_percent"] == pytest.approx(61.25)
    assert data["log_tail"][-1] == "t1 predicting block 3 of 4"
    r = login("annotator").get(url)  # sees the campaign, may not watch its rounds
    assert r.status_code == 403 and r.json() == {"detail": "leads and admins only"}
    assert login("outsider").get(url).status_code == 404


def test_model_registry_lists_versions_and_admin_can_mark_current(camp, running, users, login):
    ModelVersion.objects.create(
        campaign=camp, kind="segmenter", name="seg-r2", bundle_path="models/a",
        metrics={"iou_overall": 0.8123, "iou_per_province": {"420000": {"iou": 0.8}}},
        training_samples=[1, 2, 3], train_seconds=12.5, is_current=True)
    ModelVersion.objects.create(
        campaign=camp, kind="segmenter", name="seg-r3", bundle_path="models/b", round=running,
        metrics={"iou_overall": 0.85}, training_samples=[1, 2, 3, 4])
    html = login("admin").get(reverse("learning-models", args=[camp.slug])
                ).content.decode()
    assert "seg-r2" in html and "seg-r3" in html
    assert "iou_overall 0.812" in html and "iou_overall 0.850" in html
    assert "12.5 s" in html
    assert html.count('class="make-current"') == 1  # only the version that is not current
    other = ModelVersion.objects.get(name="seg-r3")
    assert f'data-url="/api/campaigns/pg/model-versions/{other.pk}/set-current/"' in html
    lead_html = login("lead").get(reverse("learning-models", args=[camp.slug])
                     ).content.decode()
    assert 'class="make-current"' not in lead_html


def test_page_links_the_engines_endpoints_and_a_round_by_number(camp, running, users, login):
    html = login("admin").get(reverse("learning-rounds", args=[camp.slug])
                + "?number=3").content.decode()
    assert f'data-round="{running.pk}"' in html
    assert 'data-url="/api/campaigns/pg/rounds/"' in html
    assert 'data-cancel-url="/api/campaigns/pg/rounds/3/cancel/"' in html
    assert login("admin").get(reverse("learning-rounds", args=[camp.slug])
                + "?number=99").status_code == 404


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_presets_are_valid_round_configs(preset):
    from learning.services.config import round_config_parse
    from learning.views import ROUND_PRESETS

    cfg = round_config_parse({**ROUND_PRESETS[preset], "select_per_province": 5})
    assert cfg.segmenter_preset == "tiny" and cfg.select_per_province == 5


def test_campaign_pages_link_the_dashboard_for_leads_and_admins_only(camp, users, login):
    users["admin"].groups.add(*users["lead"].groups.all())  # lead and admin: one link, not two
    link = 'href="/campaigns/pg/dashboard/"'
    for who, expected in (("lead", 1), ("admin", 1), ("annotator", 0)):
        html = login(who).get(reverse("campaign-overview", args=[camp.slug])
                    ).content.decode()
        assert html.count(link) == expected, who


# --- a lead of another campaign --------------------------------------------------------------


@pytest.fixture
def other_lead(db, users):
    """A lead who runs campaign "elsewhere", not "pg"."""
    from django.contrib.auth.models import User

    from croplayer_site.roles import roles_ensure

    u = User.objects.create(username="other_lead")
    u.groups.add(roles_ensure()["lead"])
    elsewhere = Campaign.objects.create(slug="elsewhere", name="E", region="t", year=2020)
    campaign_members_add(campaign=elsewhere, users=[u])
    return u


def _learning_calls(slug: str, round_id: int) -> list[tuple[str, str, int]]:
    """(method, url, what the campaign's own lead gets) for every campaign-scoped learning
    page and endpoint: rounds are started and cancelled by admins only (403 for a lead)."""
    return [
        ("get", reverse("learning-dashboard", args=[slug]), 200),
        ("get", reverse("learning-rounds", args=[slug]), 200),
        ("get", reverse("learning-rounds", args=[slug]) + f"?round={round_id}", 200),
        ("get", reverse("learning-models", args=[slug]), 200),
        ("post", reverse("learning-systematic-sample", args=[slug]), 302),
        ("get", reverse("api-learning-dashboard", args=[slug]), 200),
        ("get", reverse("api-learning-province-status", args=[slug]), 200),
        ("get", reverse("api-learning-provinces-geojson", args=[slug]), 200),
        ("get", reverse("api-learning-round-progress", args=[round_id]), 200),
        ("get", reverse("api-stop-status", args=[slug]), 200),
        ("get", reverse("api-round-list", args=[slug]), 200),
        ("post", reverse("api-round-list", args=[slug]), 403),  # round start
        ("get", reverse("api-round-detail", args=[slug, 3]), 200),
        ("post", reverse("api-round-cancel", args=[slug, 3]), 403),
        ("get", reverse("api-model-version-list", args=[slug]), 200),
        ("post", reverse("api-systematic-sample", args=[slug]), 201),
    ]


def test_a_lead_of_another_campaign_gets_404_for_its_learning_pages(
    camp, running, users, other_lead, client
):
    """Dashboard, rounds, round start, progress, stop status, models, systematic sample: the
    campaign's lead gets them; a lead of another campaign gets 404, as for no campaign."""
    calls = _learning_calls(camp.slug, running.pk)
    for method, url, expected in calls:
        client.force_login(users["lead"])
        r = getattr(client, method)(url, {}, content_type="application/json")
        assert r.status_code == expected, (url, method, r.content[:200])
        client.force_login(other_lead)
        r = getattr(client, method)(url, {}, content_type="application/json")
        assert r.status_code == 404, (url, method, r.content[:200])
    running.refresh_from_db()
    assert running.state == RoundState.PREDICTING and not running.cancel_requested
    assert Round.objects.filter(campaign=camp).count() == 1
