"""Import official cultivated-land statistics per province or per county from CSV, all or
nothing."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import shapely
from django.db import transaction
from pyproj import Geod

from mapping.models import (
    HECTARES_PER_UNIT,
    AdminLevel,
    AdminUnit,
    AreaUnit,
    Campaign,
    OfficialStatistic,
    StatisticStatus,
)

DEFAULT_STATISTICS = (
    Path(__file__).resolve().parent.parent / "data" / "tnls_cultivated_land_by_province.csv"
)
# OfficialStatistic.value is a decimal of 14 digits, 4 after the point: values below 10^10.
MAX_VALUE = Decimal(10) ** (
    OfficialStatistic._meta.get_field("value").max_digits  # type: ignore[union-attr,operator]
    - OfficialStatistic._meta.get_field("value").decimal_places  # type: ignore[union-attr]
)
# Shipped boundaries are simplified by ~100 m; a figure may exceed the polygon's area by that.
AREA_SLACK = 1.01
# 34 provinces with citations fit in a few kB.
MAX_CSV_BYTES = 10 * 2**20
_GEOD = Geod(ellps="WGS84")
NATIONAL_ROWS = {"全国", "china", "national", "china (national total)"}

# Value columns understood, most preferred first: (column, unit).
VALUE_COLUMNS = [
    ("cultivated_land_10k_ha", AreaUnit.HA_10K),
    ("cultivated_land_10k_mu", AreaUnit.MU_10K),
    ("value_ha", AreaUnit.HA),
]


class StatisticsImportError(Exception):
    """A CSV that cannot be imported; the message says why (nothing was written)."""


@dataclass
class StatisticsReport:
    created: int = 0
    updated: int = 0
    skipped: list[str] = field(default_factory=list)


def _province_lookup() -> dict[str, AdminUnit]:
    lookup: dict[str, AdminUnit] = {}
    for unit in AdminUnit.objects.filter(level=AdminLevel.PROVINCE):
        for key in (unit.name_zh, unit.short_name, unit.name_en, str(unit.adcode)):
            if key:
                lookup[key.strip().lower()] = unit
        # "河北省" is also found as "河北"
        for suffix in (
            "省",
            "市",
            "自治区",
            "特别行政区",
            "壮族自治区",
            "回族自治区",
            "维吾尔自治区",
        ):
            if unit.name_zh.endswith(suffix):
                lookup[unit.name_zh[: -len(suffix)].lower()] = unit
    return lookup


def _province_area_ha(unit: AdminUnit, cache: dict[int, float | None]) -> float | None:
    """The province's geodesic area in hectares (None when its boundary is unknown)."""
    if unit.pk not in cache:
        area: float | None = None
        if unit.geometry is not None and not unit.geometry.empty:
            geom = shapely.from_wkb(bytes(unit.geometry.wkb))
            area = abs(_GEOD.geometry_area_perimeter(geom)[0]) / 10_000
        cache[unit.pk] = area if area else None
    return cache[unit.pk]


def _county_lookup() -> tuple[dict[str, AdminUnit], dict[tuple[str, str], AdminUnit]]:
    """Counties by adcode (and by unique name), and by (province adcode or name, county name)
    for names that repeat across provinces (there are several 朝阳区, 新华区, ...)."""
    by_key: dict[str, AdminUnit] = {}
    names: dict[str, list[AdminUnit]] = {}
    by_pair: dict[tuple[str, str], AdminUnit] = {}
    provinces = {
        u.pk: u for u in AdminUnit.objects.filter(level=AdminLevel.PROVINCE).defer("geometry")
    }
    cities = {
        u.pk: u.parent_id
        for u in AdminUnit.objects.filter(level=AdminLevel.CITY).defer("geometry")
    }
    for unit in AdminUnit.objects.filter(level=AdminLevel.COUNTY).defer("geometry"):
        by_key[str(unit.adcode)] = unit
        for n in {unit.name_zh, unit.name_en}:
            if n:
                names.setdefault(n.strip().lower(), []).append(unit)
        parent = unit.parent_id
        prov = provinces.get(parent) or provinces.get(cities.get(parent))  # type: ignore[arg-type]
        if prov is not None:
            for p in (str(prov.adcode), prov.name_zh, prov.name_en, prov.short_name):
                for n in (unit.name_zh, unit.name_en):
                    if p and n:
                        by_pair[(p.strip().lower(), n.strip().lower())] = unit
    for n, units in names.items():
        if len(units) == 1:
            by_key.setdefault(n, units[0])
    return by_key, by_pair


def statistics_import(
    *,
    campaign: Campaign,
    path: Path | None = None,
    text: str | None = None,
    level: str = AdminLevel.PROVINCE,
) -> StatisticsReport:
    """Create or update the campaign's official figures from CSV; one transaction.

    Province level: ``province_zh`` or ``province_en`` or ``province`` (name or adcode).
    County level (``level="county"``): ``county`` (adcode, or a name; a name found in several
    provinces needs a ``province`` column too). Then a value column
    (``cultivated_land_10k_ha``, ``cultivated_land_10k_mu``, ``value_ha``, or ``value`` with
    ``unit``); ``status`` (one of StatisticStatus); ``source``; optional ``evidence``.
    A national-total row is skipped. The same status and source rules hold at both levels.
    """
    if level not in (AdminLevel.PROVINCE, AdminLevel.COUNTY):
        raise StatisticsImportError(f"level must be province or county, got {level!r}")
    if text is None:
        if path is None or not path.is_file():
            raise StatisticsImportError(f"{path}: no such file")
        if path.stat().st_size > MAX_CSV_BYTES:
            raise StatisticsImportError(f"{path}: larger than {MAX_CSV_BYTES // 2**20} MB")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise StatisticsImportError(f"{path}: not UTF-8 text ({e})") from e
    try:
        return _import_text(campaign=campaign, text=text, level=level)
    except csv.Error as e:  # a NUL byte, a field over csv's size limit, a broken quote
        raise StatisticsImportError(f"not a readable CSV file ({e})") from e


