"""croplayer_site.jobs with fake kinds: the registry, the watcher gate (deny by default), the
conditional row protocol, progress events and their throttle, the heartbeat and reconcile.

The fake kinds borrow ``ProductExport``'s table (it has every field of the protocol) under
names no app registers.
"""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.http import Http404
from django.utils import timezone

from croplayer_site import jobs
from croplayer_site.jobs import (
    Heartbeat,
    JobKind,
    JobKindError,
    JobProgress,
    job_broadcast,
    job_claim,
    job_event,
    job_fail,
    job_finish,
    job_get_for_watcher,
    job_heartbeat,
    job_kind,
    job_kind_register,
    job_kind_unregister,
    job_parse,
    job_visible,
    jobs_reconcile,
)
from learning.product.models import ProductExport
from mapping.models import Campaign

pytestmark = pytest.mark.django_db


def _kind(name: str = "fake", **kw) -> JobKind:
    return JobKind(
        name=name,
        model=ProductExport,
        visible=kw.pop("visible", lambda *, user, row: user.username in ("lead", "admin")),
        event=kw.pop("event", lambda row: {"done": row.done, "total": row.total}),
        **kw,
    )


@pytest.fixture
def fake():
    kind = job_kind_register(_kind())
    yield kind
    job_kind_unregister(kind.name)


@pytest.fixture
def row(db):
    camp = Campaign.objects.create(slug="j", name="J", region="t", year=2020)
    return ProductExport.objects.create(campaign=camp, kind="national_af", total=10)


# --- the registry ------------------------------------------------------------------------------


def test_register_then_look_up_and_a_duplicate_raises(fake):
    assert job_kind("fake") is fake
    with pytest.raises(JobKindError):
        job_kind_register(_kind())
    with pytest.raises(JobKindError):
        job_kind("nobody-registered-this")
    with pytest.raises(JobKindError):
        job_kind_register(_kind("with-dash"))


def test_the_apps_register_their_kinds_with_their_routes():
    assert job_kind("fetch").routes == job_kind("export").routes == frozenset({"jobs"})
    assert job_kind("compare").routes == frozenset({"jobs"})
    assert job_kind("round").routes == frozenset({"rounds"})  # never ws/jobs/round-N


# --- the watcher gate --------------------------------------------------------------------------


def test_watcher_gate_denies_by_default(fake, row, users):
    lead, annotator = users["lead"], users["annotator"]
    assert job_get_for_watcher(user=lead, name="fake", pk=row.pk) == row
    refusals = [
        dict(user=lead, name="unknown", pk=row.pk),  # unknown kind
        dict(user=lead, name="fake", pk=row.pk, route="rounds"),  # not served on this route
        dict(user=lead, name="fake", pk=row.pk + 99),  # no such row
        dict(user=annotator, name="fake", pk=row.pk),  # visible() says no
    ]
    for kwargs in refusals:
        with pytest.raises(Http404):
            job_get_for_watcher(**kwargs)
    assert job_visible(user=lead, job=f"fake-{row.pk}")
    assert not job_visible(user=annotator, job=f"fake-{row.pk}")
    assert not job_visible(user=lead, job=f"fake-0{row.pk}")


def test_job_names_parse_strictly():
    assert job_parse("fetch-7") == ("fetch", 7)
    for bad in ("fetch-007", "fetch-", "fetch", "-7", "fetch-7a", "fetch--7", "fetch-" + "9" * 19):
        assert job_parse(bad) is None, bad


# --- the row protocol --------------------------------------------------------------------------


def test_claim_finish_fail_are_conditional(fake, row):
    assert job_heartbeat(kind=fake, pk=row.pk) is False  # queued: not running yet
    assert job_claim(kind=fake, pk=row.pk) is True
    assert job_claim(kind=fake, pk=row.pk) is False  # a second delivery claims nothing
    row.refresh_from_db()
    assert row.status == "running" and row.started_at and row.heartbeat_at
    assert job_heartbeat(kind=fake, pk=row.pk, stage="x") is True
    assert job_fail(kind=fake, pk=row.pk, reason="boom") is True
    assert job_finish(kind=fake, pk=row.pk, done=10) is False  # failed stays failed
    row.refresh_from_db()
    assert (row.status, row.failure_reason, row.done) == ("failed", "boom", 0)
    assert job_heartbeat(kind=fake, pk=row.pk) is False


def test_finish_only_a_running_job(fake, row):
    assert job_finish(kind=fake, pk=row.pk) is False
    job_claim(kind=fake, pk=row.pk)
    assert job_finish(kind=fake, pk=row.pk, stage="done") is True
    row.refresh_from_db()
    assert (row.status, row.stage) == ("done", "done") and row.finished_at
    assert job_fail(kind=fake, pk=row.pk, reason="late") is False


# --- progress ----------------------------------------------------------------------------------


