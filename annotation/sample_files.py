"""Reading sample files (GeoPackage, zipped Shapefile, GeoJSON) and planning their import; no
Django (``annotation.transfer`` stores uploads and writes the plan).

Reading an upload is done in three steps by ``mapping.geo.safe_open`` (the one opener of user
files), each refusing with ``FileRejected`` (the reason in words a lead understands) before the
next one runs:

1. the file: size limit, a known extension whose first bytes match it;
2. for a zip: every member checked before anything is extracted (no absolute path or ``..``, no
   symlink, only Shapefile parts, member count, total size and compression ratio limits), then
   extracted with the byte budget enforced on the bytes actually written;
3. only the GDAL driver expected for the format may have opened it (a ``.geojson`` that GDAL sees
   as TopoJSON or a ``.gpkg`` that is some other SQLite file is refused).

Then every feature is checked on its own (``features_plan``): multipolygons are split, each part
is validated with the drawing rules (``annotation.geometry``), assigned to the block that holds
its representative point and, if it crosses block edges, clipped to every block it overlaps. A
feature that breaks a rule is listed with the reason; the import is all or nothing unless the
lead chooses to skip those features.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import CRS, Geod
from shapely.geometry import Polygon
from shapely.strtree import STRtree

from annotation.geometry import (
    MIN_AREA_DEG2,
    Bounds,
    GeometryRejected,
    polygon_clean,
    polygon_from_geojson,
    polygon_to_geojson,
)
from mapping.geo.safe_open import UnsafeFile, VectorSource, vector_open

# --- Limits ----------------------------------------------------------------------------------
# A county's hand-drawn samples in a GeoPackage are a few MB; 50 MB leaves room for a province.
MAX_UPLOAD_BYTES = 50 * 2**20
# Unpacked Shapefile parts together; .dbf/.shp compress well but not by more than ~20x in practice.
MAX_UNCOMPRESSED_BYTES = 200 * 2**20
MAX_FEATURES = 100_000

GPKG, SHAPEFILE, GEOJSON = "GPKG", "ESRI Shapefile", "GeoJSON"
UPLOAD_DRIVERS = {".gpkg": GPKG, ".zip": SHAPEFILE, ".geojson": GEOJSON, ".json": GEOJSON}
EXPORT_LAYER = "samples"

# Attribute columns: name in a GeoPackage -> name in a Shapefile (dBASE names have 10 characters).
COLUMNS: dict[str, str] = {
    "block": "block",
    "source": "source",
    "subtype": "subtype",
    "kind": "kind",
    "split": "split",
    "created_by": "created_by",
    "created_at": "created_at",
    "model_version": "model_ver",
    "round_number": "round_num",
    "province": "province",
    "county": "county",
}
ALIASES = {short: full for full, short in COLUMNS.items()}

_GEOD = Geod(ellps="WGS84")


# The file cannot be read or imported; ``reason`` says why. Nothing was written. The same type
# as every user file's refusal (mapping.geo.safe_open), which does the reading.
FileRejected = UnsafeFile


@dataclass(frozen=True)
class SampleVocabulary:
    """The values a file's ``subtype`` and ``split`` attributes may take (the app's choices), and
    the subtype of a feature without one."""

    subtypes: frozenset[str]
    splits: frozenset[str]
    default_subtype: str


# --- Reading files ---------------------------------------------------------------------------


def upload_driver(filename: str) -> tuple[str, str]:
    """The suffix and the only GDAL driver allowed for an upload named ``filename``."""
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in UPLOAD_DRIVERS:
        raise FileRejected(
            f"{filename!r}: unsupported file type; upload a GeoPackage (.gpkg), "
            "a zipped Shapefile (.zip) or GeoJSON (.geojson, .json)"
        )
    return suffix, UPLOAD_DRIVERS[suffix]


def _magic_check(path: Path, suffix: str) -> None:
    with path.open("rb") as fh:
        head = fh.read(64)
    if suffix == ".gpkg":
        ok = head.startswith(b"SQLite format 3\x00")
        what = "a GeoPackage"
    elif suffix == ".zip":
        ok = head[:4] in (b"PK\x03\x04", b"PK\x05\x06")
        what = "a zip archive"
    else:
        ok = head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
        what = "a GeoJSON object"
    if not ok:
        raise FileRejected(f"the file is not {what} (its first bytes do not match)")


def _layer_choose(src: VectorSource) -> str | None:
    layers = [name for name, geom in src.layers() if geom]
    if not layers:
        raise FileRejected("the file has no layer with geometries")
    if len(layers) == 1:
        return layers[0]
    if EXPORT_LAYER in layers:
        return EXPORT_LAYER
    raise FileRejected(
        f"the file has {len(layers)} layers ({', '.join(layers[:10])}); keep one, "
        f"or name the sample layer {EXPORT_LAYER!r}"
    )


def vector_read(src: VectorSource) -> gpd.GeoDataFrame:
    """One layer in WGS 84 of a file checked by ``mapping.geo.safe_open.vector_open``."""
    driver = src.driver
    layer = _layer_choose(src)
    info = src.info(layer=layer)
    if info.get("features", 0) > MAX_FEATURES:
        raise FileRejected(f"the file has {info['features']} features; at most {MAX_FEATURES}")
    df = src.read_dataframe(
        layer=layer, force_2d=True, max_features=MAX_FEATURES + 1, on_invalid="raise"
    )
    if len(df) > MAX_FEATURES:
        raise FileRejected(f"the file has more than {MAX_FEATURES} features")
    if df.crs is None:
        if driver != GEOJSON:
            raise FileRejected("the file has no coordinate system (CRS); set one in QGIS")
        df = df.set_crs(4326)  # RFC 7946: GeoJSON is WGS 84
    try:
        if not CRS.from_user_input(df.crs).equals(CRS.from_epsg(4326), ignore_axis_order=True):
            df = df.to_crs(4326)
    except Exception as e:
        raise FileRejected(f"cannot transform from {df.crs} to WGS 84 (EPSG:4326) ({e})") from e
    df.columns = [ALIASES.get(str(c).lower(), str(c).lower()) for c in df.columns]
    if df.geometry.name != "geometry":
        df = df.rename_geometry("geometry")
    return df


def upload_read(path: Path, *, suffix: str) -> gpd.GeoDataFrame:
    """Check and read a stored upload (``suffix`` from ``upload_driver``)."""
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise FileRejected(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
    _magic_check(path, suffix)
    with vector_open(
        path,
        allowed=(UPLOAD_DRIVERS[suffix],),
        max_bytes=MAX_UPLOAD_BYTES,
        max_uncompressed=MAX_UNCOMPRESSED_BYTES,
    ) as src:
        return vector_read(src)

# --- Planning an import ---------------------------------------------------------------------


@dataclass(frozen=True)
class BlockCell:
    id: int
    code: str
    bounds: Bounds


@dataclass(frozen=True)
class PlannedPolygon:
    feature: int  # 1-based position in the file
    block_id: int
    block_code: str
    source: str
    subtype: str
    split: str | None
    polygon: Polygon
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    feature: int
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "reason": self.reason}


@dataclass
class ImportPlan:
    n_features: int
    polygons: list[PlannedPolygon] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """Per block and source: number of polygons and their area (geodesic, hectares)."""
        groups: dict[tuple[str, str], list[PlannedPolygon]] = defaultdict(list)
        for p in self.polygons:
            groups[(p.block_code, p.source)].append(p)
        return [
            {
                "block": code,
                "block_id": ps[0].block_id,
                "source": src,
                "polygons": len(ps),
                "area_ha": round(sum(polygon_area_m2(p.polygon) for p in ps) / 1e4, 4),
            }
            for (code, src), ps in sorted(groups.items())
        ]


def polygon_area_m2(poly: Polygon) -> float:
    return abs(_GEOD.geometry_area_perimeter(poly)[0])


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value).strip()


def _json_safe(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return str(value)


def _pieces(part: Polygon, box: Polygon) -> list[Polygon]:
    if box.covers(part):
        return [part]
    inter = part.intersection(box)
    polys = [g for g in getattr(inter, "geoms", [inter]) if g.geom_type == "Polygon"]
    return [g for g in polys if g.area >= MIN_AREA_DEG2]


class _Grid:
    """The campaign's blocks under the file, indexed for "which blocks does this polygon touch"."""

    def __init__(self, blocks: Iterable[BlockCell]) -> None:
        self.cells = list(blocks)
        self.by_code = {c.code: j for j, c in enumerate(self.cells)}
        self.boxes = [shapely.box(*c.bounds) for c in self.cells]
        self.tree = STRtree(self.boxes)

    def place(self, poly: Polygon, *, block_code: str) -> list[tuple[BlockCell, Polygon]]:
        """The polygon's piece in each block it overlaps (only ``block_code``'s, if given), each
        clipped and checked by the drawing rules; [] if it overlaps none."""
        candidates = [int(j) for j in self.tree.query(poly, predicate="intersects")]
        if block_code:
            if self.by_code.get(block_code) not in candidates:
                raise GeometryRejected(
                    f"the polygon does not overlap block {block_code} of this campaign"
                )
            candidates = [self.by_code[block_code]]
        else:
            # The block holding the representative point first: it is the block the polygon
            # was drawn for; its neighbours only get what crosses their edges.
            rp = poly.representative_point()
            candidates.sort(key=lambda j: (not self.boxes[j].covers(rp), self.cells[j].code))
        out = []
        for j in candidates:
            cell = self.cells[j]
            for piece in _pieces(poly, self.boxes[j]):
                try:
                    out.append((cell, polygon_clean(polygon_to_geojson(piece), bounds=cell.bounds)))
                except GeometryRejected as e:
                    raise GeometryRejected(f"in block {cell.code}: {e.reason}") from e
        return out

