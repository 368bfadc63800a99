"""The annotation workspace in a real browser: mouse drawing, conflicts, the offline outbox."""

from __future__ import annotations

import gettext
import io
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from django.contrib.gis.geos import Polygon
from django.contrib.staticfiles import finders

from annotation.models import AuditEntry, Sample, SamplePolygon
from annotation.services import polygon_create
from mapping.models import Block, Campaign, ImagerySource
from mapping.services.imagery import block_image_fetch
from mapping.services.members import campaign_members_add
from tests.annotation.conftest import square
from tests.conftest import page_login
from tests.factories import current_prediction_make

W, S, E, N = 112.5, 30.3, 112.55, 30.35


@pytest.fixture
def imaged_block(users):
    """A block with synthetic Mapbox and Google images (zoom 13 keeps the mosaic small),
    assigned to the annotator where assignments exist."""
    camp = Campaign.objects.create(slug="ws", name="Workspace", region="Hubei", year=2020, zoom=13)
    campaign_members_add(campaign=camp, users=[users["lead"]])
    blk = Block.objects.create(
        campaign=camp, row=2386, col=5850, geometry=Polygon.from_bbox((W, S, E, N))
    )
    for slug, look, seed in (("mapbox", "mapbox", 1), ("google", "google", 2)):
        src = ImagerySource.objects.create(
            slug=slug, name=slug.title(), kind="synthetic", config={"look": look, "seed": seed}
        )
        assert block_image_fetch(block=blk, source=src).status == "ok"
    try:
        from annotation.models import Assignment
    except ImportError:  # before assignments, every annotator may write every block
        pass
    else:
        Assignment.objects.create(block=blk, user=users["annotator"])
    return blk


def _open(page, base: str, blk: Block) -> None:
    page.goto(f"{base}/annotate/blocks/{blk.pk}/")
    page.wait_for_selector("#ws[data-ready='1']")


def _px(page, lon: float, lat: float) -> tuple[float, float]:
    """Page coordinates of a point of the map."""
    box = page.locator("#ws-map").bounding_box()
    pt = page.evaluate(
        f"(() => {{ const p = wsMap.latLngToContainerPoint([{lat}, {lon}]); "
        "return [p.x, p.y]; })()"
    )
    return box["x"] + pt[0], box["y"] + pt[1]


def _draw_polygon(page, fractions: list[tuple[float, float]]) -> None:
    """Press P and click the vertices (fractions of the block), then the first one to close."""
    page.keyboard.press("p")
    points = [_px(page, W + fx * (E - W), S + fy * (N - S)) for fx, fy in fractions]
    for x, y in [*points, points[0]]:
        page.mouse.click(x, y)
        page.wait_for_timeout(80)


def _status(page) -> str:
    return page.inner_text("#ws-status")


def _wait_saved(page, version: int) -> None:
    page.wait_for_function(
        f"() => document.getElementById('ws-status').dataset.state === 'saved' && "
        f"document.getElementById('ws-status').dataset.version === '{version}'",
        timeout=15_000,
    )


