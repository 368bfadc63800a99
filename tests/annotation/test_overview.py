"""The campaign overview map: its GeoJSON endpoint (status, verdicts, province, filters, who sees
which blocks), the page in a real browser, and the demo's assignments that feed "next block"."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotation.models import Assignment, AssignmentStatus, CampaignWorkflow
from tests.annotation.conftest import ROLES

pytestmark = pytest.mark.django_db

def overview(c, query=""):
    return c.get(f"/api/campaigns/map/overview.geojson{query}")


def ids(r) -> list[int]:
    assert r.status_code == 200, r.content
    return [f["id"] for f in r.json()["features"]]


@pytest.mark.parametrize("role", ROLES)
def test_who_sees_which_blocks(users, field, role, login):
    _, blocks = field
    r = overview(login(role))
    expected = {"anonymous": 403, "outsider": 404}
    assert r.status_code == expected.get(role, 200)
    if r.status_code != 200:
        return
    if role == "annotator":
        assert ids(r) == [b.pk for b in blocks[:4]]  # their own, in seed order
    else:
        assert ids(r) == [b.pk for b in blocks]


def test_properties_of_a_block(users, field, login):
    _, blocks = field
    data = overview(login("lead")).json()
    assert data["truncated"] is False
    assert data["workspace_url"] == "/annotate/blocks/{id}/"
    by_id = {f["id"]: f for f in data["features"]}
    f0 = by_id[blocks[0].pk]
    assert f0["properties"]["code"] == blocks[0].code
    assert f0["properties"]["province"] == 420000 and f0["properties"]["province_name"] == "湖北省"
    assert f0["properties"]["status"] == "todo" and f0["properties"]["agreement"] is True
    assert f0["properties"]["assignees"] == ["annotator", "bob"]
    w, s, e, n = blocks[0].geometry.extent
    assert f0["geometry"]["coordinates"] == [[[w, s], [e, s], [e, n], [w, n], [w, s]]]
    # the newest verdict per source wins (the lead's tp after the annotator's fp)
    assert by_id[blocks[1].pk]["properties"]["verdicts"] == {"mapbox": "tp"}
    assert by_id[blocks[2].pk]["properties"]["verdicts"] == {"google": "noise"}
    assert by_id[blocks[3].pk]["properties"]["status"] == "accepted"
    assert by_id[blocks[5].pk]["properties"] | {"province": 0} == {
        "code": blocks[5].code,
        "province": 0,
        "province_name": "湖北省",
        "province_name_en": "Hubei",
        "county": "",
        "seed_order": 5,
        "status": "unassigned",
        "assignees": [],
        "agreement": False,
        "verdicts": {},
    }


def test_an_annotator_sees_only_their_own_status_and_verdicts(users, field, login):
    _, blocks = field
    data = overview(login("annotator")).json()
    by_id = {f["id"]: f["properties"] for f in data["features"]}
    # the lead's newer verdict and the other person on the block stay hidden (blind labelling)
    assert by_id[blocks[1].pk]["verdicts"] == {"mapbox": "fp"}
    assert by_id[blocks[0].pk]["assignees"] == [] and by_id[blocks[0].pk]["agreement"] is False
    bob = login(User.objects.get(username="bob"))
    mine = {f["id"]: f["properties"] for f in overview(bob).json()["features"]}
    assert list(mine) == [blocks[0].pk, blocks[4].pk]
    assert mine[blocks[4].pk]["verdicts"] == {"mapbox": "artifact"}
    assert mine[blocks[0].pk]["status"] == "todo"


def test_filters(users, field, login):
    _, blocks = field
    c = login("lead")
    pk = [b.pk for b in blocks]
    assert ids(overview(c, "?province=430000")) == [pk[i] for i in range(20) if i % 5 >= 3]
    assert ids(overview(c, "?status=unassigned")) == pk[5:]
    assert ids(overview(c, "?status=submitted")) == [pk[2]]
    assert ids(overview(c, "?status=todo")) == [pk[0], pk[4]]
    assert ids(overview(c, "?verdict=tp")) == [pk[1]]
    assert ids(overview(c, "?verdict=fp")) == []  # superseded by the lead's tp
    assert ids(overview(c, "?verdict=noise&source=mapbox")) == []
    assert ids(overview(c, "?verdict=noise&source=google")) == [pk[2]]
    assert ids(overview(c, "?assignee=bob")) == [pk[0], pk[4]]
    assert ids(overview(c, "?assignee=bob&province=430000")) == [pk[4]]
    # the box holds the first two columns of the first two rows (edges that only touch: out)
    w, s, _, _ = blocks[0].geometry.extent
    box = f"{w},{s},{w + 0.1},{s + 0.1}"
    assert ids(overview(c, f"?bbox={box}")) == [pk[0], pk[1], pk[5], pk[6]]
    page = overview(c, "?limit=3").json()
    assert [f["id"] for f in page["features"]] == pk[:3] and page["truncated"] is True
    # an annotator's assignee filter is ignored: they only ever see their own blocks
    assert ids(overview(login("annotator"), "?assignee=bob")) == pk[:4]
    assert ids(overview(login("annotator"), "?status=accepted")) == [pk[3]]


@pytest.mark.parametrize(
    "query,field_name",
    [
        ("?status=done", "status"),
        ("?verdict=maybe", "verdict"),
        ("?province=hubei", "province"),
        ("?bbox=1,2,3", "bbox"),
        ("?bbox=10,10,5,5", "bbox"),
        ("?limit=0", "limit"),
        ("?limit=20001", "limit"),
    ],
)
def test_bad_filters_get_400_with_the_reason(users, field, query, field_name, login):
    r = overview(login("lead"), query)
    assert r.status_code == 400 and field_name in r.json()


def test_unknown_campaign_is_404(users, field, login):
    assert overview(login("lead")).status_code == 200
    assert login("lead").get("/api/campaigns/nope/overview.geojson").status_code == 404


def test_demo_gives_the_annotator_blocks_in_seed_order_and_turns_self_assignment_on(
    users, field, login
):
    from annotation.services.demo import ASSIGNED_TO_ANNOTATOR, _demo_work

    campaign, blocks = field
    Assignment.objects.all().delete()
    CampaignWorkflow.objects.create(campaign=campaign, self_assign=False)
    shuffled = sorted(blocks, key=lambda b: -b.pk)  # the order given must not matter
    _demo_work(campaign=campaign, blocks=shuffled)
    assert CampaignWorkflow.objects.get(campaign=campaign).self_assign is True
    mine = Assignment.objects.filter(user=users["annotator"]).order_by("priority")
    assert [a.block_id for a in mine] == [b.pk for b in blocks[:ASSIGNED_TO_ANNOTATOR]]
    c = login("annotator")
    r = c.post("/api/campaigns/map/next-block/")
    assert r.status_code == 200 and r.json()["assignment"]["block"] == blocks[0].pk
    _demo_work(campaign=campaign, blocks=blocks)  # a second run leaves the work alone
    assert Assignment.objects.count() == ASSIGNED_TO_ANNOTATOR
    # once the given blocks are done, "next block" claims the next one in seed order
    Assignment.objects.update(status=AssignmentStatus.ACCEPTED)
    r = c.post("/api/campaigns/map/next-block/")
    assert r.json()["claimed"] is True
    assert r.json()["assignment"]["block"] == blocks[ASSIGNED_TO_ANNOTATOR].pk


@pytest.mark.browser
def test_overview_map_in_a_browser(users, field, asgi_server, browser, login):
    """The lead's map draws all 20 blocks from vector tiles, recolours by verdict with a legend,
    filters to the unassigned ones, and a click opens the block's workspace; the annotator's
    map shows their 4 blocks."""
    _, blocks = field

    def session_for(user):
        c = login(user)
        return {"name": "sessionid", "value": c.cookies["sessionid"].value, "url": asgi_server}

    context = browser.new_context()
    context.add_cookies([session_for(users["lead"])])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{asgi_server}/campaigns/map/")
    page.wait_for_function("() => document.getElementById('map').dataset.blocks === '20'")
    # Every block comes from the vector tiles (a canvas per tile); the legend counts the campaign.
    page.wait_for_function("() => document.getElementById('map').dataset.tiles === 'loaded'")
    assert page.locator("#map canvas").count() >= 1
    legend = page.locator("#legend .legend-item")
    assert sorted(legend.evaluate_all("els => els.map(e => e.textContent.trim())")) == [
        "Accepted (1)",
        "In progress (1)",
        "Not assigned (15)",
        "Submitted (1)",
        "To do (2)",
    ]
    page.select_option("select[name=colour]", "verdict")
    page.wait_for_function("() => document.getElementById('map').dataset.colour === 'verdict'")
    keys = legend.evaluate_all("els => els.map(e => e.dataset.key)")
    assert sorted(keys) == ["noise", "none"]  # google, the first source
    page.select_option("select[name=source]", "mapbox")
    keys = legend.evaluate_all("els => els.map(e => e.dataset.key)")
    assert sorted(keys) == ["artifact", "none", "tp"]
    page.select_option("select[name=status]", "unassigned")
    page.click("#overview-filters button[type=submit]")
    page.wait_for_function("() => document.getElementById('map').dataset.blocks === '15'")
    w, s, e, n = blocks[7].geometry.extent
    x, y = page.evaluate(
        """([lat, lon]) => { const m = document.getElementById('map').leafletMap;
             const p = m.latLngToContainerPoint([lat, lon]); return [p.x, p.y]; }""",
        [(s + n) / 2, (w + e) / 2],
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_url(f"{asgi_server}/annotate/blocks/{blocks[7].pk}/")
    assert errors == []
    context.close()

    context = browser.new_context()
    context.add_cookies([session_for(users["annotator"])])
    page = context.new_page()
    page.goto(f"{asgi_server}/campaigns/map/")
    page.wait_for_function("() => document.getElementById('map').dataset.blocks === '4'")
    assert page.locator("#agreement-link").count() == 0
    context.close()