def test_event_and_broadcast_to_the_rows_group(fake, row):
    event = job_event(kind=fake, row=row)
    assert event == {"type": "job.progress", "job": f"fake-{row.pk}", "status": "queued",
                     "done": 0, "total": 10}
    with mock.patch.object(jobs, "get_channel_layer") as layer:
        layer.return_value.group_send = mock.AsyncMock()
        assert job_broadcast(kind=fake, row=row) == event
    layer.return_value.group_send.assert_awaited_once_with(f"job.fake-{row.pk}", event)


def test_a_broken_channel_layer_is_logged_not_raised(fake, row, caplog):
    with mock.patch.object(jobs, "get_channel_layer") as layer:
        layer.return_value.group_send = mock.AsyncMock(side_effect=RuntimeError("full"))
        job_broadcast(kind=fake, row=row)
    assert "could not broadcast" in caplog.text


def test_progress_is_throttled_unless_forced_or_complete(fake, row):
    sent = []
    with mock.patch.object(jobs, "job_broadcast", lambda **kw: sent.append(kw["row"].done)):
        progress = JobProgress(kind=fake, row=row, every_s=3600)
        assert progress(stage="a", done=1, total=10) is True
        assert progress(stage="a", done=2, total=10) is False  # within every_s
        assert progress(stage="b", done=3, total=10, force=True) is True
        assert progress(stage="b", done=10, total=10) is True  # complete
    assert sent == [1, 3, 10]
    row.refresh_from_db()
    assert (row.stage, row.done) == ("b", 10) and row.heartbeat_at


def test_heartbeat_thread_beats_and_stops_when_the_job_ends(fake, row, settings):
    job_claim(kind=fake, pk=row.pk)
    ProductExport.objects.filter(pk=row.pk).update(heartbeat_at=None)
    calls = []
    with mock.patch.object(jobs, "job_heartbeat", lambda **kw: calls.append(kw) or len(calls) < 3):
        beat = Heartbeat(kind=fake, pk=row.pk, every_s=0.01)
        with mock.patch.object(jobs.connection, "close"):
            beat.start()
            beat.join(timeout=5)
    assert not beat.is_alive()
    assert len(calls) == 3  # the third said "no longer running": the thread ended by itself
    beat.end()


# --- reconcile ---------------------------------------------------------------------------------


def _age(row, **fields_ago):
    old = timezone.now() - dt.timedelta(hours=2)
    ProductExport.objects.filter(pk=row.pk).update(**{f: old for f in fields_ago})


def test_reconcile_fails_stale_running_and_requeues_old_queued(
    fake, row, django_capture_on_commit_callbacks
):
    job_kind_unregister("fake")
    requeued = []
    kind = job_kind_register(_kind(stale_after_s=60, requeue=requeued.append,
                                   stale_reason="try again"))
    queued = ProductExport.objects.create(campaign=row.campaign, kind="national_af")
    fresh = ProductExport.objects.create(campaign=row.campaign, kind="national_af")
    job_claim(kind=kind, pk=row.pk)
    job_claim(kind=kind, pk=fresh.pk)
    _age(row, heartbeat_at=1)
    _age(queued, created_at=1)
    with mock.patch.object(jobs, "job_broadcast") as broadcast, \
            django_capture_on_commit_callbacks(execute=True):
        out = jobs_reconcile(names=["fake"])
    assert out == {"fake": {"failed": [row.pk], "requeued": [queued.pk]}}
    assert requeued == [queued.pk]
    broadcast.assert_called_once()
    row.refresh_from_db()
    assert row.status == "failed" and row.failure_reason.endswith("try again")
    fresh.refresh_from_db()
    assert fresh.status == "running"


def test_reconcile_skips_kinds_without_staleness_and_uses_on_stale(fake, row):
    job_claim(kind=fake, pk=row.pk)
    _age(row, heartbeat_at=1)
    with mock.patch.dict(jobs._REGISTRY, {"fake": fake}, clear=True):  # the fake kind alone
        assert jobs_reconcile() == {}  # stale_after_s None: not reconciled
    job_kind_unregister("fake")
    seen = []
    job_kind_register(
        _kind(stale_after_s=60, on_stale=lambda *, row, cutoff: seen.append(row.pk) or True)
    )
    assert jobs_reconcile(names=["fake"]) == {"fake": {"failed": [row.pk], "requeued": []}}
    assert seen == [row.pk]
    row.refresh_from_db()
    assert row.status == "running"  # on_stale decided, not the default


def test_a_kind_with_its_own_reconcile_runs_it_instead(fake, row):
    """Rounds resume a stale row from its checkpoint rather than fail it: their kind brings
    its own reconcile, which ``jobs_reconcile`` runs in place of the generic settling."""
    job_claim(kind=fake, pk=row.pk)
    _age(row, heartbeat_at=1)
    job_kind_unregister("fake")
    job_kind_register(_kind(stale_after_s=60, reconcile=lambda: {"resumed": [row.pk]}))
    assert jobs_reconcile(names=["fake"]) == {"fake": {"resumed": [row.pk]}}
    row.refresh_from_db()
    assert row.status == "running"  # not failed by the generic path
    assert jobs.job_kind("round").reconcile is not None  # learning registers its own