def _import_text(*, campaign: Campaign, text: str, level: str) -> StatisticsReport:
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or [])
    county_level = level == AdminLevel.COUNTY
    if county_level:
        name_cols = [c for c in ("county_code", "county", "county_zh", "county_en")
                     if c in columns]
        if not name_cols:
            raise StatisticsImportError(
                "missing a county column (county, county_code, county_zh or county_en)"
            )
    else:
        name_cols = [c for c in ("province_zh", "province_en", "province") if c in columns]
        if not name_cols:
            raise StatisticsImportError(
                "missing a province column (province_zh, province_en or province)"
            )
    value_col = next(((c, u) for c, u in VALUE_COLUMNS if c in columns), None)
    if value_col is None and not {"value", "unit"} <= columns:
        raise StatisticsImportError(
            "missing a value column (cultivated_land_10k_ha, cultivated_land_10k_mu, value_ha, "
            "or value + unit)"
        )
    for required in ("status", "source"):
        if required not in columns:
            raise StatisticsImportError(f"missing column {required!r}")
    if county_level:
        lookup, by_pair = _county_lookup()
        if not lookup:
            raise StatisticsImportError(
                "no counties in the database: import admin units first (import_admin_units "
                "--default)"
            )
        prov_cols = [c for c in ("province", "province_zh", "province_en") if c in columns]
    else:
        lookup, by_pair, prov_cols = _province_lookup(), {}, []
        if not lookup:
            raise StatisticsImportError("no provinces in the database: import admin units first")
    what = "county" if county_level else "province"

    problems: list[str] = []
    areas: dict[int, float | None] = {}
    parsed: list[tuple[AdminUnit, Decimal, str, str, str, str]] = []
    report = StatisticsReport()
    seen: set[int] = set()
    for lineno, row in enumerate(reader, start=2):
        names = [(row.get(c) or "").strip() for c in name_cols]
        if any(n.lower() in NATIONAL_ROWS for n in names):
            report.skipped.append(f"line {lineno}: national total")
            continue
        provs = [(row.get(c) or "").strip().lower() for c in prov_cols]
        unit = next(
            (by_pair[(p, n.lower())] for p in provs for n in names if (p, n.lower()) in by_pair),
            None,
        ) or next((lookup[n.lower()] for n in names if n.lower() in lookup), None)
        if unit is None:
            problems.append(
                f"line {lineno}: unknown {what} {' / '.join(n for n in names if n)!r}"
                + (" (a name found in several provinces needs a province column)"
                   if county_level else "")
            )
            continue
        if unit.adcode in seen:
            problems.append(f"line {lineno}: {what} {unit.name_zh} appears twice")
        seen.add(unit.adcode)
        if value_col is not None:
            raw, area_unit = row.get(value_col[0]), value_col[1].value
        else:
            raw, area_unit = row.get("value"), (row.get("unit") or "").strip()
            if area_unit not in AreaUnit.values:
                problems.append(f"line {lineno}: unit {area_unit!r} not one of {AreaUnit.values}")
                continue
        try:
            value = Decimal((raw or "").strip()[:100])
            if value < 0 or not value.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            problems.append(f"line {lineno}: value {raw!r} is not a non-negative number")
            continue
        if value >= MAX_VALUE:
            problems.append(
                f"line {lineno}: value {raw!r} is too large (at most {MAX_VALUE - 1} {area_unit})"
            )
            continue
        hectares = value * HECTARES_PER_UNIT[AreaUnit(area_unit)]
        area_ha = _province_area_ha(unit, areas)
        if area_ha is not None and hectares > area_ha * AREA_SLACK:
            problems.append(
                f"line {lineno}: {hectares:,.0f} ha of cultivated land is more than the whole "
                f"area of {unit.name_zh} ({area_ha:,.0f} ha)"
            )
            continue
        status = (row.get("status") or "").strip().upper()
        if status not in StatisticStatus.values:
            problems.append(f"line {lineno}: status {status!r} not one of {StatisticStatus.values}")
            continue
        source = (row.get("source") or "").strip()
        if not source:
            problems.append(f"line {lineno}: empty source (every figure needs its citation)")
            continue
        parsed.append((unit, value, area_unit, status, source, (row.get("evidence") or "").strip()))
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise StatisticsImportError(f"{len(problems)} problem(s): {'; '.join(problems[:10])}{more}")
    if not parsed:
        raise StatisticsImportError(f"no {what} rows")
    with transaction.atomic():
        for unit, value, area_unit, status, source, evidence in parsed:
            _, created = OfficialStatistic.objects.update_or_create(
                campaign=campaign,
                province=unit,
                defaults={
                    "value": value,
                    "unit": area_unit,
                    "status": status,
                    "source": source,
                    "evidence": evidence,
                },
            )
            if created:
                report.created += 1
            else:
                report.updated += 1
    return report
