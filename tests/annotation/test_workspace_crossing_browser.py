"""Outlines that cross themselves, in a real browser: a bow-tie drawn by clicking is neither
saved as a triangle nor saved at all without a word; a vertex dragged across the outline is
undone. The crossing is marked on the map, the interpreter is told in their language, and the
valid repair (split at the crossing) is offered and saved only when chosen."""

from __future__ import annotations

import pytest
import shapely

from annotation.models import SamplePolygon
from tests.annotation.test_workspace_editing_browser import (  # noqa: F401 (fixtures)
    _click,
    _draw_by_lead,
    _polygons,
    _px,
    _wait_saved,
    at,
    box,
    edit_block,
    shape,
)
from tests.conftest import page_login

pytestmark = pytest.mark.browser

TEXT = {
    "en": ("crosses itself at the marked point", "Split at the crossing into 2 polygons"),
    "zh-hans": ("您画的轮廓在标记点处自相交", "在交叉处拆分为 2 个多边形"),
}


def _open(browser, base, blk, errors, language="en"):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.context.add_cookies([{"name": "django_language", "value": language, "url": base}])
    page_login(page, base, "annotator")
    page.goto(f"{base}/annotate/blocks/{blk.pk}/")
    page.wait_for_selector("#ws[data-ready='1']")
    return page


def _crossings(page) -> list[tuple[float, float]]:
    return page.evaluate(
        "() => { const out = []; wsMap.eachLayer(l => { if (l.options && l.options.className"
        " === 'ws-crossing') { const p = l.getLatLng(); out.push([p.lng, p.lat]); } });"
        " return out; }"
    )


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_bowtie_drawn_by_clicking_is_not_saved_as_a_triangle(
    users,
    asgi_server,
    browser,
    edit_block,  # noqa: F811
    language,
):
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors, language)
    page.keyboard.press("p")
    for fx, fy in ((0.2, 0.2), (0.6, 0.6), (0.6, 0.2), (0.2, 0.6)):
        _click(page, fx, fy)
    _click(page, 0.2, 0.2)  # the first corner again closes the outline
    page.wait_for_selector("#ws-problem:not([hidden])")
    said, repair = TEXT[language]
    assert said in page.inner_text("#ws-problem-text")
    assert page.inner_text("#ws-problem-repair") == repair
    # Marked where the two edges cross: the middle of the bow-tie.
    (cross,) = _crossings(page)
    assert cross == pytest.approx(at(0.4, 0.4), abs=3e-4)  # clicks land on whole pixels
    page.wait_for_timeout(500)
    assert SamplePolygon.objects.count() == 0 and _polygons(page) == 0  # nothing saved

    page.click("#ws-problem-repair")
    _wait_saved(page, 2)
    parts = sorted((shape(p) for p in SamplePolygon.objects.all()), key=lambda g: g.centroid.y)
    assert len(parts) == 2 and all(len(p.exterior.coords) == 4 for p in parts)  # two triangles
    drawn = shapely.Polygon([at(0.2, 0.2), at(0.6, 0.6), at(0.6, 0.2), at(0.2, 0.6)])
    assert sum(p.area for p in parts) == pytest.approx(
        shapely.make_valid(drawn).area,
        rel=2e-2,  # clicks land on whole pixels
    )
    assert page.is_hidden("#ws-problem") and _crossings(page) == []
    assert errors == []


def test_discarding_a_crossing_drawing_saves_nothing(users, asgi_server, browser, edit_block):  # noqa: F811
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors)
    page.keyboard.press("p")
    for fx, fy in ((0.2, 0.2), (0.6, 0.6), (0.6, 0.2), (0.2, 0.6), (0.2, 0.2)):
        _click(page, fx, fy)
    page.wait_for_selector("#ws-problem:not([hidden])")
    page.click("#ws-problem-dismiss")
    page.wait_for_timeout(500)
    assert SamplePolygon.objects.count() == 0 and _crossings(page) == []
    assert errors == []


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_vertex_dragged_across_the_outline_is_undone_and_the_place_marked(
    users,
    asgi_server,
    browser,
    edit_block,  # noqa: F811
    language,
):
    (poly,) = _draw_by_lead(users, edit_block, [box(0.2, 0.2, 0.6, 0.6)])
    before = shape(poly)
    errors: list[str] = []
    page = _open(browser, asgi_server, edit_block, errors, language)
    page.mouse.click(*_px(page, 0.4, 0.4))  # select it
    page.keyboard.press("e")
    page.wait_for_selector(".marker-icon:not(.marker-icon-middle)")
    corner = _px(page, 0.6, 0.6)
    target = _px(page, 0.1, 0.4)  # past the opposite edge: the outline would cross itself
    page.mouse.move(*corner)
    page.mouse.down()
    page.mouse.move(*target, steps=8)
    page.mouse.up()
    page.wait_for_selector("#ws-problem:not([hidden])")
    text = page.inner_text("#ws-problem-text")
    assert ("undone" in text) if language == "en" else ("已撤销" in text)
    assert "Self-intersection" not in text and "[" not in text
    assert len(_crossings(page)) >= 1
    # On screen and on the server the polygon is what it was.
    on_screen = page.evaluate(
        "() => { let g = null; wsMap.eachLayer(l => { if (l._ws) g = l.toGeoJSON(8).geometry; });"
        " return g; }"
    )
    assert shapely.geometry.shape(on_screen).symmetric_difference(before).area < 1e-14
    page.wait_for_timeout(500)
    poly.refresh_from_db()
    assert shape(poly).equals(before) and poly.updated_by != users["annotator"]
    page.click("#ws-problem-dismiss")
    assert page.is_hidden("#ws-problem") and _crossings(page) == []
    assert errors == []
