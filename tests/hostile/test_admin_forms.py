"""The Django admin's forms that take user input GDAL or HTTP will see: the product upload and
the imagery-source config. Hostile input gets a form error naming the problem, nothing saved."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from learning.product.models import CroplandProduct
from mapping.models import ImagerySource
from tests.hostile.conftest import leaks
from tests.hostile.hostile_files import curl_vrt, raw_band_vrt

pytestmark = pytest.mark.django_db

XYZ = {"url_template": "https://api.mapbox.com/v4/mapbox.satellite/{z}/{x}/{y}.jpg",
       "zoom": 16}


@pytest.fixture
def admin_client(users, login):
    user = users["admin"]
    user.is_superuser = True
    user.save()
    c = login(user)
    return c


@pytest.mark.parametrize("kind", ["raw band", "vsicurl"])
def test_product_upload_of_a_vrt(kind, admin_client, campaign, listener, canary):
    xml = raw_band_vrt(canary) if kind == "raw band" else curl_vrt(listener.url())
    r = admin_client.post("/admin/product/croplandproduct/add/", {
        "campaign": campaign.pk, "name": "esa", "description": "", "classes": "40",
        "file": SimpleUploadedFile("esa.tif", xml.encode()),
    })
    text = r.content.decode()
    assert r.status_code == 200 and "errorlist" in text  # the form again, with the error
    assert "not a raster GDAL can read" in text
    assert leaks(text.replace("/vsicurl", "")) == []
    assert CroplandProduct.objects.count() == 0
    assert listener.connections() == 0


def _error_lists(html: str) -> list[str]:
    return re.findall(r'<ul class="errorlist[^>]*>.*?</ul>', html, flags=re.S)


def _source_post(client, config: dict):
    return client.post("/admin/mapping/imagerysource/add/", {
        "slug": "mapbox", "name": "Mapbox", "kind": "xyz", "config": json.dumps(config),
        "enabled": "on",
    })


@pytest.mark.parametrize("agent", ["croplayer\r\nX-Injected: 1", "a\nb", "bell\x07"])
def test_user_agent_with_control_characters_is_refused(agent, admin_client):
    r = _source_post(admin_client, {**XYZ, "user_agent": agent})
    errors = " ".join(_error_lists(r.content.decode()))
    assert r.status_code == 200 and "user_agent" in errors, errors
    assert ImagerySource.objects.count() == 0


def test_config_errors_do_not_echo_the_input(admin_client):
    secret_like = "Y" * 300
    r = _source_post(admin_client, {**XYZ, "zoom": 99, "user_agent": secret_like})
    errors = " ".join(_error_lists(r.content.decode()))
    assert "zoom" in errors and "user_agent" in errors, errors
    # The form shows the config the admin typed in its text area; the error says what is wrong.
    assert "input_value" not in errors and secret_like not in errors, errors
    assert "errors.pydantic.dev" not in errors
    assert ImagerySource.objects.count() == 0


def test_a_good_config_is_saved(admin_client):
    r = _source_post(admin_client, XYZ)
    assert r.status_code == 302, r.content.decode()[-2000:]
    assert ImagerySource.objects.count() == 1