def _new_page(browser_or_context, errors: list[str]):
    page = browser_or_context.new_page()
    page.set_viewport_size({"width": 1400, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def test_workspace_needs_login_and_a_role(client, users, imaged_block):
    url = f"/annotate/blocks/{imaged_block.pk}/"
    assert client.get(url).status_code == 302
    client.force_login(users["outsider"])
    assert client.get(url).status_code == 404
    client.force_login(users["annotator"])
    body = client.get(url).content.decode()
    assert "Cropland with scattered trees" in body and "orchards" in body
    assert "/static/vendor/leaflet-geoman/leaflet-geoman.min.js" in body
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": url})
    body = client.get(url).content.decode()
    assert "零星林木耕地" in body and "果园" in body


def test_service_worker_is_served_from_annotate_to_anyone(client, users):
    """Its scope must cover /annotate/blocks/…; it holds no data, so no login is needed (the
    browser checks it for updates logged in or not); never HTTP-cached, so updates arrive."""
    res = client.get("/annotate/sw.js")
    assert res.status_code == 200
    assert res["Content-Type"].startswith("text/javascript")
    assert res["Cache-Control"] == "no-cache" and res["Service-Worker-Allowed"] == "/annotate/"
    body = res.content.decode()
    precache = json.loads(re.search(r"^const PRECACHE = (.*);$", body, re.M).group(1))
    assert {"/static/leaflet/leaflet.js", "/static/annotation/workspace.js"} <= set(precache)
    # One missing file and the worker never installs (the install caches all or nothing).
    for url in precache:
        assert finders.find(url.removeprefix("/static/")), url
    assert 'const LOGIN_PATH = "/accounts/login/";' in body
    assert client.post("/annotate/sw.js").status_code == 405


@pytest.mark.browser
def test_draw_polygon_with_mouse_and_pick_subtype(users, asgi_server, browser, imaged_block):
    errors: list[str] = []
    page = _new_page(browser, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, imaged_block)
    page.wait_for_selector("#ws-map .leaflet-tile-loaded", timeout=15_000)
    assert "not saved" in _status(page)

    page.keyboard.press("1")  # paddy, before drawing: new polygons get it
    _draw_polygon(page, [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)])
    _wait_saved(page, 1)
    poly = SamplePolygon.objects.get()
    assert poly.subtype == "paddy"
    assert poly.sample.version == 1 and poly.sample.source.slug == "mapbox"
    assert poly.created_by == users["annotator"]
    x0, y0, x1, y1 = poly.geometry.extent
    assert (
        abs(x0 - (W + 0.2 * (E - W))) < 3e-4 and abs(y1 - (S + 0.6 * (N - S))) < 3e-4
    )  # a few pixels

    # The drawn polygon stays selected: clicking a subtype in the panel re-labels it at once.
    page.click("#ws-subtypes label.st-terraces")
    _wait_saved(page, 2)
    poly.refresh_from_db()
    assert poly.subtype == "terraces"
    assert "saved v2" in _status(page)

    # Ctrl+Z undoes the last local action (the subtype change) through the API as well.
    page.keyboard.press("Control+z")
    _wait_saved(page, 3)
    poly.refresh_from_db()
    assert poly.subtype == "paddy"

    # A reload shows it; G switches to the Google sample (empty), M back.
    page.reload()
    page.wait_for_selector("#ws[data-ready='1']")
    assert page.locator("#ws-map path.leaflet-interactive").count() == 1
    page.keyboard.press("g")
    page.wait_for_function(
        "() => document.getElementById('ws-sample').textContent.startsWith('google')"
    )
    assert page.locator("#ws-map path.leaflet-interactive").count() == 0
    page.keyboard.press("m")
    page.wait_for_function(
        "() => document.querySelectorAll('#ws-map path.leaflet-interactive').length === 1"
    )
    page.keyboard.press("c")  # swipe compare shows the slider
    assert page.locator("#ws-swipe").is_visible()
    page.screenshot(path="/tmp/workspace.png")

    # In Chinese: the guidelines, the subtypes and the status line follow the language switch.
    with page.expect_navigation():
        page.select_option("select[name=language]", "zh-hans")
    page.wait_for_selector("#ws[data-ready='1']")
    assert "零星林木耕地" in page.inner_text("#ws-subtypes")
    assert "易混淆的非耕地" in page.inner_text("#ws-guide")
    assert "已保存 v3" in _status(page)
    page.screenshot(path="/tmp/workspace-zh.png")
    assert errors == []


@pytest.mark.browser
def test_invalid_polygon_shows_the_server_reason(users, asgi_server, browser, imaged_block):
    errors: list[str] = []
    page = _new_page(browser, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, imaged_block)
    # A polygon wholly outside the block: the server refuses it with a reason the user sees.
    page.evaluate("wsMap.setZoom(wsMap.getZoom() - 1)")
    page.wait_for_timeout(300)
    _draw_polygon(page, [(1.1, 0.2), (1.3, 0.2), (1.3, 0.5)])
    page.wait_for_function(
        "() => document.getElementById('ws-status').dataset.state === 'error'", timeout=15_000
    )
    # The server's own sentence, shown alone (not a "geometry: …" prefix).
    assert "the polygon lies outside the block" in _status(page)
    assert SamplePolygon.objects.count() == 0
    assert page.locator("#ws-map path.leaflet-interactive").count() == 0
    assert errors == []


@pytest.mark.browser
def test_stale_version_shows_conflict_banner(users, asgi_server, browser, imaged_block):
    errors: list[str] = []
    page = _new_page(browser, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, imaged_block)

    # Someone else draws two polygons after the page loaded version 0.
    src = ImagerySource.objects.get(slug="mapbox")
    for i, box in enumerate(
        [(W + 0.001, S + 0.001, W + 0.01, S + 0.01), (W + 0.02, S + 0.001, W + 0.03, S + 0.01)]
    ):
        polygon_create(
            user=users["lead"],
            block=imaged_block,
            source=src,
            geometry=square(*box),
            expected_version=i,
            op_id=uuid.uuid4(),
        )

    _draw_polygon(page, [(0.3, 0.5), (0.7, 0.5), (0.7, 0.9), (0.3, 0.9)])
    page.wait_for_selector("#ws-conflict:not([hidden])", timeout=15_000)
    text = page.inner_text("#ws-conflict")
    assert "Someone else changed this block" in text
    assert "version 2 with 2 polygon(s)" in text and "Yours: 1 polygon(s)" in text
    assert "outlined in orange" in text
    assert page.locator("#ws-map path.ws-theirs").count() == 2  # both versions on the map
    assert SamplePolygon.objects.count() == 2

    page.click("#ws-reapply-mine")
    _wait_saved(page, 3)
    assert SamplePolygon.objects.count() == 3
    assert page.locator("#ws-map path.ws-theirs").count() == 0
    # Their polygons and ours are all on the map now.
    page.wait_for_function(
        "() => document.querySelectorAll('#ws-map path.leaflet-interactive').length === 3"
    )
    assert errors == []


@pytest.mark.browser
def test_two_browsers_on_one_block_then_load_theirs(users, asgi_server, browser, imaged_block):
    """Two sessions (two browsers of the annotator) open the block; the first saves a polygon,
    the second, still on version 0, draws one too: it gets the conflict with both versions
    shown, takes theirs, and its own unsaved polygon is gone from screen and server."""
    errors: list[str] = []
    one_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    two_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    one, two = _new_page(one_ctx, errors), _new_page(two_ctx, errors)
    for page in (one, two):
        page_login(page, asgi_server, "annotator")
        _open(page, asgi_server, imaged_block)
    _draw_polygon(one, [(0.1, 0.1), (0.4, 0.1), (0.4, 0.4), (0.1, 0.4)])
    _wait_saved(one, 1)
    _draw_polygon(two, [(0.6, 0.6), (0.9, 0.6), (0.9, 0.9), (0.6, 0.9)])
    two.wait_for_selector("#ws-conflict:not([hidden])", timeout=15_000)
    assert "version 1 with 1 polygon(s)" in two.inner_text("#ws-conflict")
    assert two.locator("#ws-map path.ws-theirs").count() == 1
    two.click("#ws-load-theirs")
    two.wait_for_function(
        "() => document.getElementById('ws-conflict').hidden"
        " && document.querySelectorAll('#ws-map path.leaflet-interactive').length === 1"
    )
    assert two.locator("#ws-map path.ws-theirs").count() == 0
    assert SamplePolygon.objects.count() == 1
    # The second browser can go on from their version: its next polygon is saved as v2.
    _draw_polygon(two, [(0.6, 0.6), (0.9, 0.6), (0.9, 0.9), (0.6, 0.9)])
    _wait_saved(two, 2)
    assert SamplePolygon.objects.count() == 2
    assert errors == []
    one_ctx.close()
    two_ctx.close()


@pytest.mark.browser
def test_offline_edits_survive_a_reload_and_arrive_once(users, asgi_server, browser, imaged_block):
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = _new_page(context, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, imaged_block)

    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")  # offline reached the page
    _draw_polygon(page, [(0.2, 0.2), (0.5, 0.2), (0.5, 0.5), (0.2, 0.5)])
    page.wait_for_function("() => document.getElementById('ws-status').dataset.state === 'offline'")
    assert "1 change" in _status(page)
    assert not Sample.objects.exists()
    page.close()  # the page is gone; the change waits in IndexedDB

    # Back online: the first answer is lost on the way back (the write did happen), so the page
    # must resend the same op_id, which the server answers from its record instead of writing.
    context.set_offline(False)
    lost: list[str] = []

    def lose_first_answer(route):
        if route.request.method == "POST" and not lost:
            route.fetch()
            lost.append(route.request.url)
            route.abort("failed")
        else:
            route.continue_()

    page = _new_page(context, errors)
    page.route("**/polygons/", lose_first_answer)
    page.goto(f"{asgi_server}/annotate/blocks/{imaged_block.pk}/")
    page.wait_for_selector("#ws[data-ready='1']")
    assert lost and SamplePolygon.objects.count() == 1
    # The lost answer leaves it queued; the `online` event (or the next load) resends it.
    page.evaluate("wsFlush()")
    _wait_saved(page, 1)
    assert SamplePolygon.objects.count() == 1
    assert AuditEntry.objects.filter(action="polygon_create").count() == 1
    assert page.locator("#ws-map path.leaflet-interactive").count() == 1

    # Offline again, draw, come back: the `online` event sends it.
    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")  # offline reached the page
    _draw_polygon(page, [(0.6, 0.6), (0.9, 0.6), (0.9, 0.9), (0.6, 0.9)])
    page.wait_for_function("() => document.getElementById('ws-status').dataset.state === 'offline'")
    context.set_offline(False)
    _wait_saved(page, 2)
    assert SamplePolygon.objects.count() == 2
    assert Sample.objects.get().version == 2
    assert errors == []
    context.close()


TILES_SHOWN = """() => [...document.querySelectorAll('#ws-map img.leaflet-tile')]
    .filter(img => img.complete && img.naturalWidth > 0).length >= 4"""


def _cache_names(page) -> list[str]:
    return page.evaluate("caches.keys()")


@pytest.mark.browser
def test_offline_reload_keeps_edits_and_labels_then_saves_each_once(
    users, asgi_server, browser, queued_blocks
):
    """Offline: draw, label, draw; reload (the service worker serves the page, its scripts,
    the imagery seen and the block as last saved); the outbox's edits and label are on screen;
    online again, they reach the server once each, in the order they were made."""
    from annotation.models import ClientOperation, VerdictLabel

    block = queued_blocks[0]  # with a current prediction, which a verdict judges
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = _new_page(context, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, block)
    page.wait_for_selector("#ws[data-offline-ready='1']")  # the worker holds page and block
    # Saved online after the block was read: the worker's copy must follow, or the reload
    # offline would show the block without it and send stale versions.
    _draw_polygon(page, [(0.1, 0.1), (0.3, 0.1), (0.3, 0.3), (0.1, 0.3)])
    _wait_saved(page, 1)

    context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")  # offline reached the page
    _draw_polygon(page, [(0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6)])
    page.keyboard.press("Escape")
    page.keyboard.press("Shift+F")  # verdict: false positive, on Mapbox
    page.wait_for_function(
        "() => document.getElementById('pn-label-msg').dataset.state === 'offline'"
    )
    _draw_polygon(page, [(0.7, 0.7), (0.9, 0.7), (0.9, 0.9), (0.7, 0.9)])
    page.wait_for_function("() => document.getElementById('ws-status').textContent.includes('3')")
    assert SamplePolygon.objects.count() == 1 and not VerdictLabel.objects.exists()

    page.reload()  # still offline: without the service worker the browser has no page to show
    _panel_ready(page)
    assert page.locator("#ws-map path.leaflet-interactive").count() == 3
    assert _pressed(page, "pn-verdicts") == ["fp"]
    page.wait_for_function(TILES_SHOWN)  # the imagery seen before, from the worker's cache
    assert page.get_attribute("#ws-status", "data-state") == "offline"
    assert "3 change" in _status(page)
    assert page.get_attribute("#pn-label-msg", "data-state") == "offline"
    assert SamplePolygon.objects.count() == 1 and not VerdictLabel.objects.exists()

    context.set_offline(False)  # the `online` event sends the outbox
    _wait_saved(page, 3)
    page.wait_for_function(
        "() => ['saved', 'error'].includes(document.getElementById('pn-label-msg').dataset.state)"
    )
    assert page.get_attribute("#pn-label-msg", "data-state") == "saved", page.inner_text(
        "#pn-label-msg"
    )
    assert SamplePolygon.objects.count() == 3
    assert Sample.objects.get(source__slug="mapbox").version == 3
    assert VerdictLabel.objects.get().verdict == "fp"
    entries = list(AuditEntry.objects.order_by("pk").values_list("action", "op_id"))
    actions = ["polygon_create", "polygon_create", "verdict_set", "polygon_create"]
    assert [a for a, _ in entries] == actions
    op_ids = [o for _, o in entries]
    assert len(set(op_ids)) == 4 and None not in op_ids
    assert set(ClientOperation.objects.values_list("op_id", flat=True)) == set(op_ids)
    assert page.evaluate("window.croplayerWorkspace.queuedLabels()") == []
    assert errors == []

    # Nothing is sent twice by another reload, and the page shows what the server holds.
    page.reload()
    _panel_ready(page)
    assert page.locator("#ws-map path.leaflet-interactive").count() == 3
    assert AuditEntry.objects.count() == 4 and ClientOperation.objects.count() == 4
    context.close()


@pytest.mark.browser
def test_logout_forgets_the_offline_copies(users, asgi_server, browser, imaged_block):
    """The worker's copies are the logged-in person's: logging out drops them, so the next
    person at this browser cannot open the block offline; the shell (scripts) stays."""
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = _new_page(context, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, imaged_block)
    page.wait_for_selector("#ws[data-offline-ready='1']")
    assert {"croplayer-shell-v1", "croplayer-data-v1"} <= set(_cache_names(page))
    with page.expect_navigation():
        page.click(".topbar form.user button[type=submit]")
    page.wait_for_url(f"{asgi_server}/accounts/login/")
    page.wait_for_function("async () => !(await caches.keys()).includes('croplayer-data-v1')")
    assert "croplayer-shell-v1" in _cache_names(page)
    page.goto(f"{asgi_server}/annotate/blocks/{imaged_block.pk}/")  # through the worker
    assert page.url.startswith(f"{asgi_server}/accounts/login/?next=")
    context.set_offline(True)
    with pytest.raises(Exception, match="ERR_INTERNET_DISCONNECTED|ERR_FAILED"):
        page.goto(f"{asgi_server}/annotate/blocks/{imaged_block.pk}/")
    assert errors == []
    context.close()


@pytest.mark.browser
def test_edit_vertex_delete_and_undo_with_keys(users, asgi_server, browser, imaged_block):
    errors: list[str] = []
    src = ImagerySource.objects.get(slug="mapbox")
    polygon_create(
        user=users["lead"],
        block=imaged_block,
        source=src,
        geometry=square(W + 0.01, S + 0.01, W + 0.03, S + 0.03),
        expected_version=0,
        op_id=uuid.uuid4(),
    )
    page = _new_page(browser, errors)
    page_login(page, asgi_server, "annotator")
    _open(page, asgi_server, imaged_block)
    page.mouse.click(*_px(page, W + 0.02, S + 0.02))  # select it
    assert "lead" in page.inner_text("#ws-selected")  # provenance of the selected polygon
    page.keyboard.press("e")
    corner = _px(page, W + 0.03, S + 0.03)
    page.wait_for_selector(".marker-icon:not(.marker-icon-middle)")
    page.mouse.move(*corner)
    page.mouse.down()
    page.mouse.move(corner[0] + 30, corner[1] - 30, steps=5)
    page.mouse.up()
    _wait_saved(page, 2)
    poly = SamplePolygon.objects.get()
    assert poly.geometry.extent[2] > W + 0.031 and poly.updated_by == users["annotator"]

    page.keyboard.press("Escape")
    page.mouse.click(*_px(page, W + 0.015, S + 0.015))
    page.keyboard.press("Delete")
    _wait_saved(page, 3)
    assert SamplePolygon.objects.count() == 0
    page.keyboard.press("Control+z")  # brings it back (as a new polygon)
    _wait_saved(page, 4)
    assert SamplePolygon.objects.count() == 1
    assert errors == []


# --- The labelling panel, the work flow and i18n (panel.js) --------------------------------------


@pytest.fixture
def queued_blocks(users, imaged_block):
    """The imaged block first in the annotator's queue, a second block after it, and a current
    segmenter (round 1) whose prediction the labels judge."""
    from annotation.models import Assignment

    Assignment.objects.filter(block=imaged_block).update(priority=1)
    camp = imaged_block.campaign
    second = Block.objects.create(
        campaign=camp, row=2386, col=5851, geometry=Polygon.from_bbox((E, S, E + 0.05, N))
    )
    Assignment.objects.create(block=second, user=users["annotator"], priority=2)
    current_prediction_make(blocks=[imaged_block], sources=ImagerySource.objects.all())
    return imaged_block, second


def _pressed(page, box: str) -> list[str]:
    return page.eval_on_selector_all(
        f"#{box} [aria-pressed=true]", "els => els.map(e => e.dataset.value)"
    )


def _panel_ready(page) -> None:
    page.wait_for_selector("#ws[data-ready='1'][data-panel-ready='1']")


def test_next_block_page_claims_and_opens_the_queue_head(client, users, queued_blocks):
    first, second = queued_blocks
    url = f"/annotate/campaigns/{first.campaign.slug}/next/"
    client.force_login(users["outsider"])
    assert client.post(url).status_code == 404
    client.force_login(users["annotator"])
    assert client.get(url).status_code == 405  # claiming writes: POST only
    res = client.post(url)
    assert res.status_code == 302 and res.url == f"/annotate/blocks/{first.pk}/"
    from annotation.models import Assignment

    Assignment.objects.filter(user=users["annotator"]).update(status="accepted")
    from annotation.models import CampaignWorkflow

    CampaignWorkflow.objects.update_or_create(
        campaign=first.campaign, defaults={"self_assign": False}
    )
    res = client.post(url)
    assert res.status_code == 302 and res.url == f"/?nothing_left={first.campaign.slug}"
    assert "No block left for you in campaign ws." in client.get(res.url).content.decode()


def test_panel_config_per_role(client, users, queued_blocks):
    first, _ = queued_blocks
    url = f"/annotate/blocks/{first.pk}/"
    client.force_login(users["annotator"])
    body = client.get(url).content.decode()
    assert 'id="pn-verdicts"' in body and 'id="pn-integration"' not in body
    assert "Shift+T" in body and "Alt+1" not in body
    client.force_login(users["lead"])
    body = client.get(url).content.decode()
    assert 'id="pn-integration"' in body and "Alt+1" in body and 'id="pn-review"' in body
    # The block viewer links to the workspace; home offers the queue to people with a role.
    assert (
        f'href="/annotate/blocks/{first.pk}/"'
        in client.get(f"/blocks/{first.pk}/").content.decode()
    )
    assert (
        f'action="/annotate/campaigns/{first.campaign.slug}/next/"'
        in client.get("/").content.decode()
    )


@pytest.mark.browser
def test_queue_label_keys_review_and_chinese(users, asgi_server, browser, queued_blocks):
    """Annotator: next block from home, draw, verdict and coverage by key, reload and see them,
    submit, Shift+N to the next block; lead: reject with a comment, integration by Alt+digit;
    annotator sees the comment; the page in zh-hans speaks Chinese from the catalogue."""
    from annotation.models import Assignment, CoverageLabel, IntegrationLabel, VerdictLabel

    first, second = queued_blocks
    errors: list[str] = []
    ann = browser.new_context(viewport={"width": 1400, "height": 900})
    page = _new_page(ann, errors)
    page_login(page, asgi_server, "annotator")
    with page.expect_navigation():
        page.click("button.next-block")
    assert page.url.endswith(f"/annotate/blocks/{first.pk}/")
    _panel_ready(page)
    assert "seg-r1" in page.inner_text("#pn-prediction")
    assert page.locator("#pn-integration").count() == 0  # leads only

    _draw_polygon(page, [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)])
    _wait_saved(page, 1)
    page.keyboard.press("Shift+T")  # true positive, on the source on screen (Mapbox)
    page.wait_for_function(
        "() => document.getElementById('pn-label-msg').dataset.state === 'saved'"
    )
    page.keyboard.press("Shift+2")  # non-planting
    page.wait_for_function(
        "() => document.querySelector('#pn-coverage [data-value=non_planting]')"
        ".getAttribute('aria-pressed') === 'true' && "
        "document.getElementById('pn-label-msg').dataset.state === 'saved'"
    )
    v = VerdictLabel.objects.get(source__slug="mapbox")
    assert (v.verdict, v.source.slug, v.user, v.model_version, v.round_number) == (
        "tp",
        "mapbox",
        users["annotator"],
        "seg-r1",
        1,
    )
    assert CoverageLabel.objects.get().coverage_type == "non_planting"
    assert SamplePolygon.objects.count() == 1  # Shift+T did not start a tool, Shift+2 no subtype

    page.reload()
    _panel_ready(page)
    assert page.locator("#ws-map path.leaflet-interactive").count() == 1
    assert _pressed(page, "pn-verdicts") == ["tp"]
    assert _pressed(page, "pn-coverage") == ["non_planting"]
    prov = page.inner_text("#pn-verdict-prov")
    assert "annotator" in prov and "Mapbox" in prov and "seg-r1" in prov and "1" in prov
    # Google has its own verdict: none yet.
    page.keyboard.press("g")
    page.wait_for_function(
        "() => document.getElementById('pn-label-source').textContent === 'Google'"
    )
    assert _pressed(page, "pn-verdicts") == []
    # Offline, a label waits in the browser and is sent when the network returns.
    ann.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")  # offline reached the page
    page.keyboard.press("Shift+O")  # noise, on Google
    page.wait_for_function(
        "() => document.getElementById('pn-label-msg').dataset.state === 'offline'"
    )
    assert not VerdictLabel.objects.filter(source__slug="google").exists()
    ann.set_offline(False)
    page.wait_for_function(
        "() => document.getElementById('pn-label-msg').dataset.state === 'saved'"
    )
    assert VerdictLabel.objects.get(source__slug="google").verdict == "noise"
    page.keyboard.press("m")

    page.click("#pn-submit")  # to do -> in progress -> submitted
    page.wait_for_function(
        "() => document.querySelector('.pn-assignment').dataset.status === 'submitted'"
    )
    assert Assignment.objects.get(block=first).status == "submitted"
    with page.expect_navigation():
        page.keyboard.press("Shift+N")  # the submitted block is done for now: the next one opens
    assert page.url.endswith(f"/annotate/blocks/{second.pk}/")

    # The lead rejects with a comment (refused without one) and decides the integration.
    lead_ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    lp = _new_page(lead_ctx, errors)
    page_login(lp, asgi_server, "lead")
    _open(lp, asgi_server, first)
    _panel_ready(lp)
    assert lp.locator("#pn-review").is_visible()
    lp.click("#pn-reject")
    assert lp.get_attribute("#pn-work-msg", "data-state") == "error"
    assert Assignment.objects.get(block=first).status == "submitted"
    lp.fill("#pn-comment", "The terraces in the north are missing.")
    lp.click("#pn-reject")
    lp.wait_for_function("() => document.querySelector('.pn-rejected') !== null")
    a = Assignment.objects.get(block=first)
    assert (a.status, a.last_review, a.review_comment) == (
        "in_progress",
        "rejected",
        "The terraces in the north are missing.",
    )
    lp.keyboard.press("Alt+4")  # merge both
    lp.wait_for_function("() => document.getElementById('pn-label-msg').dataset.state === 'saved'")
    assert IntegrationLabel.objects.get().decision == "merge_both"
    # The change log shows who did what, with before and after.
    lp.click("#pn-audit summary")
    lp.wait_for_selector("#pn-audit-list li[data-action=assignment_reject]")
    log = lp.inner_text("#pn-audit-list")
    assert "Work rejected" in log and "Verdict labelled" in log and "lead" in log
    assert "The terraces in the north are missing." in log
    lead_ctx.close()

    # The annotator is back on the block and reads the comment; then in Chinese.
    _open(page, asgi_server, first)
    _panel_ready(page)
    assert "The terraces in the north are missing." in page.inner_text(".pn-rejected")
    assert "lead" in page.inner_text(".pn-rejected")
    assert page.locator("#pn-submit").is_visible()
    with page.expect_navigation():
        page.select_option("select[name=language]", "zh-hans")
    _panel_ready(page)
    panel = page.inner_text(".ws-panel")
    for zh in ("对预测的判定", "影像覆盖类型", "真阳性", "非种植", "下一个图块", "进行中", "退回"):
        assert zh in panel, zh
    assert _pressed(page, "pn-verdicts") == ["tp"]
    assert errors == []
    ann.close()


def test_zh_hans_catalogue_is_complete_and_compiled():
    """Every msgid has a translation, none fuzzy, and the committed .mo is the .po compiled
    (a stale .mo would show old words)."""
    po = Path(__file__).resolve().parents[2] / "locale/zh_Hans/LC_MESSAGES/django.po"
    text = po.read_text(encoding="utf-8")
    entries = [e for e in text.split("\n\n")[1:] if not e.lstrip().startswith("#~")]
    assert len(entries) > 200
    untranslated = [e for e in entries if e.rstrip().endswith('msgstr ""') or "#, fuzzy" in e]
    assert untranslated == []
    if shutil.which("msgfmt") is None:
        pytest.skip("msgfmt (gettext) is not installed")
    compiled = subprocess.run(
        ["msgfmt", "--check", "-o", "-", str(po)], check=True, capture_output=True
    ).stdout
    # Compared as catalogues, not bytes: another gettext version may lay the file out otherwise.
    fresh = gettext.GNUTranslations(io.BytesIO(compiled))._catalog  # type: ignore[attr-defined]
    with po.with_suffix(".mo").open("rb") as f:
        committed = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    assert committed == fresh
    assert committed["Verdict on the prediction"] == "对预测的判定"
