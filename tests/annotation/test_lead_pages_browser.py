"""The leads' sample import page in a real browser: upload a GeoJSON, read the preview, import."""

from __future__ import annotations

import json

import pytest
import shapely

from annotation.models import SamplePolygon
from tests.conftest import page_login

B0, B1 = "R2386C5850", "R2386C5851"
INSIDE = shapely.box(112.51, 30.33, 112.52, 30.34)
ACROSS = shapely.box(112.54, 30.31, 112.56, 30.32)  # crosses the edge between B0 and B1


@pytest.mark.browser
def test_lead_uploads_geojson_sees_the_preview_and_imports(
    users, blocks, sources, asgi_server, browser
):
    errors: list[str] = []
    page = browser.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, asgi_server, "lead")

    page.goto(f"{asgi_server}/campaigns/demo/")
    page.click("#samples-link")
    page.wait_for_selector("#upload-form")
    features = [
        {"type": "Feature", "properties": {"subtype": "paddy"}, "geometry": g}
        for g in (shapely.geometry.mapping(INSIDE), shapely.geometry.mapping(ACROSS))
    ]
    data = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "fields.geojson", "mimeType": "application/geo+json", "buffer": data}],
    )
    page.select_option("select[name=source]", "google")
    page.click("#upload-button")

    page.wait_for_selector("#import-preview")
    assert "3 polygons to import" in page.inner_text("#preview-counts")
    b0 = page.locator(f'#preview-blocks tr[data-block="{B0}"]')
    b1 = page.locator(f'#preview-blocks tr[data-block="{B1}"]')
    assert b0.get_attribute("data-source") == "google"
    assert b0.locator("[data-k=polygons]").inner_text() == "2"
    assert b1.locator("[data-k=polygons]").inner_text() == "1"
    assert not SamplePolygon.objects.exists()  # the preview wrote nothing

    page.click("#commit-button")
    page.wait_for_selector("#import-result")
    assert "3 polygons imported" in page.inner_text("#result-counts")
    assert sorted(
        (p.sample.block.code, p.sample.source.slug, p.subtype)
        for p in SamplePolygon.objects.select_related("sample__block", "sample__source")
    ) == [(B0, "google", "paddy")] * 2 + [(B1, "google", "paddy")]
    assert errors == []
