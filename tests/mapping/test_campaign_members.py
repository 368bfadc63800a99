"""Campaign membership: the service and ``manage.py campaign_member``, and what a lead of
another campaign gets from the campaign-scoped mapping pages and endpoints (404)."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from croplayer_site.consumers import JobConsumer
from croplayer_site.jobs import job_visible
from croplayer_site.roles import roles_ensure
from learning.product.models import CroplandProduct, ProductComparison, ProductExport
from mapping.models import (
    AdminLevel,
    AdminUnit,
    Block,
    Campaign,
    CampaignMember,
    FetchRun,
    ImagerySource,
    JobStatus,
)
from mapping.services.members import (
    CampaignMemberError,
    campaign_members_add,
    campaign_members_remove,
)
from tests.factories import user_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(users, settings, tmp_path):
    """Campaign "a" run by the lead, campaign "b" run by other_lead; each with a block, and "a"
    with a finished export (one file), an imported product, a comparison and a fetch run."""
    settings.DATA_DIR = tmp_path
    other_lead = user_make("other_lead", role="lead")
    unit = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE,
        adcode=420000,
        name_zh="湖北省",
        name_en="Hubei",
        geometry=MultiPolygon(Polygon.from_bbox((112.0, 30.0, 113.0, 31.0)), srid=4326),
    )
    a = Campaign.objects.create(slug="a", name="A", region="Hubei", year=2021)
    b = Campaign.objects.create(slug="b", name="B", region="Hubei", year=2020)
    campaign_members_add(campaign=a, users=[users["lead"]])
    campaign_members_add(campaign=b, users=[other_lead])
    blocks = {
        c.slug: Block.objects.create(
            campaign=c,
            row=2406,
            col=5850 + i,
            province=unit,
            geometry=Polygon.from_bbox((112.5 + 0.05 * i, 30.3, 112.55 + 0.05 * i, 30.35)),
        )
        for i, c in enumerate((a, b))
    }
    source = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    folder = Path("exports") / "a-1"
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "area.csv").write_text("adcode,area\n")
    export = ProductExport.objects.create(
        campaign=a,
        kind="national_af",
        status=JobStatus.DONE,
        folder=str(folder),
        files={"area.csv": {"bytes": 12, "sha256": ""}},
    )
    product = CroplandProduct.objects.create(
        campaign=a,
        name="esa",
        path="products/esa.tif",
        checksum="x",
        cropland_classes={"values": [40]},
        crs="EPSG:4326",
        width=10,
        height=10,
        dtype="uint8",
        resolution_x=0.01,
        resolution_y=0.01,
        bounds=[112, 30, 113, 31],
    )
    comparison = ProductComparison.objects.create(campaign=a, product=product)
    fetch = FetchRun.objects.create(campaign=a, source=source)
    return {
        "a": a,
        "b": b,
        "blocks": blocks,
        "export": export,
        "product": product,
        "comparison": comparison,
        "fetch": fetch,
        "other_lead": other_lead,
        "users": {**users, "other_lead": other_lead},
    }


# --- who sees which campaigns ------------------------------------------------------------------


def test_a_lead_lists_only_the_campaigns_they_are_a_member_of(world, login):
    def listed(who: str) -> list[str]:
        return [c["slug"] for c in login(world["users"][who]).get("/api/campaigns/").json()]

    assert listed("lead") == ["a"]
    assert listed("other_lead") == ["b"]
    assert listed("admin") == ["a", "b"]
    assert listed("annotator") == ["a", "b"]  # annotators: every campaign, their blocks' work
    assert listed("outsider") == []
    home = login(world["users"]["lead"]).get("/").content.decode()
    assert reverse("campaign-overview", args=["a"]) in home
    assert reverse("campaign-overview", args=["b"]) not in home


def test_a_lead_without_any_membership_sees_no_campaign(world, users, login):
    CampaignMember.objects.filter(user=users["lead"]).delete()
    c = login("lead")
    assert c.get("/api/campaigns/").json() == []
    assert c.get(reverse("campaign-overview", args=["a"])).status_code == 404


def _mapping_calls(w: dict) -> list[tuple[str, str, dict, int]]:
    """(method, url, body, what campaign a's own lead gets) for each campaign-scoped page and
    endpoint of the mapping app: overview, blocks, exports, comparisons, integration review."""
    a, blk = w["a"].slug, w["blocks"]["a"].pk
    export, run = w["export"].pk, w["comparison"].pk
    return [
        ("get", reverse("campaign-overview", args=[a]), {}, 200),
        ("get", reverse("campaign-agreement", args=[a]), {}, 200),
        ("get", reverse("block-view", args=[blk]), {}, 200),
        ("get", reverse("api-campaign-blocks", args=[a]), {}, 200),
        ("get", reverse("api-campaign-statistics", args=[a]), {}, 200),
        ("get", reverse("api-block-detail", args=[blk]), {}, 200),
        # integration review: the page, its map, running it, one block's decision
        ("get", reverse("integration-review", args=[a]), {}, 200),
        ("get", reverse("api-integration-blocks", args=[a]), {}, 200),
        ("post", reverse("api-integration-run", args=[a]), {}, 400),  # no models yet: reason
        ("get", reverse("api-block-integration", args=[blk]), {}, 404),  # no decision yet
        ("post", reverse("api-block-integration", args=[blk]), {"decision": "x"}, 400),
        # exports
        ("get", reverse("product-exports", args=[a]), {}, 200),
        ("get", reverse("api-campaign-exports", args=[a]), {}, 200),
        ("post", reverse("api-campaign-exports", args=[a]), {"kind": "x"}, 400),
        ("get", reverse("api-export-detail", args=[export]), {}, 200),
        ("get", reverse("product-export-file", args=[export, "area.csv"]), {}, 200),
        # comparisons with existing products
        ("get", reverse("comparison-index", args=[a]), {}, 200),
        ("get", reverse("comparison-report", args=[a, run]), {}, 200),
        ("get", reverse("api-product-list", args=[a]), {}, 200),
        ("post", reverse("api-product-list", args=[a]), {}, 400),
        ("get", reverse("api-comparison-list", args=[a]), {}, 200),
        ("post", reverse("api-comparison-list", args=[a]), {"product": 0}, 400),
        ("get", reverse("api-comparison-detail", args=[a, run]), {}, 200),
        ("post", reverse("comparison-start", args=[a]), {}, 302),  # back with the reason
    ]


def _call(c: Client, method: str, url: str, body: dict):
    if method == "get":
        return c.get(url)
    if "/api/" in url and "products/" not in url:
        return c.post(url, body, content_type="application/json")
    return c.post(url, body)


def test_a_lead_of_another_campaign_gets_404_for_its_pages_and_endpoints(world, login):
    """Like a campaign that does not exist; the campaign's own lead gets the real answer, so
    the 404 is the membership and not a missing object."""
    lead, other_lead = login(world["users"]["lead"]), login(world["other_lead"])
    before = (ProductExport.objects.count(), ProductComparison.objects.count())
    for method, url, body, expected in _mapping_calls(world):
        r = _call(lead, method, url, body)
        assert r.status_code == expected, (method, url, r.content[:300])
        r = _call(other_lead, method, url, body)
        assert r.status_code == 404, (method, url, r.content[:300])
    assert (ProductExport.objects.count(), ProductComparison.objects.count()) == before


def test_an_admin_and_an_annotator_still_see_every_campaign(world, users, login):
    url = reverse("campaign-overview", args=["b"])
    assert login("admin").get(url).status_code == 200
    assert login("annotator").get(url).status_code == 200
    block = world["blocks"]["b"].pk
    assert login("annotator").get(f"/api/blocks/{block}/").status_code == 200


def test_job_progress_of_another_campaign_is_refused(world, users):
    jobs = [
        f"export-{world['export'].pk}",
        f"compare-{world['comparison'].pk}",
        f"fetch-{world['fetch'].pk}",
    ]
    for job in jobs:
        assert job_visible(user=users["lead"], job=job), job
        assert job_visible(user=users["admin"], job=job), job
        assert not job_visible(user=world["other_lead"], job=job), job
    assert job_visible(user=users["annotator"], job=f"fetch-{world['fetch'].pk}")
    # a fetch run not in the database yet: refused (tests/mapping/test_job_consumer.py)
    assert not job_visible(user=world["other_lead"], job="fetch-99999")


@pytest.mark.django_db(transaction=True)
def test_job_websocket_closes_for_a_lead_of_another_campaign(users):
    camp = Campaign.objects.create(slug="ws-a", name="a", region="t", year=2020)
    export = ProductExport.objects.create(campaign=camp, kind="national_af")
    other_lead = User.objects.create(username="other_lead")
    other_lead.groups.add(roles_ensure()["lead"])

    async def connect(user):
        comm = WebsocketCommunicator(JobConsumer.as_asgi(), "/ws/jobs/x/")
        comm.scope["user"] = user
        comm.scope["url_route"] = {"kwargs": {"job": f"export-{export.pk}"}}
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    assert async_to_sync(connect)(other_lead) == (False, 4404)
    campaign_members_add(campaign=camp, users=[other_lead])
    assert async_to_sync(connect)(other_lead)[0] is True


# --- the service and the command ---------------------------------------------------------------


def test_only_leads_become_members_and_twice_is_once(world, users):
    a = world["a"]
    with pytest.raises(CampaignMemberError, match="not a lead: 'annotator'"):
        campaign_members_add(campaign=a, users=[world["other_lead"], users["annotator"]])
    assert not CampaignMember.objects.filter(campaign=a, user=world["other_lead"]).exists()
    assert campaign_members_add(campaign=a, users=[world["other_lead"], users["lead"]]) == [
        True,
        False,
    ]
    assert campaign_members_remove(campaign=a, users=[world["other_lead"], users["admin"]]) == [
        True,
        False,
    ]


def _cmd(*args: str) -> str:
    out = StringIO()
    call_command("campaign_member", *args, stdout=out)
    return out.getvalue()


def test_campaign_member_command_adds_lists_and_removes(world, login):
    b_url = reverse("campaign-overview", args=["b"])
    lead = login(world["users"]["lead"])
    assert lead.get(b_url).status_code == 404
    assert _cmd("add", "b", "lead") == "lead added to b\n"
    assert lead.get(b_url).status_code == 200
    assert _cmd("add", "b", "lead") == "lead already a member of b\n"
    assert _cmd("list", "b") == "lead\nother_lead\n"
    assert _cmd("remove", "b", "lead", "other_lead") == (
        "lead removed from b\nother_lead removed from b\n"
    )
    assert lead.get(b_url).status_code == 404
    assert _cmd("remove", "b", "lead") == "lead was not a member of b\n"
    assert _cmd("list", "b") == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "nope", "lead"), "no campaign 'nope'"),
        (("add", "b", "lead", "ghost"), "no user called 'ghost'; nothing changed"),
        (("add", "b", "lead", "annotator"), "not a lead: 'annotator'"),
        (("add", "b"), "name the leads to add"),
    ],
)
def test_campaign_member_command_refuses_with_the_reason_and_changes_nothing(world, args, message):
    before = sorted(CampaignMember.objects.values_list("campaign__slug", "user__username"))
    with pytest.raises(CommandError, match=message):
        _cmd(*args)
    assert sorted(CampaignMember.objects.values_list("campaign__slug", "user__username")) == (
        before
    )


def test_the_demo_lead_runs_the_demo_campaign(monkeypatch, settings, tmp_path, login):
    """``load_demo`` (without its labelled samples, which take the time) makes the demo lead a
    member of the demo campaign, so the demo lead sees it."""
    from annotation.services import demo

    settings.DATA_DIR = tmp_path
    monkeypatch.setattr(demo, "SAMPLES_PER_PROVINCE", 0)
    demo.demo_load()
    lead = User.objects.get(username="lead")
    assert [c["slug"] for c in login(lead).get("/api/campaigns/").json()] == [demo.DEMO_SLUG]
    demo.demo_load()  # again: still one membership
    assert CampaignMember.objects.filter(user=lead).count() == 1
    # One DEM per window (not one over their bounding box), and the windows' own coverage
    # scenarios on the synthetic sources.
    import rasterio

    from mapping.models import CampaignDem, ImagerySource

    dems = CampaignDem.objects.filter(campaign__slug=demo.DEMO_SLUG)
    assert dems.count() == len(demo.WINDOWS)
    for dem in dems:
        with rasterio.open(tmp_path / dem.path) as ds:
            w, s, e, n = ds.bounds
            assert e - w < 1 and n - s < 1
            assert any(w < ww and e > we and s < ws and n > wn
                       for ww, ws, we, wn in demo.WINDOWS.values())
    for src in ImagerySource.objects.filter(slug__in=("mapbox", "google")):
        assert src.config["scenario_shares"] == demo.DEMO_SCENARIO_SHARES[src.slug]


def test_admins_edit_members_in_the_django_admin(world, users, login):
    root = User.objects.create_superuser("root", password="pw-123!-pw")
    c = login(root)
    assert c.get("/admin/mapping/campaignmember/").status_code == 200
    page = c.get(f"/admin/mapping/campaign/{world['a'].pk}/change/").content.decode()
    assert "members-TOTAL_FORMS" in page  # the members inline on the campaign
    form = c.get("/admin/mapping/campaignmember/add/").content.decode()
    offered = form.split('name="user"', 1)[1].split("</select>", 1)[0]
    assert ">other_lead<" in offered and ">lead<" in offered  # only leads are offered
    assert ">annotator<" not in offered and ">root<" not in offered
    r = c.post(
        "/admin/mapping/campaignmember/add/",
        {"campaign": world["b"].pk, "user": users["lead"].pk},
    )
    assert r.status_code == 302, r.content[:500]
    assert login("lead").get(reverse("campaign-overview", args=["b"])).status_code == 200
