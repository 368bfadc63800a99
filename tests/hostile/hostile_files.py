"""Hostile files, built in the tests: VRTs that read server files or fetch URLs, zips that hide
them, GeoJSON with NaN and unclosed rings, deep JSON."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

SRS = "EPSG:4326"
TRANSFORM = "119.0, 0.005, 0, 32.05, 0, -0.005"  # over the hostile campaign's block


def raw_band_vrt(target: Path) -> str:
    """A GDAL VRT whose band is the bytes of ``target`` (VRTRawRasterBand)."""
    return (
        '<VRTDataset rasterXSize="16" rasterYSize="8">'
        f"<SRS>{SRS}</SRS><GeoTransform>{TRANSFORM}</GeoTransform>"
        '<VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">'
        f'<SourceFilename relativetoVRT="0">{target}</SourceFilename>'
        "<ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>16</LineOffset>"
        "</VRTRasterBand></VRTDataset>"
    )


def curl_vrt(url: str) -> str:
    """A GDAL VRT whose band is read from ``/vsicurl/url``."""
    return (
        '<VRTDataset rasterXSize="16" rasterYSize="8">'
        f"<SRS>{SRS}</SRS><GeoTransform>{TRANSFORM}</GeoTransform>"
        '<VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">/vsicurl/{url}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    )


def ogr_curl_vrt(url: str) -> str:
    """An OGR VRT whose layer is a GeoJSON fetched from ``/vsicurl/url``."""
    return (
        '<OGRVRTDataSource><OGRVRTLayer name="province">'
        f"<SrcDataSource>/vsicurl/{url}</SrcDataSource>"
        "</OGRVRTLayer></OGRVRTDataSource>"
    )


def ogr_file_vrt(target: Path) -> str:
    """An OGR VRT whose layer is ``target`` read as CSV (a server file)."""
    return (
        '<OGRVRTDataSource><OGRVRTLayer name="province">'
        f'<SrcDataSource relativeToVRT="0">CSV:{target}</SrcDataSource>'
        "</OGRVRTLayer></OGRVRTDataSource>"
    )


def zip_with(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def geotiff(path: Path, *, values=(10, 40), crs: str = "EPSG:4326") -> Path:
    """A good GeoTIFF over the hostile campaign's block (the control case)."""
    data = np.resize(np.asarray(values, np.uint8), (20, 20))
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=1, dtype="uint8",
                       crs=crs, transform=from_origin(119.0, 32.05, 0.0025, 0.0025),
                       nodata=0) as ds:
        ds.write(data, 1)
    return path


def feature_collection(*geometries: dict, props: list[dict] | None = None) -> str:
    props = props or [
        {"province_adcode": 320000 + 1000 * i, "province_name": f"省{i}"}
        for i in range(len(geometries))
    ]
    feats = [
        {"type": "Feature", "properties": p, "geometry": g}
        for p, g in zip(props, geometries, strict=True)
    ]
    return json.dumps({"type": "FeatureCollection", "features": feats}, allow_nan=True)


def square(x0=118.9, y0=31.9, x1=119.2, y1=32.2) -> dict:
    return {"type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def nested_json(depth: int) -> str:
    """A polygon body whose coordinates are nested ``depth`` levels deep."""
    return '{"op_id": "00000000-0000-4000-8000-000000000001", "subtype": "paddy", ' \
        '"geometry": {"type": "Polygon", "coordinates": ' + "[" * depth + "]" * depth + "}}"
