"""Importing a product raster: the command, the API upload and the admin, with clear errors
and nothing half-stored."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import rasterio
from django.core.management import CommandError, call_command
from rasterio.transform import from_origin

from learning.product.models import CroplandProduct
from mapping.models import Campaign
from tests.factories import one_block_campaign_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(data_dir: Path, users) -> Campaign:
    return one_block_campaign_make(slug="imp", name="Import", lead=users["lead"])


def _raster(path: Path, *, crs: str | None = "EPSG:32650", values=(10, 40, 50), dtype="uint8",
            origin=(690_000.0, 3_550_000.0), res=30.0, nodata=0) -> Path:
    rng = np.random.default_rng(3)
    data = rng.choice(np.asarray(values, dtype=dtype), size=(200, 200))
    profile = dict(driver="GTiff", width=200, height=200, count=1, dtype=dtype,
                   transform=from_origin(*origin, res, res), nodata=nodata)
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
    return path


def _products_on_disk(data_dir: Path) -> list[Path]:
    folder = data_dir / "reference_products"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _import(path: Path, classes: str = "40", name: str = "wc") -> dict:
    out = StringIO()
    call_command("product_import", str(path), "--campaign", "imp", "--name", name,
                 "--cropland-classes", classes, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_import_projected_raster_stores_a_copy(campaign: Campaign, data_dir: Path,
                                               tmp_path: Path) -> None:
    src = _raster(tmp_path / "wc.tif")  # UTM 50N, 30 m, around 119.1 E 32.07 N
    data = _import(src, "40,45-50")
    p = CroplandProduct.objects.get(pk=data["id"])
    assert p.crs == "EPSG:32650" and (p.width, p.height) == (200, 200)
    assert p.cropland_classes == {"values": [40], "ranges": [[45, 50]]}
    assert p.sample_values == [10, 40, 50] and p.nodata == 0
    assert data["classes_not_in_sample"] == []
    w, s, e, n = p.bounds
    assert 118.99 < w < 119.05 < e < 119.1 and 32.0 < s < n < 32.1
    stored = data_dir / p.path
    assert stored.read_bytes() == src.read_bytes() and len(p.checksum) == 64
    assert _products_on_disk(data_dir) == [stored]


@pytest.mark.parametrize(
    ("make", "classes", "message"),
    [
        (lambda d: (d / "junk.tif").write_bytes(b"GIF89a not a raster") and d / "junk.tif",
         "40", "not a raster GDAL can read"),
        (lambda d: _raster(d / "nocrs.tif", crs=None), "40",
         "no coordinate reference system"),
        (lambda d: _raster(d / "paris.tif", crs="EPSG:2154", origin=(650_000, 6_860_000)), "40",
         r"does not overlap the region of campaign imp"),
        (lambda d: _raster(d / "wc.tif"), "99",
         r"unknown cropland classes: none of 99 occurs in the raster \(values found: 10, 40, 50\)"),
        (lambda d: _raster(d / "wc.tif"), "300",
         r"class 300 is outside the range of uint8"),
        (lambda d: _raster(d / "wc.tif"), "forty", "cropland classes: not a class value"),
        (lambda d: d / "missing.tif", "40", "file not found"),
    ],
)
def test_import_errors_store_nothing(campaign: Campaign, data_dir: Path, tmp_path: Path,
                                     make, classes: str, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(CommandError, match=f"nothing imported: .*{message}"):
        _import(path, classes)
    assert CroplandProduct.objects.count() == 0
    assert _products_on_disk(data_dir) == []


def test_duplicate_name_and_bad_name(campaign: Campaign, tmp_path: Path) -> None:
    src = _raster(tmp_path / "wc.tif")
    out, err = StringIO(), StringIO()
    call_command("product_import", str(src), "--campaign", "imp", "--name", "wc",
                 "--cropland-classes", "40,41,60-70", "--json", stdout=out, stderr=err)
    # Some classes occur (40), others not: imported, with a warning naming the others.
    assert json.loads(out.getvalue())["classes_not_in_sample"] == ["41", "60-70"]
    assert "cropland class(es) 41, 60-70 did not occur" in err.getvalue()
    with pytest.raises(CommandError, match="already has a product 'wc'"):
        _import(src)
    with pytest.raises(CommandError, match="must be a slug"):
        _import(src, name="ESA World Cover")
    with pytest.raises(CommandError, match="no campaign"):
        call_command("product_import", str(src), "--campaign", "nope", "--name", "x",
                     "--cropland-classes", "40")
    assert CroplandProduct.objects.count() == 1


def test_api_upload_roles_and_errors(campaign: Campaign, users, client, data_dir: Path,
                                     tmp_path: Path) -> None:
    url = "/api/campaigns/imp/products/"
    src = _raster(tmp_path / "wc.tif")

    def post(**extra):
        with src.open("rb") as fh:
            return client.post(url, {"file": fh, "name": "esa", "cropland_classes": "40",
                                     **extra})

    assert client.get(url).status_code == 403  # anonymous
    client.force_login(users["outsider"])
    assert post().status_code == 404  # no role: the campaign is not visible
    client.force_login(users["annotator"])
    r = post()
    assert r.status_code == 403 and "lead" in r.json()["detail"]
    assert client.get(url).json() == []
    client.force_login(users["lead"])
    r = post(cropland_classes="77")
    assert r.status_code == 400
    assert "none of 77 occurs in the raster" in r.json()["file"][0]
    with (tmp_path / "junk.tif").open("wb") as fh:
        fh.write(b"not a raster at all")
    with (tmp_path / "junk.tif").open("rb") as fh:
        r = client.post(url, {"file": fh, "name": "junk", "cropland_classes": "40"})
    assert r.status_code == 400 and "not a raster" in r.json()["file"][0]
    assert CroplandProduct.objects.count() == 0 and _products_on_disk(data_dir) == []
    r = post(description="ESA WorldCover 2020")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["name"] == "esa" and body["crs"] == "EPSG:32650"
    assert body["original_name"] == "wc.tif"
    assert [p["name"] for p in client.get(url).json()] == ["esa"]
    assert CroplandProduct.objects.get().uploaded_by == users["lead"]
    # Temporary upload files are gone.
    assert not any((data_dir / "tmp").iterdir())


def test_admin_upload(campaign: Campaign, users, client, data_dir: Path, tmp_path: Path) -> None:
    from django.contrib.auth.models import User

    User.objects.filter(pk=users["admin"].pk).update(is_superuser=True)
    client.force_login(users["admin"])
    src = _raster(tmp_path / "wc.tif")
    url = "/admin/product/croplandproduct/add/"
    assert client.get(url).status_code == 200
    with src.open("rb") as fh:
        r = client.post(url, {"campaign": campaign.pk, "name": "bad", "classes": "99",
                              "file": fh, "description": ""})
    assert r.status_code == 200 and "none of 99 occurs in the raster" in r.content.decode()
    assert CroplandProduct.objects.count() == 0
    with src.open("rb") as fh:
        r = client.post(url, {"campaign": campaign.pk, "name": "wc", "classes": "40",
                              "file": fh, "description": "WorldCover"})
    assert r.status_code == 302, r.content.decode()[:2000]
    p = CroplandProduct.objects.get()
    assert p.name == "wc" and p.uploaded_by == users["admin"] and (data_dir / p.path).is_file()
    r = client.get(f"/admin/product/croplandproduct/{p.pk}/change/")
    assert r.status_code == 200 and "EPSG:32650" in r.content.decode()
