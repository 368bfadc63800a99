"""The paper's delivery form: one Shapefile per county named ``cf_<city>_<county>`` (UTF-8
``.cpg``) packed per province into a ``.tar.gz``, and one GeoPackage per province.

File names are ASCII pinyin (the units' English names, else pypinyin of the Chinese name):
archive tools and GIS software on Windows read non-ASCII member names in the local code page
and garble Chinese file names, while attribute values are safe with the ``.cpg``. The Chinese
names travel in the ``city`` and ``county`` attributes.
"""

from __future__ import annotations

import os
import re
import tarfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely
from shapely.geometry import Polygon

from mapping.geo.raster import atomic_path

WGS84_WKT_CRS = "EPSG:4326"
# Shapefile field names are at most 10 characters.
FIELDS: tuple[str, ...] = (
    "area_m2",
    "block_id",
    "decision",
    "model_ver",
    "round",
    "county",
    "city",
    "adcode",
)
ENCODING = "UTF-8"
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


@dataclass(frozen=True)
class County:
    adcode: int
    name_zh: str
    name_en: str
    city_zh: str
    city_en: str


@dataclass(frozen=True)
class CroplandPolygon:
    geometry: Polygon  # WGS 84 lon/lat
    area_m2: float
    block_id: str
    decision: str
    model_version: str
    round_number: int  # 0 when no learning round made the prediction


def latin_slug(name_en: str, name_zh: str) -> str:
    """Lower-case ASCII letters and digits of a unit's name: ``Zhengzhou Shi`` -> ``zhengzhoushi``.

    Falls back to pypinyin of the Chinese name when there is no English name.
    """
    text = name_en.strip()
    if not text and name_zh:
        from pypinyin import lazy_pinyin

        text = "".join(lazy_pinyin(name_zh))
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def shapefile_stems(counties: Iterable[County]) -> dict[int, str]:
    """``cf_<city>_<county>`` per county adcode; a name used twice gets ``_<adcode>`` added."""
    items = sorted(counties, key=lambda c: c.adcode)
    base = {
        c.adcode: f"cf_{latin_slug(c.city_en, c.city_zh) or 'city'}_"
        f"{latin_slug(c.name_en, c.name_zh) or str(c.adcode)}"
        for c in items
    }
    seen: dict[str, int] = {}
    for stem in base.values():
        seen[stem] = seen.get(stem, 0) + 1
    return {a: (s if seen[s] == 1 else f"{s}_{a}") for a, s in base.items()}


def _columns(polygons: Sequence[CroplandPolygon], county: County) -> list[np.ndarray]:
    n = len(polygons)
    return [
        np.array([p.area_m2 for p in polygons], dtype=np.float64),
        np.array([p.block_id for p in polygons], dtype=object),
        np.array([p.decision for p in polygons], dtype=object),
        np.array([p.model_version for p in polygons], dtype=object),
        np.array([p.round_number for p in polygons], dtype=np.int32),
        np.array([county.name_zh] * n, dtype=object),
        np.array([county.city_zh] * n, dtype=object),
        np.array([county.adcode] * n, dtype=np.int32),
    ]


def _wkb(polygons: Sequence[CroplandPolygon]) -> np.ndarray:
    return np.asarray(shapely.to_wkb([p.geometry for p in polygons]), dtype=object)


def write_county_shapefile(
    folder: Path,
    stem: str,
    county: County,
    polygons: Sequence[CroplandPolygon],
    *,
    append: bool = False,
) -> list[Path]:
    """``folder/<stem>.shp`` and its sidecars (UTF-8 ``.cpg``); an empty layer when a county has
    no cropland, so every county of the province has its file. With ``append`` the polygons are
    added to an existing file (a province is written block by block, never held in memory)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.shp"
    pyogrio.raw.write(
        str(path),
        _wkb(polygons),
        _columns(polygons, county),
        list(FIELDS),
        driver="ESRI Shapefile",
        geometry_type="Polygon",
        crs=WGS84_WKT_CRS,
        encoding=ENCODING,
        append=append,
    )
    cpg = folder / f"{stem}.cpg"
    if not cpg.exists():  # GDAL writes it for ENCODING=UTF-8; make sure readers find it
        cpg.write_text(ENCODING, encoding="ascii")
    return [folder / f"{stem}{ext}" for ext in SHAPEFILE_PARTS]


def append_geopackage(
    path: Path, county: County, polygons: Sequence[CroplandPolygon], *, layer: str
) -> None:
    """Add polygons to a GeoPackage layer, creating the file on the first call (not atomic:
    for a file inside a staging folder that is renamed as a whole)."""
    pyogrio.raw.write(
        str(path),
        _wkb(polygons),
        _columns(polygons, county),
        list(FIELDS),
        layer=layer,
        driver="GPKG",
        geometry_type="Polygon",
        crs=WGS84_WKT_CRS,
        append=path.exists(),
    )


def write_geopackage(
    dest: Path, by_county: Sequence[tuple[County, Sequence[CroplandPolygon]]], *, layer: str
) -> int:
    """All polygons of a province in one GeoPackage layer; returns the feature count."""
    wkb_parts = []
    col_parts: list[list[np.ndarray]] = []
    for county, polys in by_county:
        if polys:
            wkb_parts.append(_wkb(polys))
            col_parts.append(_columns(polys, county))
    if wkb_parts:
        geometry = np.concatenate(wkb_parts)
        columns = [np.concatenate([c[i] for c in col_parts]) for i in range(len(FIELDS))]
    else:
        geometry = np.zeros(0, dtype=object)
        columns = [
            np.zeros(0, dtype=d)
            for d in (np.float64, object, object, object, np.int32, object, object, np.int32)
        ]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # GDAL picks the driver from the extension, so the temporary name ends in .gpkg too.
    tmp = dest.with_name(f".{dest.stem}.{uuid.uuid4().hex}.tmp.gpkg")
    try:
        pyogrio.raw.write(
            str(tmp),
            geometry,
            columns,
            list(FIELDS),
            layer=layer,
            driver="GPKG",
            geometry_type="Polygon",
            crs=WGS84_WKT_CRS,
        )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return len(geometry)


def tar_gz(dest: Path, files: Sequence[Path], *, arcdir: str) -> list[str]:
    """Pack ``files`` under ``arcdir/`` into ``dest`` (written to a temporary name, then
    renamed); returns the member names."""
    names = [f"{arcdir}/{f.name}" for f in files]
    with atomic_path(Path(dest)) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for f, name in zip(files, names, strict=True):
            tar.add(f, arcname=name)
    return names
