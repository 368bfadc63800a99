"""POST /api/campaigns/<slug>/products/ with hostile rasters: 400 with the reason, nothing
stored, no request made, no server file read."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.hostile.conftest import leaks, products_stored
from tests.hostile.hostile_files import geotiff
from tests.hostile.rasters import HOSTILE_RASTERS

pytestmark = pytest.mark.django_db


def _post(c, slug: str, name: str, data: bytes):
    return c.post(f"/api/campaigns/{slug}/products/", {
        "file": SimpleUploadedFile(name, data, content_type="application/octet-stream"),
        "name": "esa", "cropland_classes": "40",
    })


@pytest.mark.parametrize("case", list(HOSTILE_RASTERS))
def test_hostile_raster_is_refused(
    case, users, campaign, data_dir, tmp_path, listener, canary, login
):
    filename, make, words = HOSTILE_RASTERS[case]
    before = products_stored(data_dir)
    r = _post(login("lead"), campaign.slug, filename, make(tmp_path, listener, canary))
    text = r.content.decode()
    assert r.status_code == 400, text
    assert words in text, text
    assert leaks(text) == [], text
    assert "See previous exception" not in text
    assert products_stored(data_dir) == before
    assert listener.connections() == 0, "the server made an outbound request"


def test_good_geotiff_is_still_imported(users, campaign, data_dir, tmp_path, login):
    data = geotiff(tmp_path / "ok.tif").read_bytes()
    r = _post(login("lead"), campaign.slug, "ok.tif", data)
    assert r.status_code == 201, r.content
    assert products_stored(data_dir)[0] == 1
