"""The workspace's editing tools in a real browser (freehand, split, merge, move, snapping,
undo/redo) and the current model's prediction: the read-only endpoint, the overlay and
"start from the prediction" (polygons saved with the model's provenance)."""

from __future__ import annotations

import math
import uuid

import pytest
import shapely
from django.contrib.gis.geos import MultiPolygon, Polygon

from annotation.models import Assignment, AssignmentStatus, SamplePolygon
from annotation.services import polygon_create
from learning.models import BlockPrediction, ModelKind, ModelVersion, Round, RoundState
from mapping.models import Block, Campaign, ImagerySource
from mapping.services.members import campaign_members_add
from tests.annotation.conftest import square
from tests.conftest import page_login

W, S, E, N = 112.5, 30.3, 112.55, 30.35
DX, DY = E - W, N - S


def at(fx: float, fy: float) -> tuple[float, float]:
    """A point of the block given as fractions of its width and height."""
    return W + fx * DX, S + fy * DY


def box(fx0: float, fy0: float, fx1: float, fy1: float) -> dict:
    return square(*at(fx0, fy0), *at(fx1, fy1))


def shape(poly: SamplePolygon):
    return shapely.from_wkb(bytes(poly.geometry.wkb))


def same(a, b) -> bool:
    """Equal up to the browser's 8 decimals (about 1 mm)."""
    return a.symmetric_difference(b).area < 1e-14


@pytest.fixture
def edit_block(db, users):
    """A block assigned to the annotator (in progress) with two imagery sources and no images:
    the editing tools need no imagery, and the tests stay fast."""
    camp = Campaign.objects.create(slug="ed", name="Editing", region="Hubei", year=2020, zoom=13)
    campaign_members_add(campaign=camp, users=[users["lead"]])
    blk = Block.objects.create(
        campaign=camp, row=2386, col=5850, geometry=Polygon.from_bbox((W, S, E, N))
    )
    for slug in ("mapbox", "google"):
        ImagerySource.objects.create(slug=slug, name=slug.title(), kind="synthetic")
    Assignment.objects.create(
        block=blk, user=users["annotator"], status=AssignmentStatus.IN_PROGRESS
    )
    return blk


def _draw_by_lead(users, blk: Block, geometries: list[dict]) -> list[SamplePolygon]:
    src = ImagerySource.objects.get(slug="mapbox")
    for i, g in enumerate(geometries):
        polygon_create(
            user=users["lead"],
            block=blk,
            source=src,
            geometry=g,
            expected_version=i,
            op_id=uuid.uuid4(),
        )
    return list(SamplePolygon.objects.order_by("pk"))


def _prediction(blk: Block, *, slug: str = "mapbox", current: bool = True) -> ModelVersion:
    """A real ModelVersion (segmenter of round 2) and its BlockPrediction: two fields."""
    rnd, _ = Round.objects.get_or_create(
        campaign=blk.campaign, number=2, defaults={"state": RoundState.DONE}
    )
    mv = ModelVersion.objects.create(
        campaign=blk.campaign,
        kind=ModelKind.SEGMENTER,
        name="seg-r2" if current else "seg-r1",
        bundle_path="models/seg",
        round=rnd,
        is_current=current,
    )
    parts = [
        Polygon.from_bbox((*at(0.1, 0.1), *at(0.3, 0.4))),
        Polygon.from_bbox((*at(0.6, 0.5), *at(0.9, 0.8))),
    ]
    BlockPrediction.objects.create(
        block=blk,
        source=ImagerySource.objects.get(slug=slug),
        model_version=mv,
        round=rnd,
        mask_path="pred/mask.tif",
        geometry=MultiPolygon(*parts, srid=4326),
        cropland_fraction=0.15,
    )
    return mv


# ---- the prediction endpoint ---------------------------------------------------------------------


