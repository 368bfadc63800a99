"""The overview map's vector tiles: valid MVT with the blocks of the tile and their properties,
cells at low zooms, validators (304, a new ETag after a change), who sees which blocks, and on
PostGIS the same tiles from ST_AsMVT as from the Python encoder."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection

from annotation import tiles as tiles_module
from annotation.models import Assignment
from annotation.services import assignment_start, verdict_label_set
from annotation.tile_sums import cell_sums_forget
from annotation.tiles import (
    TileScope,
    _blocks_query,
    _cells_query,
    _postgis_tile,
    _python_tile,
    _tile_blocks,
)
from learning.models import BlockPrediction
from learning.product.models import BlockIntegration
from mapping.geo.grid import lonlat_to_tile_fraction
from mapping.geo.mvt import cell_blocks
from mapping.models import ImagerySource
from tests.annotation.conftest import ROLES
from tests.factories import current_prediction_make, user_make
from tests.mvt_decode import decode

pytestmark = pytest.mark.django_db

@pytest.fixture(autouse=True)
def _fresh_cell_sums():
    """The kept low-zoom sums are keyed by ids, which a rolled-back test database hands out
    again: each test starts without them (a live server never reuses an id)."""
    tiles_module._BASES.clear()
    cell_sums_forget()
    yield
    tiles_module._BASES.clear()
    cell_sums_forget()


def _xyz(z: int) -> tuple[int, int, int]:
    """The tile at zoom z that holds the whole 4 x 5 field (112.0-112.25 E, 30.0-30.2 N)."""
    fx, fy = lonlat_to_tile_fraction(112.12, 30.1, z)
    return z, int(fx), int(fy)


def tile(c, z, x, y, slug="map", **headers):
    return c.get(f"/api/campaigns/{slug}/tiles/{z}/{x}/{y}.pbf", **headers)


def features(r, layer="blocks") -> dict[int, dict]:
    assert r.status_code == 200, r.content
    assert r["Content-Type"] == "application/vnd.mapbox-vector-tile"
    layers = decode(r.content)
    assert set(layers) == {layer}
    assert layers[layer]["version"] == 2 and layers[layer]["extent"] == 4096
    return {f["id"]: f for f in layers[layer]["features"]}


def _expected_ring(block, z, x, y):
    """The block's rectangle in tile coordinates, computed here from its stored geometry."""
    w, s, e, n = block.geometry.extent

    def px(lon, lat):
        fx, fy = lonlat_to_tile_fraction(lon, lat, z)
        return (fx - x) * 4096, (fy - y) * 4096

    (x0, y0), (x1, y1) = px(w, n), px(e, s)
    return x0, y0, x1, y1


def test_a_lead_gets_every_block_of_the_tile_with_its_properties(users, field, login):
    camp, blocks = field
    BlockPrediction.objects.filter(block=blocks[7], source__slug="mapbox").update(
        cropland_fraction=0.4321
    )
    z, x, y = _xyz(8)
    assert cell_blocks(z, 0.05) == 1
    feats = features(tile(login("lead"), z, x, y))
    assert set(feats) == {b.pk for b in blocks}
    props = [feats[b.pk]["properties"] for b in blocks]
    assert [p["status"] for p in props[:5]] == [
        "todo",
        "in_progress",
        "submitted",
        "accepted",
        "todo",
    ]
    assert {p["status"] for p in props[5:]} == {"unassigned"}
    assert [p.get("assignee") for p in props[:6]] == ["annotator"] * 4 + ["bob", None]
    assert props[0]["second"] == "bob" and "second" not in props[1]
    assert props[1]["verdict_mapbox"] == "tp"  # the newest verdict (the lead's)
    assert props[2]["verdict_google"] == "noise" and props[4]["verdict_mapbox"] == "artifact"
    assert "verdict_mapbox" not in props[0]
    assert props[7]["fraction_mapbox"] == pytest.approx(0.432)
    assert props[7]["fraction_google"] == 0.0 and props[0]["fraction_mapbox"] == 0.0
    for b, p in zip(blocks, props, strict=True):
        assert (p["block"], p["row"], p["col"]) == (b.pk, b.row, b.col)
        assert p["province"] == (420000 if (b.col - blocks[0].col) < 3 else 430000)
        assert "decision" not in p
    # Geometry: one closed clockwise rectangle per block, where the block is (to a unit).
    for b in blocks:
        f = feats[b.pk]
        assert f["type"] == 3
        (ring,) = f["rings"]
        xs, ys = [q[0] for q in ring], [q[1] for q in ring]
        x0, y0, x1, y1 = _expected_ring(b, z, x, y)
        assert len(ring) == 5 and ring[0] == ring[-1]
        assert abs(min(xs) - x0) <= 1 and abs(max(xs) - x1) <= 1
        assert abs(min(ys) - y0) <= 1 and abs(max(ys) - y1) <= 1
        area = sum(ring[i][0] * ring[i + 1][1] - ring[i + 1][0] * ring[i][1] for i in range(4))
        assert area > 0  # exterior ring: clockwise in tile coordinates (y down)


