"""manage.py samples_import with hostile files: one CommandError line, nothing written, no
request made."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotation.models import SamplePolygon
from mapping.models import ImagerySource
from tests.hostile.conftest import leaks
from tests.hostile.hostile_files import ogr_curl_vrt, zip_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(campaign, users):
    ImagerySource.objects.create(slug="mapbox", name="mapbox", kind="synthetic")

    def go(path) -> str:
        with pytest.raises(CommandError) as err:
            call_command("samples_import", str(path), "--campaign", campaign.slug,
                         "--source", "mapbox", "--user", "lead")
        return str(err.value)
    return go


@pytest.mark.parametrize("kind", ["vrt as geojson", "zip holding a vrt"])
def test_hostile_file(kind, run, tmp_path, listener):
    xml = ogr_curl_vrt(listener.url("a.geojson"))
    if kind == "vrt as geojson":
        path = tmp_path / "s.geojson"
        path.write_text(xml)
    else:
        path = zip_with(tmp_path / "s.zip", {"s.vrt": xml})
    text = run(path)
    assert text.startswith("nothing imported") and "\n" not in text, text
    assert leaks(text.replace(str(path), "FILE")) == [], text
    assert SamplePolygon.objects.count() == 0
    assert listener.connections() == 0