def features_plan(
    df: gpd.GeoDataFrame,
    *,
    blocks: Iterable[BlockCell],
    source: str,
    sources: set[str],
    vocabulary: SampleVocabulary,
) -> ImportPlan:
    """Which polygon goes to which block, and which features are rejected and why.

    ``source`` is the imagery source chosen for the import; a feature with a ``source`` attribute
    (as in an export) goes to that source, which must be one of ``sources``. ``subtype`` and
    ``split`` attributes must be values of ``vocabulary``.
    """
    grid = _Grid(blocks)
    plan = ImportPlan(n_features=len(df))
    split_seen: dict[tuple[int, str], str] = {}
    columns = [c for c in df.columns if c != "geometry"]
    rows = df[columns].itertuples(index=False)
    for i, (geom, row) in enumerate(zip(df.geometry.values, rows, strict=True)):
        n = i + 1
        attrs = {c: _json_safe(v) for c, v in zip(columns, row, strict=True)}
        try:
            planned = _feature_plan(
                n, geom, attrs, grid=grid, source=source, sources=sources, vocabulary=vocabulary
            )
            for p in planned:
                if p.split and split_seen.get((p.block_id, p.source), p.split) != p.split:
                    raise GeometryRejected(
                        f"split {p.split!r} differs from {split_seen[(p.block_id, p.source)]!r} "
                        f"given for another polygon of block {p.block_code} ({p.source})"
                    )
        except GeometryRejected as e:
            plan.rejected.append(Rejection(n, e.reason))
            continue
        except shapely.errors.GEOSException as e:
            plan.rejected.append(Rejection(n, f"the geometry cannot be processed ({e})"))
            continue
        for p in planned:
            if p.split:
                split_seen.setdefault((p.block_id, p.source), p.split)
        plan.polygons.extend(planned)
    return plan