def test_the_newest_assignment_of_each_kind_is_on_the_tile(users, field, login):
    """A block handed over: its accepted first assignment and second check, then a newer
    primary and a newer second one. The lead's tile shows the newest of each; the first
    annotator's tile keeps their own (older) status."""
    camp, blocks = field
    b = blocks[9]
    bob, lead = User.objects.get(username="bob"), users["lead"]
    Assignment.objects.create(block=b, user=users["annotator"], assigned_by=lead,
                              status="accepted")  # fmt: skip
    Assignment.objects.create(block=b, user=users["admin"], assigned_by=lead, status="accepted",
                              agreement=True)  # fmt: skip
    Assignment.objects.create(block=b, user=bob, assigned_by=lead, status="in_progress")
    Assignment.objects.create(block=b, user=lead, assigned_by=lead, status="todo",
                              agreement=True)  # fmt: skip
    z, x, y = _xyz(8)
    p = features(tile(login("lead"), z, x, y))[b.pk]["properties"]
    assert (p["status"], p["assignee"], p["second"]) == ("in_progress", "bob", "lead")
    mine = features(tile(login("annotator"), z, x, y))[b.pk]["properties"]
    assert mine["status"] == "accepted"


def test_the_decision_in_force_is_on_the_lead_tile(users, field, login):
    _, blocks = field
    BlockIntegration.objects.create(block=blocks[6], decision="merge_both")
    z, x, y = _xyz(10)
    feats = features(tile(login("admin"), z, x, y))
    assert feats[blocks[6].pk]["properties"]["decision"] == "merge_both"