def test_prediction_endpoint_gives_the_current_segmenters_polygons(client, users, edit_block):
    _prediction(edit_block, current=False)  # an older model: not what annotators see
    mv = _prediction(edit_block)
    client.force_login(users["annotator"])
    url = f"/api/blocks/{edit_block.pk}/sources/mapbox/prediction/"
    r = client.get(url)
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["type"] == "FeatureCollection"
    assert data["model_version"] == mv.name == "seg-r2" and data["round_number"] == 2
    assert data["block"] == edit_block.pk and data["source"] == "mapbox"
    assert len(data["features"]) == 2
    first = shapely.geometry.shape(data["features"][0]["geometry"])
    assert first.bounds == pytest.approx((*at(0.1, 0.1), *at(0.3, 0.4)))
    assert data["features"][1]["properties"] == {
        "source": "mapbox",
        "model_version": "seg-r2",
        "round_number": 2,
    }
    client.force_login(users["lead"])  # leads read every block
    assert client.get(url).status_code == 200


def test_prediction_endpoint_says_why_there_is_none(client, users, edit_block):
    url = f"/api/blocks/{edit_block.pk}/sources/%s/prediction/"
    client.force_login(users["annotator"])
    r = client.get(url % "mapbox")
    assert r.status_code == 404 and "no current segmenter" in r.json()["detail"]
    _prediction(edit_block)
    r = client.get(url % "google")
    assert r.status_code == 404
    assert "seg-r2" in r.json()["detail"] and "google" in r.json()["detail"]
    r = client.get(url % "bing")
    assert r.status_code == 404 and "bing" in r.json()["detail"]
    # A prediction with cropland whose mask was never turned into polygons.
    BlockPrediction.objects.filter(source__slug="mapbox").update(geometry=None)
    r = client.get(url % "mapbox")
    assert r.status_code == 404 and "not turned into polygons" in r.json()["detail"]
    # One that found no cropland is an answer: no polygons.
    BlockPrediction.objects.filter(source__slug="mapbox").update(cropland_fraction=0.0)
    r = client.get(url % "mapbox")
    assert r.status_code == 200 and r.json()["features"] == []


def test_prediction_endpoint_follows_the_sample_access_rule(client, users, edit_block):
    _prediction(edit_block)
    url = f"/api/blocks/{edit_block.pk}/sources/mapbox/prediction/"
    assert client.get(url).status_code == 403  # anonymous
    client.force_login(users["outsider"])
    assert client.get(url).status_code == 404  # no role: learns nothing
    Assignment.objects.all().delete()
    client.force_login(users["annotator"])
    r = client.get(url)
    assert r.status_code == 403 and "not assigned" in r.json()["detail"]
    assert (
        client.get(f"/api/blocks/{edit_block.pk + 99}/sources/mapbox/prediction/").status_code
        == 404
    )


# ---- the browser ---------------------------------------------------------------------------------


def _open(browser, base: str, blk: Block, errors: list[str], query: str = ""):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, base, "annotator")
    page.goto(f"{base}/annotate/blocks/{blk.pk}/{query}")
    page.wait_for_selector("#ws[data-ready='1']")
    return page


def _px(page, fx: float, fy: float) -> tuple[float, float]:
    """Page coordinates of a point of the block (fractions of its width and height)."""
    lon, lat = at(fx, fy)
    b = page.locator("#ws-map").bounding_box()
    x, y = page.evaluate(
        "([lat, lon]) => { const p = wsMap.latLngToContainerPoint([lat, lon]); "
        "return [p.x, p.y]; }",
        [lat, lon],
    )
    return b["x"] + x, b["y"] + y


def _click(page, fx: float, fy: float, dx: float = 0, dy: float = 0) -> None:
    x, y = _px(page, fx, fy)
    page.mouse.move(x + dx, y + dy, steps=3)  # geoman snaps on mouse moves
    page.mouse.click(x + dx, y + dy)
    page.wait_for_timeout(60)


def _wait_saved(page, version: int) -> None:
    page.wait_for_function(
        "v => { const el = document.getElementById('ws-status');"
        " return el.dataset.state === 'saved' && el.dataset.version === String(v); }",
        arg=version,
        timeout=15_000,
    )


