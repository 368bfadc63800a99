"""Build a campaign's block grid over its provinces' land, with bulk inserts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from django.contrib.gis.geos import Polygon
from django.db import transaction

from mapping.geo.grid import BlockId, grid_for
from mapping.geo.gridbuild import GridCover, grid_cover
from mapping.models import AdminLevel, AdminUnit, Block, Campaign

BATCH = 5000


class GridBuildError(Exception):
    pass


@dataclass
class GridBuildReport:
    campaign: str
    blocks: int
    created: int
    existing: int
    provinces: int
    by_province: dict[str, int]


def _campaign_units(campaign: Campaign) -> tuple[list[AdminUnit], dict[int, int]]:
    """Counties of the campaign's provinces (or the provinces themselves when no counties
    are loaded) and the province id of each unit."""
    provinces = list(campaign.provinces.all()) or list(
        AdminUnit.objects.filter(level=AdminLevel.PROVINCE)
    )
    if not provinces:
        raise GridBuildError("no provinces: run import_admin_units (or load_demo) first")
    province_ids = {p.id for p in provinces}
    levels = dict(AdminUnit.objects.values_list("id", "level"))
    parent_of = dict(AdminUnit.objects.values_list("id", "parent_id"))

    def province_id_of(unit_id: int) -> int | None:
        u: int | None = unit_id
        while u is not None and levels[u] != AdminLevel.PROVINCE:
            u = parent_of[u]
        return u

    province_of: dict[int, int] = {}
    chosen: list[AdminUnit] = []
    for c in AdminUnit.objects.filter(level=AdminLevel.COUNTY):
        p = province_id_of(c.id)
        if p is not None and p in province_ids:
            chosen.append(c)
            province_of[c.id] = p
    covered = set(province_of.values())
    # Provinces without counties in the database take part as whole units.
    for p in provinces:
        if p.id not in covered:
            chosen.append(p)
            province_of[p.id] = p.id
    return chosen, province_of


def grid_build(
    *,
    campaign: Campaign,
    subdivisions: int = 8,
    within: list[tuple[float, float, float, float]] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> GridBuildReport:
    """Create every block whose area intersects the campaign's land; keep existing blocks.

    ``within`` limits the blocks to those inside any of the given lon/lat boxes (the demo
    uses it for a few hundred blocks; a real campaign covers its whole region).
    """
    report = progress or (lambda _s, _d, _t: None)
    units, province_of = _campaign_units(campaign)
    geoms = [shapely.from_wkb(bytes(u.geometry.wkb)) for u in units]
    grid = grid_for(campaign.block_size_deg)
    cover = grid_cover(
        grid,
        geoms,
        subdivisions=subdivisions,
        progress=lambda stage, frac: report(stage, int(frac * 100), 100),
    )
    if within:
        keep = np.zeros(len(cover), dtype=bool)
        for w, s_, e, n in within:
            r0, c0 = grid.block_at(w, s_).row, grid.block_at(w, s_).col
            r1, c1 = grid.block_at(e, n).row, grid.block_at(e, n).col
            keep |= (cover.rows >= r0) & (cover.rows < r1) & (cover.cols >= c0) & (cover.cols < c1)
        cover = GridCover(
            rows=cover.rows[keep],
            cols=cover.cols[keep],
            unit_index=cover.unit_index[keep],
            land_fraction=cover.land_fraction[keep],
        )
    unit_ids = np.array([u.id for u in units])
    is_county = np.array([u.level == AdminLevel.COUNTY for u in units])
    unit_id = unit_ids[cover.unit_index]
    county_id = np.where(is_county[cover.unit_index], unit_id, 0)
    province_id = np.array([province_of[int(u)] for u in unit_ids])[cover.unit_index]

    existing = set(Block.objects.filter(campaign=campaign).values_list("row", "col"))
    n = len(cover)
    created = 0
    with transaction.atomic():
        batch: list[Block] = []
        for i in range(n):
            r, c = int(cover.rows[i]), int(cover.cols[i])
            if (r, c) in existing:
                continue
            batch.append(
                Block(
                    campaign=campaign,
                    row=r,
                    col=c,
                    geometry=Polygon.from_bbox(grid.bounds(BlockId(r, c))),
                    province_id=int(province_id[i]),
                    county_id=int(county_id[i]) or None,
                    land_fraction=float(cover.land_fraction[i]),
                )
            )
            if len(batch) >= BATCH:
                Block.objects.bulk_create(batch, batch_size=BATCH)
                created += len(batch)
                batch = []
                report("insert", i + 1, n)
        if batch:
            Block.objects.bulk_create(batch, batch_size=BATCH)
            created += len(batch)
        report("insert", n, n)
    names = dict(
        AdminUnit.objects.filter(id__in=set(province_id.tolist())).values_list("id", "name_zh")
    )
    ids, counts = np.unique(province_id, return_counts=True)
    return GridBuildReport(
        campaign=campaign.slug,
        blocks=n,
        created=created,
        existing=n - created,
        provinces=len(ids),
        by_province={names[int(i)]: int(k) for i, k in zip(ids, counts, strict=True)},
    )
