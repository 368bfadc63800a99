"""POST /api/campaigns/<slug>/products/ with hostile rasters: 400 with the reason, nothing
stored, no request made, no server file read."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from learning.product.models import CroplandProduct
from tests.hostile.conftest import leaks
from tests.hostile.hostile_files import geotiff
from tests.hostile.rasters import HOSTILE_RASTERS

pytestmark = pytest.mark.django_db


def _post(users, slug: str, name: str, data: bytes):
    c = Client()
    c.force_login(users["lead"])
    return c.post(f"/api/campaigns/{slug}/products/", {
        "file": SimpleUploadedFile(name, data, content_type="application/octet-stream"),
        "name": "esa", "cropland_classes": "40",
    })


def _stored(data_dir: Path) -> tuple[int, list[Path]]:
    folder = data_dir / "reference_products"
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    return CroplandProduct.objects.count(), files


@pytest.mark.parametrize("case", list(HOSTILE_RASTERS))
def test_hostile_raster_is_refused(case, users, campaign, data_dir, tmp_path, listener, canary):
    filename, make, words = HOSTILE_RASTERS[case]
    before = _stored(data_dir)
    r = _post(users, campaign.slug, filename, make(tmp_path, listener, canary))
    text = r.content.decode()
    assert r.status_code == 400, text
    assert words in text, text
    assert leaks(text) == [], text
    assert "See previous exception" not in text
    assert _stored(data_dir) == before
    assert listener.connections() == 0, "the server made an outbound request"


def test_good_geotiff_is_still_imported(users, campaign, data_dir, tmp_path):
    data = geotiff(tmp_path / "ok.tif").read_bytes()
    r = _post(users, campaign.slug, "ok.tif", data)
    assert r.status_code == 201, r.content
    assert _stored(data_dir)[0] == 1
