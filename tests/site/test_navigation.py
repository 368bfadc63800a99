"""The top navigation (a campaign's lead pages from every page of it, the workspace included),
the configurable base map of the overview and integration maps, and the favicon."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.contrib.gis.geos import Polygon
from django.test import Client

from mapping.models import Block, Campaign, ImagerySource
from mapping.services.members import campaign_members_add
from tests.conftest import page_login

pytestmark = pytest.mark.django_db

LEAD_LINKS = ("dashboard", "rounds", "models", "assign", "samples", "comparisons")


@pytest.fixture
def camp(users):
    c = Campaign.objects.create(slug="nav", name="Nav", region="Hubei", year=2020, zoom=13)
    campaign_members_add(campaign=c, users=[users["lead"]])
    ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    Block.objects.create(
        campaign=c, row=2386, col=5850, geometry=Polygon.from_bbox((112.5, 30.3, 112.55, 30.35))
    )
    return c


def nav(client: Client, url: str) -> dict[str, str]:
    r = client.get(url)
    assert r.status_code == 200, (url, r.status_code)
    block = re.search(r"<nav>(.*?)</nav>", r.content.decode(), re.S).group(1)
    return dict(re.findall(r'<a id="nav-([\w-]+)" href="([^"]+)"', block))


@pytest.mark.parametrize("who", ["lead", "admin"])
def test_a_leads_nav_reaches_every_lead_page_from_overview_and_workspace(users, camp, who, login):
    c = login(users[who])
    blk = camp.blocks.get()
    for url in (
        f"/campaigns/{camp.slug}/",
        f"/annotate/blocks/{blk.pk}/",
        f"/blocks/{blk.pk}/",
        f"/campaigns/{camp.slug}/rounds/",
    ):
        links = nav(c, url)
        for key in LEAD_LINKS:
            assert key in links, (url, key, links)
        assert links["rounds"] == f"/campaigns/{camp.slug}/rounds/"
        assert links["models"] == f"/campaigns/{camp.slug}/models/"
        assert links["dashboard"] == f"/campaigns/{camp.slug}/dashboard/"
        # Every link leads somewhere this person may go.
        for key in LEAD_LINKS:
            assert c.get(links[key]).status_code == 200, (key, links[key])


def test_an_annotator_gets_no_lead_links(users, camp, login):
    from annotation.models import Assignment

    blk = camp.blocks.get()
    Assignment.objects.create(block=blk, user=users["annotator"])
    c = login("annotator")
    for url in (f"/campaigns/{camp.slug}/", f"/annotate/blocks/{blk.pk}/"):
        links = nav(c, url)
        assert set(links) == {"campaigns", "api"}, links


def test_admin_link_only_for_staff_who_may_change_something(users, camp, login):
    lead = users["lead"]
    lead.is_staff = True  # the demo's lead: staff, but no model permission
    lead.save()
    c = login(lead)
    assert "admin" not in nav(c, "/")
    lead.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    assert "admin" in nav(c, "/")
    admin = users["admin"]
    admin.is_superuser = True  # the demo's admin
    admin.save()
    c.force_login(admin)
    assert "admin" in nav(c, "/")


def _basemap(client: Client, url: str) -> dict:
    html = client.get(url).content.decode()
    m = re.search(r'<script id="basemap-config" type="application/json">(.*?)</script>', html)
    assert m, url
    return json.loads(m.group(1))


def test_base_map_is_none_by_default_and_configurable(users, camp, settings, login):
    c = login("lead")
    pages = (f"/campaigns/{camp.slug}/", f"/campaigns/{camp.slug}/integration/")
    for url in pages:
        assert _basemap(c, url)["url"] == ""  # tests (and offline sites): no base map
    settings.BASEMAP_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    settings.BASEMAP_ATTRIBUTION = "&copy; OpenStreetMap contributors"
    for url in pages:
        cfg = _basemap(c, url)
        assert cfg["url"] == settings.BASEMAP_URL
        assert "OpenStreetMap" in cfg["attribution"]


def test_osm_attribution_follows_an_osm_url(monkeypatch):
    import importlib

    import croplayer_site.settings as site_settings

    monkeypatch.setenv("BASEMAP_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    monkeypatch.delenv("BASEMAP_ATTRIBUTION", raising=False)
    try:
        fresh = importlib.reload(site_settings)
        assert "OpenStreetMap" in fresh.BASEMAP_ATTRIBUTION
    finally:
        monkeypatch.delenv("BASEMAP_URL")
        importlib.reload(site_settings)


def test_favicon_is_linked_and_served(users, client):
    client.force_login(users["lead"])
    html = client.get("/").content.decode()
    assert re.search(r'<link rel="icon" href="/static/croplayer/favicon.svg"', html)
    r = client.get("/favicon.ico")
    assert r.status_code == 301 and r["Location"] == "/static/croplayer/favicon.svg"


# ---- in a browser: the base map's tiles arrive, and no page asks for something missing ----------


@pytest.fixture
def tile_server(monkeypatch):
    """A local XYZ tile server (one green PNG for every tile) named by BASEMAP_URL for the
    ASGI server started after this fixture; yields the list of paths it was asked for."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (256, 256), (40, 160, 60)).save(buf, "PNG")
    png = buf.getvalue()
    asked: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "BASEMAP_URL", f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png"
    )
    monkeypatch.setenv("BASEMAP_ATTRIBUTION", "Test tiles")
    yield asked
    server.shutdown()


@pytest.mark.browser
def test_overview_draws_the_base_map_and_no_page_asks_for_a_missing_file(
    users, camp, tile_server, asgi_server, browser
):
    page = browser.new_page()
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page_login(page, asgi_server, "lead")
    page.goto(f"{asgi_server}/campaigns/{camp.slug}/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.leaflet-tile-pane .basemap img')]"
        ".some(i => i.complete && i.naturalWidth === 256)"
    )
    assert tile_server and all(p.endswith(".png") for p in tile_server)
    assert "Test tiles" in page.inner_text(".leaflet-control-attribution")
    # The workspace before any round: no favicon 404, no prediction 404 in the console.
    page.goto(f"{asgi_server}/annotate/blocks/{camp.blocks.get().pk}/")
    page.wait_for_selector("#ws[data-ready='1']")
    page.keyboard.press("o")  # show the prediction: says why there is none, without asking
    page.wait_for_function(
        "() => document.getElementById('ws-pred-info').textContent.includes('first learning round')"
    )
    page.wait_for_timeout(300)
    # (This block has no imagery fetched: its imagery tiles answer 404, as they should.)
    assert [u for u in missing if "/imagery/" not in u] == [] and errors == []
