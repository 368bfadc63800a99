"""The hostile rasters every product-import entry point is tried with."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from tests.hostile.conftest import Listener
from tests.hostile.hostile_files import curl_vrt, raw_band_vrt, zip_with


def corrupt_pixels(d: Path, lis: Listener, can: Path) -> bytes:
    """A GeoTIFF whose header is sound and whose compressed strips are garbage: GDAL's own
    message is "Read failed. See previous exception for details." with the reason behind it."""
    path = d / "corrupt.tif"
    data = np.random.default_rng(1).integers(0, 255, (256, 256)).astype("uint8")
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=1,
                       dtype="uint8", crs="EPSG:4326", compress="deflate",
                       transform=from_origin(119.0, 32.05, 0.0002, 0.0002)) as ds:
        ds.write(data, 1)
    raw = path.read_bytes()
    return raw[: len(raw) // 2] + b"\xff" * (len(raw) - len(raw) // 2)


# name -> (file name the user gives, builder(tmp, listener, canary) -> bytes, words of the reason)
Maker = Callable[[Path, Listener, Path], bytes]
HOSTILE_RASTERS: dict[str, tuple[str, Maker, str]] = {
    "raw-band VRT named .tif reads a server file": (
        "product.tif", lambda d, lis, can: raw_band_vrt(can).encode(), "GeoTIFF"),
    "VRT named .tif fetches a /vsicurl/ URL": (
        "product.tif", lambda d, lis, can: curl_vrt(lis.url()).encode(), "GeoTIFF"),
    "VRT named .vrt fetches a /vsicurl/ URL": (
        "product.vrt", lambda d, lis, can: curl_vrt(lis.url("y.tif")).encode(), "GeoTIFF"),
    "zip holding a VRT, named .tif": (
        "product.tif",
        lambda d, lis, can: zip_with(d / "p.zip", {"p.vrt": curl_vrt(lis.url())}).read_bytes(),
        "GeoTIFF"),
    "gzip of a VRT, named .tif": (
        "product.tif", lambda d, lis, can: gzip.compress(raw_band_vrt(can).encode()), "GeoTIFF"),
    "TIFF magic followed by VRT XML": (
        "product.tif", lambda d, lis, can: b"II*\x00" + curl_vrt(lis.url()).encode(),
        "not a raster"),
    "GeoTIFF with corrupt pixel data": ("product.tif", corrupt_pixels, "IReadBlock failed"),
}
