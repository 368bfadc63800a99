"""The hostile rasters every product-import entry point is tried with."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

from tests.hostile.conftest import Listener
from tests.hostile.hostile_files import curl_vrt, raw_band_vrt, zip_with

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
}
