"""The comparisons page's upload form (leads): a product imported from the web through the same
safe opener as the API; hostile files refused with the reason on the page (400), nothing
stored, no request made; other roles get no form and no import."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from learning.product.models import CroplandProduct
from tests.hostile.conftest import leaks, products_stored
from tests.hostile.hostile_files import geotiff
from tests.hostile.rasters import HOSTILE_RASTERS

pytestmark = pytest.mark.django_db


def _post(c, slug: str, filename: str, data: bytes, **fields):
    body = {"name": "esa", "cropland_classes": "40", **fields}
    body["file"] = SimpleUploadedFile(filename, data, content_type="application/octet-stream")
    return c.post(f"/campaigns/{slug}/comparisons/products/", body, HTTP_ACCEPT_LANGUAGE="en")


def test_a_lead_imports_a_product_from_the_comparisons_page(
    users, campaign, data_dir, tmp_path, login
):
    c = login("lead")
    page = c.get(f"/campaigns/{campaign.slug}/comparisons/").content.decode()
    assert 'id="product-upload"' in page and 'enctype="multipart/form-data"' in page
    data = geotiff(tmp_path / "ok.tif").read_bytes()
    r = _post(c, campaign.slug, "ok.tif", data)
    assert r.status_code == 302 and r["Location"] == f"/campaigns/{campaign.slug}/comparisons/"
    product = CroplandProduct.objects.get()
    assert product.name == "esa" and product.original_name == "ok.tif"
    page = c.get(r["Location"]).content.decode()
    assert "Product esa imported." in page
    # The form that starts a comparison is there now.
    assert 'id="comparison-start"' in page


@pytest.mark.parametrize("case", list(HOSTILE_RASTERS))
def test_hostile_file_is_refused_on_the_page(
    case, users, campaign, data_dir, tmp_path, listener, canary, login
):
    filename, make, words = HOSTILE_RASTERS[case]
    before = products_stored(data_dir)
    r = _post(login("lead"), campaign.slug, filename, make(tmp_path, listener, canary))
    text = r.content.decode()
    assert r.status_code == 400, text[:500]
    assert 'id="product-upload-error"' in text and words in text
    assert leaks(text) == [] and "Traceback" not in text
    assert products_stored(data_dir) == before
    assert listener.connections() == 0, "the server made an outbound request"


def test_missing_fields_say_which(users, campaign, data_dir, tmp_path, login):
    data = geotiff(tmp_path / "ok.tif").read_bytes()
    r = _post(login("lead"), campaign.slug, "ok.tif", data, cropland_classes="")
    assert r.status_code == 400 and "cropland_classes" in r.content.decode()
    assert CroplandProduct.objects.count() == 0


@pytest.mark.parametrize(("who", "status"), [("annotator", 403), ("outsider", 404)])
def test_only_leads_and_admins_import(users, campaign, data_dir, tmp_path, who, status, login):
    data = geotiff(tmp_path / "ok.tif").read_bytes()
    r = _post(login(who), campaign.slug, "ok.tif", data)
    assert r.status_code == status
    if status == 403:  # the annotator sees the campaign: the page says why
        assert "only a lead or an admin imports products" in r.content.decode()
    assert CroplandProduct.objects.count() == 0
