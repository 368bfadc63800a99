"""Rounds under pressure: concurrent triggers, cancel, stale workers, a killed worker."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from annotation.models import Sample
from learning.models import (
    ModelKind,
    ModelVersion,
    ProvinceStatus,
    Round,
    RoundState,
    SystematicSampleBlock,
)
from learning.selection import Candidate, priority, select_spread
from learning.services import (
    RoundConflict,
    RoundInputError,
    RoundNotActive,
    round_cancel,
    round_start,
    systematic_sample_create,
    validation_split_ensure,
)
from learning.services.round.driver import round_advance_run
from learning.services.round.reconcile import rounds_reconcile_run
from learning.services.round.train import round_train_run
from mapping.geo.grid import grid_for
from mapping.models import AdminLevel, AdminUnit, Block, Campaign
from tests.learning.test_rounds import wait_for_round
from tests.learning.test_rounds_fixtures import TINY_CONFIG, tiny_campaign_create


@pytest.fixture
def small_campaign(db):
    """A campaign with two provinces and a block each, no imagery: enough for the lifecycle."""
    from django.contrib.gis.geos import MultiPolygon, Polygon

    campaign = Campaign.objects.create(slug="small", name="Small", region="t", year=2020)
    provs = []
    for adcode, x in ((420000, 112.5), (430000, 113.0)):
        p, _ = AdminUnit.objects.get_or_create(
            level=AdminLevel.PROVINCE, adcode=adcode,
            defaults={"name_zh": str(adcode), "name_en": f"P{adcode}", "geometry": MultiPolygon(
                Polygon.from_bbox((x, 30.0, x + 0.1, 30.1)), srid=4326)})
        provs.append(p)
        bid = grid_for(0.05).block_at(x + 0.01, 30.01)
        Block.objects.create(campaign=campaign, row=bid.row, col=bid.col, province=p,
                             geometry=Polygon.from_bbox(grid_for(0.05).bounds(bid)))
    campaign.provinces.set(provs)
    return campaign


def test_ten_concurrent_triggers_start_exactly_one_round(transactional_db, small_campaign):
    barrier = threading.Barrier(10)
    outcomes: list[str] = []
    lock = threading.Lock()

    def trigger() -> None:
        try:
            barrier.wait()
            rnd = round_start(campaign=small_campaign, provinces=None, user=None, config={})
            result = f"started {rnd.number}"
        except RoundConflict as e:
            result = f"conflict {e.active.number}"
        except Exception as e:  # noqa: BLE001  # recorded and asserted below
            result = f"error {type(e).__name__}: {e}"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=trigger) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["conflict 1"] * 9 + ["started 1"], outcomes
    assert list(Round.objects.filter(campaign=small_campaign).values_list("number", "state")) == [
        (1, "queued")]


def test_ten_simultaneous_http_triggers_get_one_201_and_nine_409s(
    small_campaign, asgi_server, login
):
    """The same through the real ASGI server: ten admins' clicks at once, one round."""
    import json
    import urllib.error
    import urllib.request

    c = login("admin")
    session = c.cookies["sessionid"].value
    url = f"{asgi_server}/api/campaigns/{small_campaign.slug}/rounds/"
    # A CSRF token for the session: the API checks it like the page's fetch does.
    page = urllib.request.Request(f"{asgi_server}/campaigns/{small_campaign.slug}/rounds/",
                                  headers={"Cookie": f"sessionid={session}"})
    with urllib.request.urlopen(page, timeout=30) as resp:
        cookies = resp.headers.get_all("Set-Cookie") or []
    csrf = next(v.split(";")[0].split("=", 1)[1] for v in cookies if v.startswith("csrftoken="))
    barrier = threading.Barrier(10)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def click() -> None:
        req = urllib.request.Request(
            url, data=b"{}", method="POST",
            headers={"Cookie": f"sessionid={session}; csrftoken={csrf}", "X-CSRFToken": csrf,
                     "Content-Type": "application/json", "Origin": asgi_server,
                     "Referer": asgi_server + "/"})
        barrier.wait()
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                got = (resp.status, json.loads(resp.read()))
        except urllib.error.HTTPError as e:
            got = (e.code, json.loads(e.read() or b"{}"))
        with lock:
            answers.append(got)

    threads = [threading.Thread(target=click) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(code for code, _ in answers) == [201] + [409] * 9, answers
    detail = f"/api/campaigns/{small_campaign.slug}/rounds/1/"
    assert all(body["url"] == detail for code, body in answers if code == 409)
    assert Round.objects.filter(campaign=small_campaign).count() == 1


def test_round_start_command(small_campaign):
    import json
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("round_start", "--campaign", small_campaign.slug, "--provinces", "420000",
                 "--config", '{"epochs": 2}', "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert (body["number"], body["state"], body["provinces"]) == (1, "queued", [420000])
    assert body["config"]["epochs"] == 2
    with pytest.raises(CommandError, match="cancel it or wait"):
        call_command("round_start", "--campaign", small_campaign.slug, stdout=StringIO())
    with pytest.raises(CommandError, match="config: .*no_such"):
        call_command("round_start", "--campaign", small_campaign.slug,
                     "--config", '{"no_such": 1}', stdout=StringIO())
    with pytest.raises(CommandError, match="comma-separated adcodes"):
        call_command("round_start", "--campaign", small_campaign.slug, "--provinces", "hubei",
                     stdout=StringIO())
    with pytest.raises(CommandError, match="no campaign"):
        call_command("round_start", "--campaign", "nope", stdout=StringIO())
    assert Round.objects.filter(campaign=small_campaign).count() == 1


def test_start_validates_input_and_cancel_frees_the_campaign(small_campaign):
    with pytest.raises(RoundInputError, match="epochs"):
        round_start(campaign=small_campaign, provinces=None, user=None, config={"epochs": 0})
    with pytest.raises(RoundInputError, match="Extra inputs|extra"):
        round_start(campaign=small_campaign, provinces=None, user=None, config={"epoch": 3})
    with pytest.raises(RoundInputError, match="110000 is not a province"):
        round_start(campaign=small_campaign, provinces=[110000], user=None, config={})
    rnd = round_start(campaign=small_campaign, provinces=[430000], user=None, config={})
    assert list(rnd.provinces.values_list("adcode", flat=True)) == [430000]
    rnd = round_cancel(rnd=rnd, user=None)
    assert rnd.state == RoundState.CANCELLED and rnd.finished_at is not None
    assert "cancelled by system" in rnd.log
    with pytest.raises(RoundNotActive):
        round_cancel(rnd=rnd, user=None)
    # A task delivered after the cancel changes nothing.
    assert round_advance_run(round_id=rnd.pk) == {"state": "cancelled"}
    assert round_train_run(round_id=rnd.pk) == {"skipped": "cancelled"}
    rnd.refresh_from_db()
    assert rnd.state == RoundState.CANCELLED and rnd.started_at is None
    # The campaign is free again: the next round gets number 2.
    assert round_start(campaign=small_campaign, provinces=None, user=None, config={}).number == 2


def test_reconciler_resumes_a_quiet_round_then_gives_up(small_campaign):
    rnd = round_start(campaign=small_campaign, provinces=None, user=None,
                      config={"stale_after_s": 5, "max_resumes": 2})
    Round.objects.filter(pk=rnd.pk).update(state=RoundState.TRAINING, started_at=timezone.now(),
                                           heartbeat_at=timezone.now())
    assert rounds_reconcile_run()["resumed"] == []  # heartbeat fresh: leave it alone
    for attempt in (1, 2):
        Round.objects.filter(pk=rnd.pk).update(
            heartbeat_at=timezone.now() - dt.timedelta(seconds=30), lease="dead-token")
        out = rounds_reconcile_run()
        assert out["resumed"] == [rnd.pk] and out["next_check_s"] == 2.5
        rnd.refresh_from_db()
        assert rnd.state == RoundState.TRAINING and rnd.lease == ""
        assert rnd.checkpoint["resumes"] == attempt
        assert f"resuming from training (resume {attempt} of 2)" in rnd.log
    Round.objects.filter(pk=rnd.pk).update(heartbeat_at=timezone.now() - dt.timedelta(seconds=30))
    assert rounds_reconcile_run()["failed"] == [rnd.pk]
    rnd.refresh_from_db()
    assert rnd.state == RoundState.FAILED and "already resumed 2 time(s)" in rnd.failure_reason


def test_reconciler_fails_a_round_past_its_time_limit(small_campaign):
    rnd = round_start(campaign=small_campaign, provinces=None, user=None,
                      config={"max_duration_s": 60})
    Round.objects.filter(pk=rnd.pk).update(
        state=RoundState.PREDICTING, heartbeat_at=timezone.now(),
        started_at=timezone.now() - dt.timedelta(seconds=61))
    assert rounds_reconcile_run()["failed"] == [rnd.pk]
    rnd.refresh_from_db()
    assert rnd.state == RoundState.FAILED
    assert rnd.failure_reason == "time limit of 60 s exceeded while predicting"


def test_evaluation_delivered_twice_runs_once(small_campaign):
    """A second copy of the advance task while the first evaluates writes nothing."""
    from learning.models import ProvinceRoundResult, Round, RoundState
    from learning.services.round.progress import lease_claim

    rnd = Round.objects.create(campaign=small_campaign, number=1, state=RoundState.EVALUATING,
                               heartbeat_at=timezone.now(), started_at=timezone.now())
    first = lease_claim(round_id=rnd.pk, state=RoundState.EVALUATING, stale_after_s=300)
    assert first is not None
    assert round_advance_run(round_id=rnd.pk) == {"state": "evaluating", "busy": True}
    assert not ProvinceRoundResult.objects.filter(round=rnd).exists()
    assert Round.objects.get(pk=rnd.pk).lease == first  # the first copy keeps its lease


def test_round_log_keeps_its_tail(small_campaign, monkeypatch):
    from learning.models import Round
    from learning.services.round import progress as rounds

    monkeypatch.setattr(rounds, "LOG_KEEP_CHARS", 300)
    rnd = Round.objects.create(campaign=small_campaign, number=1)
    for k in range(40):
        rounds.round_log(rnd=rnd.pk, message=f"line {k:02d}")
    log = Round.objects.get(pk=rnd.pk).log
    assert len(log) == 300 and log.endswith("line 39\n") and "line 00" not in log


def test_selection_ranks_and_spreads():
    w = {"p_incorrect": 0.5, "low_confidence": 0.25, "disagreement": 0.25}
    cands = [
        Candidate(1, 112.51, 30.31, 0.9, 0.2, 0.1),   # 0.525, cell (562, 151)
        Candidate(2, 112.53, 30.33, 1.0, 1.0, 1.0),   # 1.0, same cell as 1
        Candidate(3, 112.71, 30.31, 0.2, None, None),  # only p_incorrect: 0.2
        Candidate(4, 112.91, 30.51, None, 0.8, 0.4),  # 0.6
    ]
    assert priority(cands[0], w) == pytest.approx(0.525)
    assert priority(cands[2], w) == pytest.approx(0.2)
    assert priority(cands[3], w) == pytest.approx(0.6)
    picks = select_spread(cands, n=10, cell_deg=0.2, weights=w)
    assert [p.block_id for p in picks] == [2, 4, 3]  # block 1 shares block 2's cell
    assert [p.block_id for p in select_spread(cands, n=2, cell_deg=0, weights=w)] == [2, 4]


def test_systematic_sample(small_campaign):
    rows = systematic_sample_create(campaign=small_campaign, spacing_deg=0.05, user=None)
    # Points at (k + 0.5) * 0.05: each falls in the middle of one block.
    assert sorted(r.block_id for r in rows) == sorted(Block.objects.values_list("pk", flat=True))
    assert systematic_sample_create(campaign=small_campaign, spacing_deg=0.05) and \
        SystematicSampleBlock.objects.count() == 2  # repeatable
    with pytest.raises(ValueError, match="spacing"):
        systematic_sample_create(campaign=small_campaign, spacing_deg=0)


def test_validation_share_never_moves_trained_samples(small_campaign):
    from mapping.models import ImagerySource

    src = ImagerySource.objects.create(slug="mapbox-t", name="m", kind="synthetic",
                                       config={"look": "mapbox"})
    blocks = {}
    for prov in small_campaign.provinces.all():
        for k in range(4):  # four blocks per province, one sample each, none held out
            blocks.setdefault(prov.adcode, []).append(Block.objects.create(
                campaign=small_campaign, row=10 + k, col=prov.adcode // 1000, province=prov,
                geometry=Block.objects.filter(province=prov).first().geometry))
    samples = {a: [Sample.objects.create(block=b, source=src, kind="negative") for b in bs]
               for a, bs in blocks.items()}
    # A model already trained on three of Hubei's four samples: only the fourth may move.
    trained = [s.pk for s in samples[420000][:3]]
    ModelVersion.objects.create(campaign=small_campaign, kind=ModelKind.SEGMENTER, name="old",
                                bundle_path="x", training_samples=trained)
    assert validation_split_ensure(campaign=small_campaign, share=0.5) == 3  # 1 + 2
    val = {a: set(Sample.objects.filter(block__province__adcode=a, split="validation")
                  .values_list("pk", flat=True)) for a in samples}
    assert val[420000] == {samples[420000][3].pk}
    assert len(val[430000]) == 2
    # Repeating changes nothing: Hunan has its half, Hubei has nothing left it may move.
    assert validation_split_ensure(campaign=small_campaign, share=0.5) == 0


def test_validation_holds_out_whole_blocks_of_finished_work(small_campaign, users):
    """Both sources of a block go to validation together (the same fields on two images would
    leak), and work not yet reviewed is neither held out nor validated on."""
    from annotation.models import Assignment
    from learning.services.data import validation_samples
    from mapping.models import ImagerySource

    srcs = [ImagerySource.objects.create(slug=f"src-{k}", name=k, kind="synthetic",
                                         config={"look": "mapbox"}) for k in ("a", "b")]
    prov = small_campaign.provinces.get(adcode=420000)
    geom = Block.objects.filter(province=prov).first().geometry
    pairs = []
    for k in range(6):
        b = Block.objects.create(campaign=small_campaign, row=70 + k, col=3, province=prov,
                                 geometry=geom)
        pairs.append([Sample.objects.create(block=b, source=s, kind="negative") for s in srcs])
        if k >= 4:  # two blocks still with their annotator, never reviewed
            Assignment.objects.create(block=b, user=users["annotator"], status="submitted")
    assert validation_split_ensure(campaign=small_campaign, share=0.5) == 6  # 3 blocks x 2
    held = {b: {s.split for s in Sample.objects.filter(block_id=b)}
            for b in {p[0].block_id for p in pairs}}
    assert all(len(splits) == 1 for splits in held.values()), held  # never split by source
    unreviewed = {p[0].block_id for p in pairs[4:]}
    assert all(held[b] == {"train"} for b in unreviewed)
    assert sum(1 for v in held.values() if v == {"validation"}) == 3
    # A held-out sample sent back to its annotator stops counting for validation.
    one = Sample.objects.filter(split="validation").first()
    got = {s.pk for s in validation_samples(campaign_id=small_campaign.pk, province_id=prov.pk)}
    assert one.pk in got and len(got) == 6
    Assignment.objects.create(block=one.block, user=users["annotator"], status="in_progress")
    got = {s.pk for s in validation_samples(campaign_id=small_campaign.pk, province_id=prov.pk)}
    assert one.pk not in got and len(got) == 4


def test_the_validation_minimum_counts_only_blocks_it_validates_on(small_campaign, users):
    """A held-out block still with its annotator is not validated on, so the minimum of
    held-out blocks per province is reached with finished blocks (the played demo's first
    round had 3 validated blocks for a minimum of 4, and IoU stayed unknown)."""
    from annotation.models import Assignment
    from learning.services.data import validation_samples
    from mapping.models import ImagerySource

    src = ImagerySource.objects.create(slug="mapbox-v", name="m", kind="synthetic",
                                       config={"look": "mapbox"})
    prov = small_campaign.provinces.get(adcode=420000)
    geom = Block.objects.filter(province=prov).first().geometry
    for k in range(8):
        b = Block.objects.create(campaign=small_campaign, row=80 + k, col=3, province=prov,
                                 geometry=geom)
        Sample.objects.create(block=b, source=src, kind="negative",
                              split="validation" if k == 0 else "train")
        if k == 0:  # held out, but still with the annotator
            Assignment.objects.create(block=b, user=users["annotator"], status="submitted")
    assert validation_split_ensure(campaign=small_campaign, share=0.0, min_blocks=4) == 4
    got = validation_samples(campaign_id=small_campaign.pk, province_id=prov.pk)
    assert len({s.block_id for s in got}) == 4
    assert validation_split_ensure(campaign=small_campaign, share=0.0, min_blocks=4) == 0


def test_training_uses_samples_outside_the_work_flow_or_accepted(small_campaign, users):
    from annotation.models import Assignment
    from learning.services.data import training_samples
    from mapping.models import ImagerySource

    src = ImagerySource.objects.create(slug="mapbox-w", name="m", kind="synthetic",
                                       config={"look": "mapbox"})
    prov = small_campaign.provinces.first()
    geom = Block.objects.filter(province=prov).first().geometry
    made = {}
    for k, status in enumerate((None, "todo", "in_progress", "submitted", "accepted")):
        b = Block.objects.create(campaign=small_campaign, row=50 + k, col=7, province=prov,
                                 geometry=geom)
        made[status] = Sample.objects.create(block=b, source=src, kind="negative")
        if status:
            Assignment.objects.create(block=b, user=users["annotator"], status=status)
    held = Sample.objects.create(block=Block.objects.create(
        campaign=small_campaign, row=60, col=7, province=prov, geometry=geom), source=src,
        kind="negative", split="validation")
    got = {s.pk for s in training_samples(campaign_id=small_campaign.pk)}
    # Drawn outside the work flow, or reviewed and accepted; never unreviewed or held out.
    assert got == {made[None].pk, made["accepted"].pk}
    assert held.pk not in got


def _worker_tail() -> str:
    logs = sorted(Path(settings.VAR_DIR).glob("worker-*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text(errors="replace")[-3000:] if logs else "(no worker log)"


@pytest.mark.slow
def test_killed_worker_mid_training_resumes_and_finishes(celery_worker_proc, users):
    """SIGKILL the worker during training: the round stays resumable, a new worker resumes it
    from the epoch checkpoint and finishes; every threshold 0 here, so provinces converge."""
    from tests.conftest import _start, _stop

    tiny = tiny_campaign_create(user=users["lead"])
    # Long enough (120 steps) that the 1 s heartbeat sees it mid-training even on a fast day.
    cfg = TINY_CONFIG | {"epochs": 6, "steps_per_epoch": 20, "stale_after_s": 4,
                         "stopping": {"iou_min": 0, "correctness_min": 0, "area_ratio_min": 0}}
    rnd = round_start(campaign=tiny.campaign, provinces=None, user=users["admin"], config=cfg)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        rnd.refresh_from_db()
        if rnd.state == RoundState.TRAINING and rnd.stage_done > 25:  # epoch 1 checkpointed
            break
        assert rnd.state in ("queued", "training"), (
            f"{rnd.state}: {rnd.failure_reason}\n{rnd.log}\n{_worker_tail()}")
        time.sleep(0.2)
    else:
        raise AssertionError(f"training never got going: {rnd.log}")
    celery_worker_proc.send_signal(signal.SIGKILL)
    celery_worker_proc.wait(10)
    time.sleep(6)  # longer than stale_after_s: the heartbeat thread died with the worker
    rnd.refresh_from_db()
    assert rnd.state == RoundState.TRAINING and rnd.lease  # stuck until someone reconciles
    ckpt = Path(settings.DATA_DIR) / "learning" / "tiny-2020" / "round-1" / "seg-r1"
    assert (ckpt / "checkpoint.pt").is_file()
    assert not ModelVersion.objects.filter(kind=ModelKind.SEGMENTER).exists()

    log = Path(settings.VAR_DIR) / "worker-second.log"
    log.unlink(missing_ok=True)
    second = _start([sys.executable, "-m", "celery", "-A", "croplayer_site", "worker", "-Q",
                     "cpu,gpu", "--pool", "solo", "--loglevel", "INFO", "--without-heartbeat",
                     "--without-gossip", "--without-mingle"], log,
                    lambda: log.exists() and b"ready." in log.read_bytes(), "second worker")
    try:
        rnd = wait_for_round(rnd, states=("done", "failed", "cancelled"), timeout=240)
    finally:
        _stop(second)
    assert rnd.state == RoundState.DONE, rnd.failure_reason + rnd.log
    # Resumed by the reconciler, or by the redelivered training message: either way attempt 2.
    assert "training resumed (attempt 2)" in rnd.log
    seg = ModelVersion.objects.get(kind=ModelKind.SEGMENTER)
    assert seg.metrics["resumed_from_epoch"] >= 1 and len(seg.metrics["epoch_losses"]) == 6
    assert seg.is_current and seg.config["warm_start"] is None
    assert set(rnd.province_results.values_list("decision", flat=True)) == {"converged"}
    assert set(ProvinceStatus.objects.values_list("decision", flat=True)) == {"converged"}

    # A supplementary round for one province (explicitly asked for) warm-starts from seg-r1
    # and counts as that province's first supplementary round.
    with pytest.raises(RoundInputError, match="converged or excluded"):
        round_start(campaign=tiny.campaign, provinces=None, user=None, config={})
    second = _start([sys.executable, "-m", "celery", "-A", "croplayer_site", "worker", "-Q",
                     "cpu,gpu", "--pool", "solo", "--loglevel", "INFO", "--without-heartbeat",
                     "--without-gossip", "--without-mingle"], log,
                    lambda: log.exists() and b"ready." in log.read_bytes(), "third worker")
    try:
        r2 = round_start(campaign=tiny.campaign, provinces=[420000], user=None,
                         config=TINY_CONFIG | {"stopping": {"area_ratio_min": 100.0,
                                                            "max_supplementary_rounds": 1}})
        r2 = wait_for_round(r2, states=("done", "failed", "cancelled"), timeout=240)
    finally:
        _stop(second)
    assert r2.state == RoundState.DONE, r2.failure_reason + r2.log
    seg2 = ModelVersion.objects.get(kind=ModelKind.SEGMENTER, name="seg-r2")
    assert seg2.config["warm_start"] == "seg-r1" and seg2.is_current
    assert not ModelVersion.objects.get(pk=seg.pk).is_current
    result = r2.province_results.get()
    assert result.province.adcode == 420000 and result.supplementary_rounds == 1
    # The area can never reach 100 x the official figure, and the one supplementary round
    # allowed is used: excluded.
    assert result.decision == "excluded"
    status = ProvinceStatus.objects.get(province__adcode=420000)
    assert status.decision == "excluded" and "exclude the province" in status.reason


@pytest.mark.slow
def test_cancel_stops_training_in_the_worker(celery_worker_proc, users):
    tiny = tiny_campaign_create(user=users["lead"])
    cfg = TINY_CONFIG | {"epochs": 50, "steps_per_epoch": 10, "stale_after_s": 5}
    rnd = round_start(campaign=tiny.campaign, provinces=None, user=users["admin"], config=cfg)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rnd.refresh_from_db()
        if rnd.state == RoundState.TRAINING and rnd.stage_done >= 3:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(rnd.log)
    round_cancel(rnd=rnd, user=users["admin"])
    log = Path(settings.VAR_DIR).glob("worker-*.log")
    worker_log = max(log, key=lambda p: p.stat().st_mtime)
    deadline = time.monotonic() + 30
    while b"{'stopped': True}" not in worker_log.read_bytes():
        assert time.monotonic() < deadline, "training did not stop after the cancel"
        time.sleep(0.3)
    rnd.refresh_from_db()
    assert rnd.state == RoundState.CANCELLED and rnd.stage_done < 500
    # Stopped long before its 500 steps; nothing half-trained was registered.
    assert not ModelVersion.objects.filter(kind=ModelKind.SEGMENTER).exists()
