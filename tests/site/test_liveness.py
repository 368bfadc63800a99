"""Worker liveness (issue 13): a real worker's heartbeat on /healthz and the rounds page, its
absence when the worker dies, and a waiting round that says why; the rounds page's banner
follows the round it names (no stale "running" after done)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.conf import settings
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.test import Client
from django.utils import timezone

from croplayer_site import liveness
from learning.models import Round, RoundState
from mapping.models import AdminLevel, AdminUnit, Campaign
from mapping.services.members import campaign_members_add
from tests.conftest import page_login


def _wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _mine(health: dict) -> list[dict]:
    return [w for w in health["workers"] if w["hostname"].startswith(f"test-{os.getpid()}@")]


def test_embedded_default_is_a_private_redis_not_a_file_broker():
    """With no REDIS_URL, broker, results and channel layer are the private redis-server on a
    unix socket in the var folder (kombu's file broker handed workers half-written files)."""
    if os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is set: the embedded default is not in use")
    sock = str(settings.EMBEDDED_REDIS_SOCKET)
    assert f"redis+socket://{sock}" == settings.CELERY_BROKER_URL
    assert settings.CELERY_RESULT_BACKEND == settings.CELERY_BROKER_URL
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"].startswith("channels_redis")
    assert liveness.workers_alive()["ok"]


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_a_live_worker_and_notices_when_it_dies(settings):
    from tests.conftest import celery_worker_start

    assert not _mine(Client().get("/healthz").json())
    proc, _log = celery_worker_start(settings)
    try:
        health = _wait(lambda: (h := Client().get("/healthz").json()) and _mine(h) and h,
                       30, "the worker's heartbeat")
        assert health["status"] == "ok" and health["broker"] == "ok"
        assert sorted(_mine(health)[0]["queues"]) == ["cpu", "gpu"]
        # Killed, as the file broker's "Unrecoverable error" or the OOM killer would: no
        # shutdown hook runs, the heartbeat simply stops and its key expires.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _wait(lambda: not _mine(Client().get("/healthz").json()), liveness.TTL_S + 10,
              "the dead worker to drop out")
    finally:
        if proc.poll() is None:
            proc.kill()
    if not Client().get("/healthz").json()["workers"]:
        health = Client().get("/healthz").json()
        assert health["status"] == "degraded"
        assert "no live Celery worker" in health["problems"][0]


def _campaign(users) -> Campaign:
    prov = AdminUnit.objects.create(level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省",
                                    name_en="Hubei",
                                    geometry=MultiPolygon(Polygon.from_bbox((110, 30, 111, 31)),
                                                          srid=4326))
    camp = Campaign.objects.create(slug="live", name="Live", year=2020)
    camp.provinces.set([prov])
    campaign_members_add(campaign=camp, users=[users["lead"]])
    return camp


@pytest.mark.django_db(transaction=True)
def test_a_round_waiting_without_a_worker_says_so(users, settings, login):
    from tests.conftest import celery_worker_start

    camp = _campaign(users)
    # A queued round that nobody takes (created directly: no task is sent).
    Round.objects.create(campaign=camp, number=1, state=RoundState.QUEUED)
    c = login("lead")
    if liveness.workers_alive()["workers"]:
        pytest.skip("another worker beats on this broker")
    page = c.get(f"/campaigns/{camp.slug}/rounds/").content.decode()
    assert 'id="worker-warning"' in page and "No live worker" in page
    rnd = Round.objects.get(campaign=camp)
    progress = c.get(f"/api/rounds/{rnd.pk}/progress/").json()
    assert "No live worker" in progress["worker_warning"] and progress["workers"] == 0
    proc, _log = celery_worker_start(settings, queues="cpu", name="-cpuonly")
    try:
        _wait(lambda: liveness.workers_alive()["workers"], 30, "the worker's heartbeat")
        progress = c.get(f"/api/rounds/{rnd.pk}/progress/").json()
        assert "gpu queue" in progress["worker_warning"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_banner_and_panel_follow_the_round_to_done(users, asgi_server, browser):
    """Issue 13: after the round finished the page kept "Round 1 is running (Queued)" beside
    the Done panel until reload. The banner now follows the same snapshots as the panel."""
    from learning.services.round.progress import round_broadcast

    camp = _campaign(users)
    rnd = Round.objects.create(campaign=camp, number=1, state=RoundState.PREDICTING,
                               started_at=timezone.now(), stage_total=10, stage_done=2,
                               heartbeat_at=timezone.now())
    page = browser.new_page()
    page_login(page, asgi_server, "lead")
    page.goto(f"{asgi_server}/campaigns/{camp.slug}/rounds/")
    assert page.is_visible("#active-round")
    page.wait_for_function("document.getElementById('round-progress').dataset.ws === 'open'",
                           timeout=20_000)
    Round.objects.filter(pk=rnd.pk).update(state=RoundState.SCORING)
    round_broadcast(rnd=Round.objects.get(pk=rnd.pk))
    page.wait_for_function(
        "document.getElementById('active-round-state').textContent === 'Scoring'",
        timeout=20_000)
    Round.objects.filter(pk=rnd.pk).update(state=RoundState.DONE, finished_at=timezone.now(),
                                           stage_done=10)
    round_broadcast(rnd=Round.objects.get(pk=rnd.pk))
    page.wait_for_function("document.getElementById('round-progress').dataset.final === 'done'",
                           timeout=20_000)
    assert not page.is_visible("#active-round")
    assert not page.is_visible("#worker-warning")
    assert page.text_content("[data-k=overall_percent]") == "100"