def _polygons(page) -> int:
    return page.evaluate(
        "() => { let n = 0; wsMap.eachLayer(l => { if (l._ws) n += 1; }); return n; }"
    )


@pytest.mark.browser
def test_freehand_stroke_is_simplified_and_saved(users, asgi_server, browser, edit_block):
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors)
    page.keyboard.press("f")
    # A circle of radius 0.2 (of the block) around the centre, drawn with 240 mouse moves.
    cx, cy = _px(page, 0.5, 0.5)
    rx = _px(page, 0.7, 0.5)[0] - cx
    pts = [
        (cx + rx * math.cos(2 * math.pi * i / 240), cy + rx * math.sin(2 * math.pi * i / 240))
        for i in range(241)
    ]
    page.mouse.move(*pts[0])
    page.mouse.down()
    for p in pts[1:]:
        page.mouse.move(*p)
    page.mouse.up()
    _wait_saved(page, 1)
    poly = SamplePolygon.objects.get()
    ring = shape(poly).exterior
    vertices = len(ring.coords) - 1
    # Douglas-Peucker at 2.5 px keeps a few dozen corners of a 240-point circle, not all of them.
    assert 12 <= vertices <= 80, vertices
    # A circle on screen is an ellipse in degrees (a degree of latitude is longer on screen).
    px_lon = (_px(page, 1, 0)[0] - _px(page, 0, 0)[0]) / DX
    px_lat = (_px(page, 0, 0)[1] - _px(page, 0, 1)[1]) / DY
    ellipse = math.pi * (rx / px_lon) * (rx / px_lat)
    assert shape(poly).is_valid
    assert shape(poly).area == pytest.approx(ellipse, rel=0.03)
    assert shape(poly).centroid.distance(shapely.Point(*at(0.5, 0.5))) < 5 / px_lon
    assert "simplified to" in page.inner_text("#ws-hint")
    assert poly.created_by == users["annotator"]
    assert errors == []


@pytest.mark.browser
def test_split_along_a_line_is_an_update_and_a_create(users, asgi_server, browser, edit_block):
    (original,) = _draw_by_lead(users, edit_block, [box(0.2, 0.2, 0.6, 0.6)])
    area = shape(original).area
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors)
    page.keyboard.press("s")
    _click(page, 0.1, 0.35)  # outside, left
    _click(page, 0.4, 0.45)  # a bend inside
    _click(page, 0.7, 0.45)  # outside, right
    _click(page, 0.7, 0.45)  # the last point again finishes the line
    _wait_saved(page, 3)  # one create and one update, after the lead's version 1
    polys = list(SamplePolygon.objects.order_by("pk"))
    assert len(polys) == 2
    kept, piece = polys
    assert kept.pk == original.pk  # the original keeps its identity (the larger piece)
    assert shape(kept).area > shape(piece).area
    assert shape(kept).area + shape(piece).area == pytest.approx(area, rel=1e-6)
    assert shape(kept).intersection(shape(piece)).area == pytest.approx(0, abs=1e-12)
    assert piece.created_by == users["annotator"] and kept.updated_by == users["annotator"]
    assert _polygons(page) == 2

    # A line that ends inside the polygon splits nothing, and says why.
    page.keyboard.press("s")
    _click(page, 0.1, 0.3)
    _click(page, 0.3, 0.3)
    _click(page, 0.3, 0.3)
    page.wait_for_function(
        "() => document.getElementById('ws-hint').textContent.includes('outside')"
    )
    assert SamplePolygon.objects.count() == 2
    assert errors == []


