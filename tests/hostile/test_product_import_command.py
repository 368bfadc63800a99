"""manage.py product_import with hostile rasters: one CommandError line, nothing stored, no
request made, no server file read."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from learning.product.models import CroplandProduct
from tests.hostile.conftest import leaks
from tests.hostile.rasters import HOSTILE_RASTERS

pytestmark = pytest.mark.django_db


def _run(path: str, slug: str) -> None:
    call_command("product_import", path, "--campaign", slug, "--name", "esa",
                 "--cropland-classes", "40")


@pytest.mark.parametrize("case", list(HOSTILE_RASTERS))
def test_hostile_raster_is_refused(case, campaign, tmp_path, listener, canary):
    filename, make, words = HOSTILE_RASTERS[case]
    path = tmp_path / filename
    path.write_bytes(make(tmp_path, listener, canary))
    with pytest.raises(CommandError) as err:
        _run(str(path), campaign.slug)
    text = str(err.value)
    assert words in text and "\n" not in text, text
    assert "CANARY" not in text and "See previous exception" not in text
    assert leaks(text.replace(str(path), "FILE")) == [], text
    assert CroplandProduct.objects.count() == 0
    assert listener.connections() == 0, "the command made an outbound request"


@pytest.mark.parametrize("prefix", ["/vsicurl/", "/vsicurl_streaming/", "/vsis3/bucket/"])
def test_gdal_virtual_paths_are_refused(prefix, campaign, listener):
    with pytest.raises(CommandError) as err:
        _run(f"{prefix}{listener.url()}", campaign.slug)
    assert "\n" not in str(err.value) and leaks(str(err.value).replace(prefix, "")) == []
    assert CroplandProduct.objects.count() == 0
    assert listener.connections() == 0