def _feature_plan(
    n: int,
    geom: Any,
    attrs: dict[str, Any],
    *,
    grid: _Grid,
    source: str,
    sources: set[str],
    vocabulary: SampleVocabulary,
) -> list[PlannedPolygon]:
    subtypes, splits = vocabulary.subtypes, vocabulary.splits
    subtype = _text(attrs.get("subtype")) or vocabulary.default_subtype
    if subtype not in subtypes:
        raise GeometryRejected(
            f"unknown subtype {subtype!r} (one of: {', '.join(sorted(subtypes))})"
        )
    split = _text(attrs.get("split")) or None
    if split is not None and split not in splits:
        raise GeometryRejected(f"unknown split {split!r} (one of: {', '.join(sorted(splits))})")
    src = _text(attrs.get("source")) or source
    if src not in sources:
        raise GeometryRejected(f"unknown imagery source {src!r}")
    if geom is None or shapely.is_empty(geom):
        raise GeometryRejected("the feature has no geometry")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise GeometryRejected(f"a {geom.geom_type} is not a polygon")
    parts = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
    out: list[PlannedPolygon] = []
    for k, part in enumerate(parts):
        try:
            checked = polygon_from_geojson(polygon_to_geojson(part))
            placed = grid.place(checked, block_code=_text(attrs.get("block")))
            if not placed:
                raise GeometryRejected("the polygon lies outside every block of the campaign")
        except GeometryRejected as e:
            raise GeometryRejected((f"part {k + 1}: " if len(parts) > 1 else "") + e.reason) from e
        out += [PlannedPolygon(n, c.id, c.code, src, subtype, split, p, attrs) for c, p in placed]
    return out
