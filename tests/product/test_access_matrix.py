"""The "not yours" rule across the learning and product endpoints, for every role.

404 when the requester cannot see the campaign (no role; a lead who is not a member); 403 when
they see it but their role may not act (an annotator on a lead's page, a lead on an admin's
action); the real answer otherwise. tests/annotation/test_permission_matrix.py pins the same
rule for annotation's endpoints.
"""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.urls import reverse

from learning.models import ModelVersion, Round, RoundState
from learning.product.models import CroplandProduct, ProductComparison, ProductExport
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, JobStatus
from mapping.services.members import campaign_members_add
from tests.factories import user_make

pytestmark = pytest.mark.django_db

ROLES = ("admin", "lead", "annotator", "outsider", "other_lead")
# Who may act, by the endpoint's audience; everyone else who sees the campaign gets 403.
MAY = {
    "any": {"admin", "lead", "annotator"},
    "lead": {"admin", "lead"},
    "admin": {"admin"},
}
UNSEEN = {"outsider", "other_lead"}  # no role; a lead of another campaign: 404


@pytest.fixture
def world(users, settings, tmp_path):
    """Campaign "a" (its lead: "lead") with a block, a finished round, a model version, a
    finished export with one file, a product and a comparison; "b" led by "other_lead"."""
    settings.DATA_DIR = tmp_path
    other_lead = user_make("other_lead", role="lead")
    unit = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省", name_en="Hubei",
        geometry=MultiPolygon(Polygon.from_bbox((112.0, 30.0, 113.0, 31.0)), srid=4326),
    )
    a = Campaign.objects.create(slug="a", name="A", region="Hubei", year=2021)
    b = Campaign.objects.create(slug="b", name="B", region="Hubei", year=2020)
    a.provinces.set([unit])
    campaign_members_add(campaign=a, users=[users["lead"]])
    campaign_members_add(campaign=b, users=[other_lead])
    Block.objects.create(
        campaign=a, row=2406, col=5850, province=unit,
        geometry=Polygon.from_bbox((112.5, 30.3, 112.55, 30.35)),
    )
    rnd = Round.objects.create(campaign=a, number=1, state=RoundState.DONE)
    mv = ModelVersion.objects.create(
        campaign=a, kind="segmenter", name="seg-r1", bundle_path="models/none"
    )
    (tmp_path / "exports" / "a-1").mkdir(parents=True)
    (tmp_path / "exports" / "a-1" / "area.csv").write_text("adcode,area\n")
    export = ProductExport.objects.create(
        campaign=a, kind="national_af", status=JobStatus.DONE, folder="exports/a-1",
        files={"area.csv": {"bytes": 12, "sha256": ""}},
    )
    product = CroplandProduct.objects.create(
        campaign=a, name="esa", path="products/esa.tif", checksum="x",
        cropland_classes={"values": [40]}, crs="EPSG:4326", width=10, height=10,
        dtype="uint8", resolution_x=0.01, resolution_y=0.01, bounds=[112, 30, 113, 31],
    )
    comparison = ProductComparison.objects.create(campaign=a, product=product)
    return {
        "users": {**users, "other_lead": other_lead},
        "round": rnd.pk, "mv": mv.pk, "export": export.pk, "run": comparison.pk,
    }