@pytest.mark.browser
@pytest.mark.parametrize("renderer", ["svg", "canvas"])
def test_merge_shift_clicked_polygons_then_undo_and_redo(
    users, asgi_server, browser, edit_block, renderer
):
    a, b, c = _draw_by_lead(
        users,
        edit_block,
        [box(0.2, 0.2, 0.4, 0.4), box(0.4, 0.2, 0.6, 0.4), box(0.7, 0.7, 0.8, 0.8)],
    )
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors, f"?renderer={renderer}")
    assert page.get_attribute("#ws-map", "data-renderer") == renderer

    # Apart polygons do not merge: nothing is written.
    _click(page, 0.3, 0.3)
    page.keyboard.down("Shift")
    _click(page, 0.75, 0.75)
    page.keyboard.up("Shift")
    assert page.get_attribute("#ws-selected", "data-count") == "2"
    page.keyboard.press("u")
    assert "neither touch nor overlap" in page.inner_text("#ws-hint")
    assert SamplePolygon.objects.count() == 3

    # The two neighbours merge into the first one clicked; the other is deleted.
    _click(page, 0.3, 0.3)
    page.keyboard.down("Shift")
    _click(page, 0.5, 0.3)
    page.keyboard.up("Shift")
    page.keyboard.press("u")
    _wait_saved(page, 5)  # update + delete after the lead's three creates
    assert sorted(SamplePolygon.objects.values_list("pk", flat=True)) == [a.pk, c.pk]
    merged = shape(SamplePolygon.objects.get(pk=a.pk))
    assert merged.area == pytest.approx(shape(a).area + shape(b).area, rel=1e-9)
    assert same(merged, shape(a).union(shape(b)))
    assert _polygons(page) == 2

    # Undo: the first polygon shrinks back and the second comes back (as a new polygon).
    page.keyboard.press("Control+z")
    _wait_saved(page, 7)
    assert SamplePolygon.objects.count() == 3
    assert same(shape(SamplePolygon.objects.get(pk=a.pk)), shape(a))
    back = SamplePolygon.objects.exclude(pk__in=[a.pk, c.pk]).get()
    assert same(shape(back), shape(b))
    # Redo (Ctrl+Shift+Z) merges again, deleting the polygon that came back.
    page.keyboard.press("Control+Shift+z")
    _wait_saved(page, 9)
    assert sorted(SamplePolygon.objects.values_list("pk", flat=True)) == [a.pk, c.pk]
    assert same(shape(SamplePolygon.objects.get(pk=a.pk)), merged)
    # Undo again, then Ctrl+Y redoes too; nothing left to redo after that.
    page.keyboard.press("Control+z")
    _wait_saved(page, 11)
    page.keyboard.press("Control+y")
    _wait_saved(page, 13)
    assert SamplePolygon.objects.count() == 2
    page.keyboard.press("Control+y")
    assert "nothing to redo" in page.inner_text("#ws-hint")
    assert errors == []


@pytest.mark.browser
def test_drawn_vertices_snap_to_a_neighbours_vertex_and_edge(
    users, asgi_server, browser, edit_block
):
    (neighbour,) = _draw_by_lead(users, edit_block, [box(0.5, 0.5, 0.7, 0.7)])
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors)
    page.keyboard.press("p")
    _click(page, 0.2, 0.45)
    _click(page, 0.5, 0.5, dx=-5, dy=3)  # 6 px from the neighbour's south-west corner
    _click(page, 0.5, 0.6, dx=-6, dy=2)  # 6 px left of its west edge, between corners
    _click(page, 0.2, 0.6)
    _click(page, 0.2, 0.45)  # close
    _wait_saved(page, 2)
    drawn = shape(SamplePolygon.objects.exclude(pk=neighbour.pk).get())
    corners = [tuple(p) for p in drawn.exterior.coords]
    x_edge, y_corner = at(0.5, 0.5)
    # On the vertex: exactly (to the 8 decimals sent) the neighbour's corner.
    assert any(abs(x - x_edge) < 1e-8 and abs(y - y_corner) < 1e-8 for x, y in corners), corners
    # On the edge: x of the west edge, y in between its corners.
    y_mid = at(0.5, 0.6)[1]
    on_edge = [(x, y) for x, y in corners if abs(x - x_edge) < 1e-8 and abs(y - y_mid) < 0.02 * DY]
    assert on_edge, corners
    # They touch along the edge and do not overlap.
    assert drawn.intersection(shape(neighbour)).area < 1e-12
    assert drawn.distance(shape(neighbour)) < 1e-8
    assert errors == []