def test_low_zooms_merge_blocks_into_cells(users, field, login):
    _, blocks = field
    BlockPrediction.objects.filter(block=blocks[7], source__slug="mapbox").update(
        cropland_fraction=0.8
    )
    for z in (3, 5, 7):
        k = cell_blocks(z, 0.05)
        assert k > 1
        cells = features(tile(login("lead"), *_xyz(z)), layer="cells")
        expected = {(b.row // k, b.col // k) for b in blocks}
        assert set(cells) == {r * 100000 + c for r, c in expected}
        ps = [c["properties"] for c in cells.values()]
        assert sum(p["n"] for p in ps) == 20
        assert sum(p.get("todo", 0) for p in ps) == 2  # block 0 (annotator) and 4 (bob)
        for status in ("in_progress", "submitted", "accepted"):
            assert sum(p.get(status, 0) for p in ps) == 1
        mean = sum(p["fraction"] * p["n"] for p in ps) / 20  # 40 predictions, one 0.8
        assert mean == pytest.approx(0.8 / 40, abs=2e-3)


@pytest.mark.parametrize("z", [3, 5, 7])
def test_a_leads_kept_cell_sums_match_the_live_count_and_follow_new_predictions(
    users, field, z, login
):
    camp, blocks = field
    _, x, y = _xyz(z)
    k = cell_blocks(z, 0.05)
    rows, cols = _tile_blocks(camp, z, x, y, k)
    scope = TileScope(campaign=camp, only_user=None)

    def live():
        return decode(_python_tile(_cells_query(scope, rows, cols, k), z, x, y, k, 0.05))

    c = login("lead")
    assert decode(tile(c, z, x, y).content) == live()
    # A new segmenter (a new round) predicts: the kept sums are summed again.
    mapbox = ImagerySource.objects.get(slug="mapbox")
    current_prediction_make(blocks=blocks, sources=[mapbox], name="seg-r2", round_number=2)
    BlockPrediction.objects.filter(model_version__name="seg-r2", block=blocks[0]).update(
        cropland_fraction=1.0
    )
    fresh = decode(tile(c, z, x, y).content)
    assert fresh == live()
    assert sum(f["properties"]["fraction"] for f in fresh["cells"]["features"]) > 0
    # Work statuses are counted per request: a start shows at once.
    a = Assignment.objects.get(block=blocks[0], user=users["annotator"])
    assignment_start(user=users["annotator"], assignment=a)
    after = decode(tile(c, z, x, y).content)
    assert after == live()
    assert sum(f["properties"].get("in_progress", 0) for f in after["cells"]["features"]) == 2


def test_an_annotator_sees_only_their_blocks_status_and_verdicts(users, field, login):
    _, blocks = field
    z, x, y = _xyz(8)
    feats = features(tile(login("annotator"), z, x, y))
    assert set(feats) == {b.pk for b in blocks[:4]}
    p = feats[blocks[1].pk]["properties"]
    assert p["status"] == "in_progress"
    assert p["verdict_mapbox"] == "fp"  # their own, not the lead's newer one
    assert not {"assignee", "second", "decision"} & set(p)
    cells = features(tile(login("annotator"), *_xyz(4)), layer="cells")
    assert sum(c["properties"]["n"] for c in cells.values()) == 4


@pytest.mark.parametrize("role", [*ROLES, "other_lead"])
def test_who_may_get_tiles(users, field, role, login):
    who = user_make("carol", role="lead") if role == "other_lead" else role
    r = tile(login(who), *_xyz(8))
    expected = {"anonymous": 403, "outsider": 404, "other_lead": 404}.get(role, 200)
    assert r.status_code == expected, r.content
    if expected == 404:
        assert b"no campaign" in r.content


def test_unknown_campaign_is_404(users, field, login):
    assert tile(login("admin"), *_xyz(8), slug="nope").status_code == 404


@pytest.mark.parametrize(
    "zxy, field_name", [((19, 0, 0), "z"), ((3, 8, 0), "x"), ((3, 0, -1), None)]
)
def test_tile_numbers_out_of_range_are_refused(users, field, zxy, field_name, login):
    r = tile(login("lead"), *zxy)
    if field_name is None:  # not a tile URL at all
        assert r.status_code == 404
        return
    assert r.status_code == 400
    assert field_name in r.json()


def test_refusals_speak_the_readers_language(users, field, login):
    r = tile(login("lead"), 19, 0, 0, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert r.status_code == 400
    assert "缩放级别" in str(r.json()["z"])


def test_validators_304_until_a_block_changes(users, field, login):
    _, blocks = field
    c = login("lead")
    z, x, y = _xyz(8)
    r1 = tile(c, z, x, y)
    etag = r1["ETag"]
    assert etag.startswith('"') and r1["Cache-Control"] == "private, no-cache"
    r2 = tile(c, z, x, y, HTTP_IF_NONE_MATCH=etag)
    assert r2.status_code == 304 and r2.content == b"" and r2["ETag"] == etag
    assert tile(c, z, x, y, HTTP_IF_NONE_MATCH=f'"x", W/{etag}').status_code == 304
    # Every tile of the campaign shares the version: a low zoom revalidates too.
    assert tile(c, *_xyz(4), HTTP_IF_NONE_MATCH=etag).status_code == 304

    # The annotator starts block 0: its status changes, so does the ETag.
    a = Assignment.objects.get(block=blocks[0], user=users["annotator"])
    assignment_start(user=users["annotator"], assignment=a)
    r3 = tile(c, z, x, y, HTTP_IF_NONE_MATCH=etag)
    assert r3.status_code == 200 and r3["ETag"] != etag
    assert features(r3)[blocks[0].pk]["properties"]["status"] == "in_progress"

    # A verdict, and a lead's integration decision, change it again.
    etag3 = r3["ETag"]
    mapbox = ImagerySource.objects.get(slug="mapbox")
    verdict_label_set(user=users["lead"], block=blocks[9], source=mapbox, verdict="fp")
    r4 = tile(c, z, x, y, HTTP_IF_NONE_MATCH=etag3)
    assert r4.status_code == 200 and r4["ETag"] != etag3
    assert features(r4)[blocks[9].pk]["properties"]["verdict_mapbox"] == "fp"
    BlockIntegration.objects.create(block=blocks[9], decision="only_google")
    assert tile(c, z, x, y, HTTP_IF_NONE_MATCH=r4["ETag"]).status_code == 200


def test_an_annotator_and_a_lead_never_share_a_version(users, field, login):
    z, x, y = _xyz(8)
    lead = tile(login("lead"), z, x, y)["ETag"]
    mine = tile(login("annotator"), z, x, y)
    assert mine["ETag"] != lead
    assert tile(login("annotator"), z, x, y, HTTP_IF_NONE_MATCH=lead).status_code == 200


def test_an_empty_tile_is_empty(users, field, login):
    r = tile(login("lead"), 8, 0, 0)
    assert r.status_code == 200 and r.content == b""


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ST_AsMVT needs PostGIS")
@pytest.mark.parametrize("z", [3, 5, 7, 8, 10, 12])
def test_postgis_and_the_python_encoder_make_the_same_tile(users, field, z):
    camp, blocks = field
    BlockPrediction.objects.filter(block=blocks[3], source__slug="google").update(
        cropland_fraction=0.25
    )
    BlockIntegration.objects.create(block=blocks[2], decision="only_mapbox")
    _, x, y = _xyz(z)
    for only_user in (None, users["annotator"]):
        scope = TileScope(campaign=camp, only_user=only_user)
        k = cell_blocks(z, 0.05)
        rows, cols = _tile_blocks(camp, z, x, y, k)
        q = _blocks_query(scope, rows, cols) if k == 1 else _cells_query(scope, rows, cols, k)
        pg = decode(_postgis_tile(q, z, x, y, k, 0.05))
        py = decode(_python_tile(q, z, x, y, k, 0.05))
        assert set(pg) == set(py)
        if only_user is None:
            assert len(pg) == 1  # the lead's tile holds the field (the annotator's may not)
        for name in pg:
            a = {f["id"]: f for f in pg[name]["features"]}
            b = {f["id"]: f for f in py[name]["features"]}
            assert set(a) == set(b) and a
            for fid in a:
                pa, pb = a[fid]["properties"], b[fid]["properties"]
                assert set(pa) == set(pb), fid
                for key in pa:
                    if isinstance(pa[key], float):  # both rounded to 3 decimals
                        assert pa[key] == pytest.approx(pb[key], abs=1e-3), (fid, key)
                    else:
                        assert pa[key] == pb[key], (fid, key)
                # The same rectangle by the same arithmetic, and the same ring (an exterior:
                # clockwise in tile coordinates, y down), point for point.
                assert a[fid]["rings"] == b[fid]["rings"], fid


def test_the_page_draws_the_campaign_from_tiles(users, field, login):
    r = login("lead").get("/campaigns/map/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "/api/campaigns/map/tiles/{z}/{x}/{y}.pbf" in html
    assert "vendor/leaflet-vectorgrid/Leaflet.VectorGrid.bundled.min.js" in html
    assert '<option value="420000">' in html and '<option value="430000">' in html
    # The first view fits the blocks: 112.0-112.25 E, 30.0-30.2 N.
    assert '"extent": [112.0, 30.0, 112.25, 30.2]' in html


SET_VIEW = """([lat, lon, z]) =>
    document.getElementById('map').leafletMap.setView([lat, lon], z, {animate: false})"""
LOADED_AT = """(z) => { const m = document.getElementById('map');
    return m.dataset.tiles === 'loaded' && m.dataset.tileZoom === String(z); }"""


@pytest.mark.browser
def test_the_map_draws_tiles_and_a_click_opens_a_block(users, field, asgi_server, browser, login):
    """In Chromium: the lead's map fetches vector tiles, draws the blocks, counts them in the
    legend, and a click on a block (no filter: only the tiles are drawn) opens its workspace;
    zoomed out to cells, a click on a cell zooms in towards its blocks."""

    _, blocks = field
    c = login("lead")
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": c.cookies["sessionid"].value, "url": asgi_server}]
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    tiles: list[int] = []
    page.on("response", lambda r: "/tiles/" in r.url and tiles.append(r.status))
    page.goto(f"{asgi_server}/campaigns/map/")
    page.wait_for_function("() => document.getElementById('map').dataset.tiles === 'loaded'")
    assert tiles and set(tiles) <= {200, 304}
    # The legend's numbers arrive after the page, from their own endpoint.
    page.wait_for_function("() => document.getElementById('overview-count').textContent === '20'")
    assert page.locator("#map canvas").count() >= 1
    w, s, e, n = blocks[7].geometry.extent

    def click_at(lat, lon):
        x, y = page.evaluate(
            """([lat, lon]) => { const m = document.getElementById('map').leafletMap;
                 const p = m.latLngToContainerPoint([lat, lon]); return [p.x, p.y]; }""",
            [lat, lon],
        )
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + x, box["y"] + y)

    # Zoomed out to zoom 5, the field is one cell: a click zooms in by two.
    page.evaluate(SET_VIEW, [(s + n) / 2, (w + e) / 2, 5])
    page.wait_for_function(LOADED_AT, arg=5)
    page.wait_for_timeout(300)
    click_at((s + n) / 2, (w + e) / 2)
    page.wait_for_function(LOADED_AT, arg=7)  # zoomed in (the animation over), tiles drawn
    # At zoom 10, single blocks: a click on block 7 opens it.
    page.evaluate(SET_VIEW, [(s + n) / 2, (w + e) / 2, 10])
    page.wait_for_function(LOADED_AT, arg=10)
    page.wait_for_timeout(300)
    click_at((s + n) / 2, (w + e) / 2)
    page.wait_for_url(f"{asgi_server}/annotate/blocks/{blocks[7].pk}/")
    assert errors == []
    context.close()
