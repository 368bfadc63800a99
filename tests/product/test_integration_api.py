"""Integration review API and pages: who may see and decide, the reasons of refusals, the
review page's keyboard decisions in a real browser, and export downloads."""

from __future__ import annotations

import pytest

from annotation.models import IntegrationLabel
from learning.product.models import BlockIntegration, IntegrationSource
from learning.product.services.integration import integration_run
from tests.product.test_product_jobs import build_campaign


@pytest.mark.django_db
def test_review_geojson_and_override_permissions(users, login):
    ctx = build_campaign(lead=users["lead"])
    integration_run(campaign=ctx["campaign"])
    slug, blk = ctx["campaign"].slug, ctx["blocks"][1]
    url = f"/api/campaigns/{slug}/integration/blocks.geojson"
    data = login("lead").get(url).json()
    assert [f["properties"]["code"] for f in data["features"]] == [b.code for b in ctx["blocks"]]
    props = data["features"][1]["properties"]
    row = BlockIntegration.objects.get(block=blk)
    assert (props["decision"], props["source"], props["model_version"]) == (
        row.decision,
        "model",
        "int-r1",
    )
    assert props["probability"] == pytest.approx(row.probability)
    assert props["county"] == "中原区"
    assert login("annotator").get(url).status_code == 200  # reading is for any role
    assert login("outsider").get(url).status_code == 404
    assert login("lead").get(url, {"province": "999999"}).json()["features"] == []

    decide = f"/api/blocks/{blk.pk}/integration/"
    r = login("annotator").post(decide, {"decision": "neither"}, "application/json")
    assert r.status_code == 403 and "leads" in r.json()["detail"]
    r = login("lead").post(decide, {"decision": "both"}, "application/json")
    assert r.status_code == 400 and "unknown decision 'both'" in r.json()["decision"][0]
    assert login("outsider").post(decide, {"decision": "neither"}).status_code == 404
    assert login("lead").post("/api/blocks/999999/integration/", {}).status_code == 404
    r = login("lead").post(decide, {"decision": "merge_both"}, "application/json")
    assert r.status_code == 200, r.content
    assert (r.json()["decision"], r.json()["source"], r.json()["overridden_by"]) == (
        "merge_both",
        "lead",
        "lead",
    )
    assert IntegrationLabel.objects.get(block=blk).decision == "merge_both"
    got = login("annotator").get(decide).json()
    assert got["decision"] == "merge_both" and got["model_decision"] == row.model_decision


@pytest.mark.django_db
def test_run_and_export_refusals_give_reasons(users, login):
    ctx = build_campaign(converged=False, lead=users["lead"])
    slug = ctx["campaign"].slug
    lead = login("lead")
    r = lead.post(f"/api/campaigns/{slug}/integration/run/", {}, "application/json")
    assert r.status_code == 400 and "no blocks in converged provinces" in r.json()["detail"]
    r = login("annotator").post(f"/api/campaigns/{slug}/integration/run/", {})
    assert r.status_code == 403
    exports = f"/api/campaigns/{slug}/exports/"
    r = lead.post(exports, {"kind": "province", "province": 410000}, "application/json")
    assert r.status_code == 400 and "no integrated blocks" in r.json()["detail"]
    r = lead.post(exports, {"kind": "all"}, "application/json")
    assert r.status_code == 400 and "unknown export kind" in r.json()["kind"][0]
    r = lead.post(exports, {"kind": "province", "province": 1}, "application/json")
    assert r.status_code == 400 and "no province" in r.json()["province"][0]
    r = login("annotator").post(exports, {"kind": "national_af"}, "application/json")
    assert r.status_code == 403
    assert login("annotator").get(exports).json() == []
    assert login("outsider").get(exports).status_code == 404
    assert lead.get("/api/exports/12345/").status_code == 404