def _calls(w: dict) -> list[tuple[str, str, str, dict, int]]:
    """(audience, method, url, body, the answer for those who may) per endpoint of campaign a.
    Writes carry a body that is refused after the gate (400, or a page back with the reason),
    so nothing is started."""
    r, mv, ex, run = w["round"], w["mv"], w["export"], w["run"]
    return [
        # learning: the dashboard, rounds, model versions (learning.access)
        ("lead", "get", reverse("learning-dashboard", args=["a"]), {}, 200),
        ("lead", "post", reverse("learning-systematic-sample", args=["a"]),
         {"spacing_deg": "0"}, 302),
        ("lead", "get", reverse("learning-rounds", args=["a"]), {}, 200),
        ("lead", "get", reverse("learning-rounds", args=["a"]) + "?number=1", {}, 200),
        ("lead", "get", reverse("learning-rounds", args=["a"]) + f"?round={r}", {}, 200),
        ("lead", "get", reverse("learning-models", args=["a"]), {}, 200),
        ("admin", "post", reverse("learning-demo-play", args=["a"]), {"rounds": "0"}, 302),
        ("lead", "get", reverse("api-learning-dashboard", args=["a"]), {}, 200),
        ("lead", "get", reverse("api-learning-province-status", args=["a"]), {}, 200),
        ("lead", "get", reverse("api-learning-provinces-geojson", args=["a"]), {}, 200),
        ("lead", "get", reverse("api-learning-round-progress", args=[r]), {}, 200),
        ("lead", "get", reverse("api-round-list", args=["a"]), {}, 200),
        ("admin", "post", reverse("api-round-list", args=["a"]), {"provinces": "x"}, 400),
        ("lead", "get", reverse("api-round-detail", args=["a", 1]), {}, 200),
        ("admin", "post", reverse("api-round-cancel", args=["a", 1]), {}, 409),
        ("lead", "get", reverse("api-model-version-list", args=["a"]), {}, 200),
        ("admin", "post", reverse("api-model-version-list", args=["a"]), {}, 400),
        ("admin", "post", reverse("api-model-version-set-current", args=["a", mv]), {}, 400),
        ("lead", "get", reverse("api-stop-status", args=["a"]), {}, 200),
        ("lead", "post", reverse("api-systematic-sample", args=["a"]),
         {"spacing_deg": 0}, 400),
        # product: integration, exports (read by any role), comparisons, products
        ("lead", "get", reverse("integration-review", args=["a"]), {}, 200),
        ("any", "get", reverse("api-integration-blocks", args=["a"]), {}, 200),
        ("lead", "post", reverse("api-integration-run", args=["a"]), {}, 400),
        ("any", "get", reverse("product-exports", args=["a"]), {}, 200),
        ("any", "get", reverse("api-campaign-exports", args=["a"]), {}, 200),
        ("lead", "post", reverse("api-campaign-exports", args=["a"]), {"kind": "x"}, 400),
        ("any", "get", reverse("api-export-detail", args=[ex]), {}, 200),
        ("any", "get", reverse("product-export-file", args=[ex, "area.csv"]), {}, 200),
        ("any", "get", reverse("comparison-index", args=["a"]), {}, 200),
        ("any", "get", reverse("comparison-report", args=["a", run]), {}, 200),
        ("any", "get", reverse("api-comparison-list", args=["a"]), {}, 200),
        ("lead", "post", reverse("api-comparison-list", args=["a"]), {"product": 0}, 400),
        ("any", "get", reverse("api-comparison-detail", args=["a", run]), {}, 200),
        ("lead", "post", reverse("comparison-start", args=["a"]), {"product": 0}, 302),
        ("any", "get", reverse("api-product-list", args=["a"]), {}, 200),
        ("lead", "post", reverse("api-product-list", args=["a"]), {}, 400),
        ("lead", "post", reverse("comparison-product-upload", args=["a"]), {}, 400),
    ]


def _call(client, method: str, url: str, body: dict):
    if method == "get":
        return client.get(url)
    if url.startswith("/api/") and "/products/" not in url:
        return client.post(url, body, content_type="application/json")
    return client.post(url, body)


def _counts() -> tuple[int, ...]:
    return tuple(
        m.objects.count()
        for m in (Round, ModelVersion, ProductExport, ProductComparison, CroplandProduct)
    )


@pytest.mark.parametrize("who", ROLES)
def test_every_learning_and_product_endpoint_for_every_role(world, who, login):
    client = login(world["users"][who])
    before = _counts()
    for audience, method, url, body, ok in _calls(world):
        expected = 404 if who in UNSEEN else ok if who in MAY[audience] else 403
        r = _call(client, method, url, body)
        assert r.status_code == expected, (who, method, url, r.content[:300])
        if expected == 403 and r["Content-Type"] == "application/json":
            detail = r.json()["detail"]  # a reason, not DRF's bare default
            assert detail and "permission to perform" not in detail, (who, url, detail)
    assert _counts() == before
