"""End to end in a real browser, on the demo data with a tiny model on CPU: an admin starts a
round, watches its progress arrive over the websocket from a Celery worker process, the round
finishes, the dashboard shows each province's numbers and decision, and the selected blocks
come first in a new annotator's queue."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from annotation.services.demo import DEMO_SLUG, WINDOWS, demo_load
from croplayer_site.roles import ANNOTATOR
from learning.models import BlockSelection, ProvinceRoundResult, Round, RoundState
from tests.conftest import page_login
from tests.factories import password_of, user_make

pytestmark = pytest.mark.browser

# Keeps the CPU round to minutes: every labelled block plus a few more per province.
EXTRA_CONFIG = '{"blocks_per_province_limit": 10, "batch_blocks": 10, "iqa_min_labels": 4}'


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_admin_runs_a_round_in_the_browser(users, asgi_server, celery_worker_proc, browser):
    demo_load()
    # The demo gives its users new passwords; the test's are the fixtures'.
    for name in ("admin", "lead"):
        u = User.objects.get(username=name)
        u.set_password(password_of(name))
        u.save()
    user_make("annotator2", role=ANNOTATOR)

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, asgi_server, "admin")
    page.goto(f"{asgi_server}/campaigns/{DEMO_SLUG}/rounds/")
    page.check("input[name=scope][value=pending]")
    page.select_option("select[name=preset]", "tiny")
    page.fill("input[name=select_per_province]", "3")
    page.click("details summary")
    page.fill("textarea[name=extra_config]", EXTRA_CONFIG)
    page.click("#start-button")
    page.wait_for_url(re.compile(r".*\?round=\d+$"), timeout=30_000)
    rnd = Round.objects.get(campaign__slug=DEMO_SLUG, number=1)
    assert sorted(rnd.provinces.values_list("adcode", flat=True)) == sorted(WINDOWS)

    # Live progress: pushed by the worker, relayed by the round consumer.
    page.wait_for_function("() => document.getElementById('round-progress').dataset.ws === "
                           "'open'", timeout=30_000)
    page.wait_for_function(
        "() => document.getElementById('round-progress').dataset.final", timeout=1_500_000,
        polling=1000,
    )
    rnd.refresh_from_db()
    assert rnd.state == RoundState.DONE, rnd.failure_reason + "\n" + rnd.log[-3000:]
    panel = page.locator("#round-progress")
    assert panel.get_attribute("data-final") == "done"
    updates = int(page.inner_text("#round-progress [data-k=updates]"))
    states = panel.get_attribute("data-states").split()
    assert "done" in states and any(s in states for s in ("training", "predicting", "scoring"))
    assert page.inner_text("#round-progress [data-k=overall_percent]") == "100"
    assert "selected for labelling" in page.inner_text("#round-log")
    assert page.locator("#round-done").is_visible()

    # The dashboard: one row per demo province with the round's numbers and decision.
    page.goto(f"{asgi_server}/campaigns/{DEMO_SLUG}/dashboard/")
    page.wait_for_function(
        "() => document.getElementById('province-map').dataset.provinces === '3'"
    )
    results = {r.province.adcode: r for r in
               ProvinceRoundResult.objects.filter(round=rnd).select_related("province")}
    assert set(results) == set(WINDOWS)
    for adcode, r in results.items():
        row = f"#province-table tr[data-adcode='{adcode}']"
        assert page.get_attribute(row, "data-decision") == r.decision
        assert r.iou_samples >= 1  # the demo holds out every fourth of its 8 samples
        iou = page.inner_text(f"{row} [data-k=iou]")
        expected = (f"{r.iou:.3f} ({r.iou_samples})" if r.iou is not None
                    else f"– ({r.iou_samples})")
        ci = (r.reasons or {}).get("iou", {}).get("ci") if isinstance(r.reasons, dict) else None
        if isinstance(ci, list) and len(ci) == 2:
            # The round's 95 % interval (bootstrap over blocks) follows the value.
            expected += f" [{ci[0]:.3f}–{ci[1]:.3f}]"
        assert iou == expected
        assert page.inner_text(f"{row} [data-k=supplementary]") == \
            f"{r.supplementary_rounds} / 3"
        if r.area_mapbox_ha is not None and r.official_ha:
            assert page.inner_text(f"{row} [data-k=area_mapbox_pct]") == \
                f"{100 * r.area_mapbox_ha / r.official_ha:.1f} %"
        assert page.locator(f"{row} [data-criterion=iou]").count() == 1
    assert page.locator("#decision-log tbody tr").count() == 3
    page.wait_for_function("() => document.querySelector('.charts').dataset.points === '1'")
    # Kept for a look when the test fails in CI (var/ is never committed).
    page.screenshot(path=str(Path(settings.VAR_DIR) / "round-browser-dashboard.png"),
                    full_page=True)

    # The annotators' queue: a new annotator's first block is the round's top selection.
    top = BlockSelection.objects.filter(round=rnd).order_by("rank").first()
    assert top is not None
    page2 = browser.new_context().new_page()
    page2.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page2, asgi_server, "annotator2")
    page2.click(f"form[action='/annotate/campaigns/{DEMO_SLUG}/next/'] button")
    page2.wait_for_url(re.compile(r".*/annotate/blocks/\d+/.*"), timeout=30_000)
    assert f"/annotate/blocks/{top.block_id}/" in page2.url
    assert errors == []

    assert updates >= 3, "progress should arrive over the websocket while the round runs"


def test_conflict_link_and_cancel_in_the_browser(users, asgi_server, browser):
    """A second start gets the engine's 409 with a link to the running round; the admin opens
    it and cancels it, and the cancellation arrives over the websocket (no worker needed)."""
    from django.contrib.gis.geos import MultiPolygon, Polygon

    from mapping.models import AdminLevel, AdminUnit, Campaign

    hubei = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省", name_en="Hubei",
        geometry=MultiPolygon(Polygon.from_bbox((112.5, 30.3, 112.6, 30.4)), srid=4326))
    camp = Campaign.objects.create(slug="busy", name="Busy", region="Hubei", year=2020, zoom=12)
    camp.provinces.add(hubei)
    running = Round.objects.create(campaign=camp, number=4, state=RoundState.TRAINING,
                                   stage_done=1, stage_total=3, log="x training\n")
    running.provinces.add(hubei)

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    page_login(page, asgi_server, "admin")
    page.goto(f"{asgi_server}/campaigns/busy/rounds/")
    page.click("#start-button")
    page.wait_for_selector("#conflict-link", timeout=15_000)
    assert "round 4 of this campaign is still training" in page.inner_text("#start-result")
    page.click("#conflict-link")
    page.wait_for_url(re.compile(r".*\?number=4$"))
    page.wait_for_function(
        "() => document.getElementById('round-progress').dataset.ws === 'open'")
    page.click("#cancel-button")
    page.wait_for_function(
        "() => document.getElementById('round-progress').dataset.final === 'cancelled'",
        timeout=20_000)
    assert page.inner_text("#round-progress [data-k=state]") == "cancelled"
    assert page.inner_text("#round-progress [data-k=updates]") == "1"  # the broadcast
    assert "cancelled by admin" in page.inner_text("#round-log")
    assert not page.locator("#cancel-button").is_visible()
    running.refresh_from_db()
    assert running.state == RoundState.CANCELLED and running.cancel_requested
    assert errors == []
