"""In a real browser: log in, see the campaign map, and watch a worker's progress arrive live."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon

from mapping.models import AdminLevel, AdminUnit, Campaign, ImagerySource
from mapping.services.grid import grid_build
from mapping.services.imagery import fetch_run_start
from mapping.services.members import campaign_members_add
from mapping.tasks import fetch_batch
from tests.conftest import page_login

pytestmark = pytest.mark.browser


def test_live_fetch_progress_reaches_the_browser(
    users, asgi_server, celery_worker_proc, browser
):
    p = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省", name_en="Hubei",
        geometry=MultiPolygon(Polygon.from_bbox((112.5, 30.3, 112.65, 30.35)), srid=4326))
    camp = Campaign.objects.create(slug="live", name="Live", region="Hubei", year=2020, zoom=12)
    campaign_members_add(campaign=camp, users=[users["lead"]])
    camp.provinces.add(p)
    grid_build(campaign=camp)
    source = ImagerySource.objects.create(slug="mapbox", name="Mapbox (synthetic)",
                                          kind="synthetic", config={"look": "mapbox", "seed": 3})
    start = fetch_run_start(campaign=camp, source=source, province_adcodes=None)
    assert start.run.total == 3

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, asgi_server, "lead")
    assert "Live" in page.content()
    page.goto(f"{asgi_server}/campaigns/live/")
    # Leaflet is served by the app itself and draws the three blocks.
    page.wait_for_function(
        "() => window.L && document.getElementById('map').dataset.blocks === '3'"
    )
    page.wait_for_function("() => document.getElementById('map').dataset.tiles === 'loaded'")
    assert page.locator("#map canvas").count() >= 1  # the blocks' vector tiles
    row = f"#fetch-runs tr[data-job='fetch-{start.run.pk}']"
    assert page.inner_text(f"{row} [data-k=status]") == "queued"
    page.wait_for_timeout(500)  # let the websocket subscribe before work starts

    for batch in start.batches:
        fetch_batch.delay(start.run.pk, batch)
    page.wait_for_function(
        f"() => document.querySelector(\"{row} [data-k=status]\").textContent === 'done'",
        timeout=60_000,
    )
    assert page.inner_text(f"{row} [data-k=ok]") == "3"
    assert page.inner_text(f"{row} [data-k=pending]") == "0"
    assert errors == []