@pytest.mark.django_db
def test_pages_for_lead_and_annotator(users, login):
    ctx = build_campaign(lead=users["lead"])
    slug = ctx["campaign"].slug
    page = login("lead").get(f"/campaigns/{slug}/integration/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "integration.js" in html and 'data-decision="merge_both"' in html
    assert login("annotator").get(f"/campaigns/{slug}/integration/").status_code == 403
    assert login("outsider").get(f"/campaigns/{slug}/integration/").status_code == 404
    products = login("annotator").get(f"/campaigns/{slug}/products/")
    assert products.status_code == 200 and "export-form" not in products.content.decode()
    assert (
        "export-form" in login("lead").get(f"/campaigns/{slug}/products/").content.decode()
    )
    overview = login("lead").get(f"/campaigns/{slug}/").content.decode()
    assert (
        f"/campaigns/{slug}/integration/" in overview and f"/campaigns/{slug}/products/" in overview
    )


@pytest.mark.browser
def test_review_page_keyboard_decides_and_moves_on(users, asgi_server, browser, login):
    from django.contrib.gis.geos import MultiPolygon, Polygon

    ctx = build_campaign(lead=users["lead"])
    integration_run(campaign=ctx["campaign"])
    # The first block's predictions as polygons: Mapbox the west half, Google the north half.
    first = ctx["blocks"][0]
    w, s, e, n = first.geometry.extent
    for src, box in (("mapbox", (w, s, (w + e) / 2, n)), ("google", (w, (s + n) / 2, e, n))):
        pred = ctx["predictions"][(first.pk, src)]
        pred.geometry = MultiPolygon(Polygon.from_bbox(box), srid=4326)
        pred.save()
    c = login("lead")
    context = browser.new_context()
    context.add_cookies(
        [{"name": "sessionid", "value": c.cookies["sessionid"].value, "url": asgi_server}]
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{asgi_server}/campaigns/{ctx['campaign'].slug}/integration/")
    first, second = ctx["blocks"][0], ctx["blocks"][1]
    page.wait_for_function(
        f"() => document.getElementById('integ-code').textContent === '{first.code}'"
    )
    assert page.locator(".leaflet-interactive").count() == 4
    # Each source's predicted cropland on its side of the swipe.
    page.wait_for_function(
        "() => document.getElementById('map').dataset.mapboxPolygons === '1'"
        " && document.getElementById('map').dataset.googlePolygons === '1'"
    )
    assert page.locator(".leaflet-left-pane path").count() == 1
    assert page.locator(".leaflet-right-pane path").count() == 1
    page.keyboard.press("4")  # merge both: saved, then the next block is shown
    page.wait_for_function(
        f"() => document.getElementById('integ-code').textContent === '{second.code}'"
    )
    row = BlockIntegration.objects.get(block=first)
    assert (row.decision, row.source) == ("merge_both", IntegrationSource.LEAD)
    assert IntegrationLabel.objects.get(block=first).user == users["lead"]
    page.keyboard.press("k")  # back to the first block, now shown as the lead's decision
    page.wait_for_function(
        f"() => document.getElementById('integ-code').textContent === '{first.code}'"
    )
    assert page.locator("#integ-decision").get_attribute("data-value") == "merge_both"
    assert page.locator("#integ-workspace").get_attribute("href") == f"/annotate/blocks/{first.pk}/"
    page.keyboard.press("j")
    page.keyboard.press("1")
    page.wait_for_function(
        "() => document.getElementById('integ-position').textContent.startsWith('3 /')"
    )
    assert BlockIntegration.objects.get(block=second).decision == "neither"
    # The Google pane is clipped at the swipe position; moving the slider moves the clip.
    clip = page.evaluate("() => document.querySelector('.leaflet-right-pane').style.clip")
    page.locator("#integ-swipe").fill("20")
    assert page.evaluate("() => document.querySelector('.leaflet-right-pane').style.clip") != clip
    assert errors == []
    context.close()