@pytest.mark.browser
def test_move_a_polygon_by_dragging_it(users, asgi_server, browser, edit_block):
    (poly,) = _draw_by_lead(users, edit_block, [box(0.3, 0.3, 0.5, 0.5)])
    before = shape(poly)
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors)
    _click(page, 0.4, 0.4)
    page.keyboard.press("v")
    x, y = _px(page, 0.4, 0.4)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y - 40, steps=8)
    page.mouse.up()
    _wait_saved(page, 2)
    after = shape(SamplePolygon.objects.get())
    assert after.area == pytest.approx(before.area, rel=1e-6)
    dx = after.centroid.x - before.centroid.x
    dy = after.centroid.y - before.centroid.y
    px_lon = (_px(page, 1, 0)[0] - _px(page, 0, 0)[0]) / DX  # pixels per degree
    assert dx * px_lon == pytest.approx(60, abs=3) and dy > 0
    assert errors == []


@pytest.mark.browser
def test_prediction_overlay_and_start_from_prediction(users, asgi_server, browser, edit_block):
    _prediction(edit_block)
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors)
    page.wait_for_function("() => document.getElementById('ws-pred-info').dataset.state === 'ok'")
    assert "seg-r2" in page.inner_text("#ws-pred-info")
    page.keyboard.press("o")
    page.wait_for_function("() => document.getElementById('ws-map').dataset.prediction === 'shown'")
    assert page.locator(".leaflet-ws-prediction-pane canvas").count() == 1
    page.keyboard.press("o")
    page.wait_for_function("() => document.getElementById('ws-map').dataset.prediction === ''")

    page.keyboard.press("3")  # terraces for the copies
    page.click("#ws-pred-start")
    _wait_saved(page, 2)
    polys = list(SamplePolygon.objects.order_by("pk"))
    assert len(polys) == 2
    assert {(p.model_version, p.round_number, p.subtype) for p in polys} == {
        ("seg-r2", 2, "terraces")
    }
    assert same(shape(polys[0]), shapely.box(*at(0.1, 0.1), *at(0.3, 0.4)))
    assert page.get_attribute("#ws-map", "data-prediction") == "shown"
    # A polygon drawn by hand records the model it was drawn against, too.
    page.keyboard.press("p")
    for fx, fy in [(0.4, 0.1), (0.5, 0.1), (0.5, 0.2), (0.4, 0.1)]:
        _click(page, fx, fy)
    _wait_saved(page, 3)
    hand = SamplePolygon.objects.order_by("pk").last()
    assert (hand.model_version, hand.round_number) == ("seg-r2", 2)
    # On Google there is no prediction: the panel says why and the button stays off.
    page.keyboard.press("g")
    page.wait_for_function("() => document.getElementById('ws-pred-info').dataset.state === 'none'")
    assert "google" in page.inner_text("#ws-pred-info")
    assert page.is_disabled("#ws-pred-start")
    assert errors == []


@pytest.mark.browser
def test_cut_a_hole_keeps_the_polygon_and_undo_fills_it(users, asgi_server, browser, edit_block):
    (poly,) = _draw_by_lead(users, edit_block, [box(0.2, 0.2, 0.8, 0.8)])
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors)
    page.keyboard.press("x")
    for fx, fy in [(0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6), (0.4, 0.4)]:
        _click(page, fx, fy)
    _wait_saved(page, 2)
    cut = shape(SamplePolygon.objects.get())
    assert SamplePolygon.objects.get().pk == poly.pk  # the same polygon, now with a hole
    assert len(cut.interiors) == 1
    hole = shapely.box(*at(0.4, 0.4), *at(0.6, 0.6))  # as clicked, to a pixel or so
    assert cut.area == pytest.approx(shape(poly).area - hole.area, rel=0.01)
    assert not cut.contains(shapely.Point(*at(0.5, 0.5)))
    page.keyboard.press("Control+z")
    _wait_saved(page, 3)
    assert same(shape(SamplePolygon.objects.get()), shape(poly))
    assert errors == []
