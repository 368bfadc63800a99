"""mapping.geo.safe_open itself: GDAL's network stays off inside the guard even for a path
that skips the driver allow-list, and paths GDAL would treat specially are refused."""

from __future__ import annotations

import pyogrio
import pytest
import rasterio

from mapping.geo.safe_open import UnsafeFile, gdal_guard, local_file, raster_open, vector_open
from tests.hostile.hostile_files import curl_vrt


@pytest.mark.parametrize("name", ["x.tif", "x", "x.tif?a=b", "x.croplayer-network-is-off"])
def test_guard_refuses_vsicurl_before_connecting(name, listener, tmp_path):
    """The driver allow-list keeps VRTs out; this is the second wall, for GDAL itself."""
    vrt = tmp_path / "v.vrt"
    vrt.write_text(curl_vrt(listener.url(name)))
    with gdal_guard():
        with pytest.raises(Exception), rasterio.open(vrt) as ds:  # noqa: B017 GDAL's own error
            ds.read(1)
        with pytest.raises(Exception):  # noqa: B017
            pyogrio.read_dataframe(f"/vsicurl/{listener.url(name)}")
    assert listener.connections() == 0


@pytest.mark.parametrize("path", [
    "/vsicurl/http://127.0.0.1:9/x.tif", "/vsizip//etc/x.zip/a.shp", "GTIFF_DIR:1:/etc/x.tif",
    "http://127.0.0.1:9/x.tif", "/dev/zero", "/etc",
])
def test_special_paths_are_refused(path):
    with pytest.raises(UnsafeFile):
        local_file(path, max_bytes=2**30)
    with pytest.raises(UnsafeFile):
        raster_open(path)
    with pytest.raises(UnsafeFile), vector_open(path):
        pass


def test_size_limit(tmp_path):
    big = tmp_path / "big.tif"
    big.write_bytes(b"II*\x00" + b"\x00" * 2000)
    with pytest.raises(UnsafeFile, match="larger than"):
        raster_open(big, max_bytes=1000)
