"""grid_build: blocks over land, majority province/county, idempotent, bulk-fast."""

from __future__ import annotations

import json
from io import StringIO

import pytest
import shapely
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.management import call_command

from mapping.geo.grid import Grid
from mapping.geo.gridbuild import grid_cover
from mapping.models import AdminLevel, AdminUnit, Block, Campaign


def _unit(level, adcode, name, geom, parent=None):
    return AdminUnit.objects.create(
        level=level,
        adcode=adcode,
        name_zh=name,
        parent=parent,
        geometry=MultiPolygon(Polygon.from_bbox(geom), srid=4326),
    )


def test_grid_cover_counts_blocks_touched_with_positive_area():
    g = Grid(0.05)
    # A 0.1 x 0.1 square aligned to the grid covers exactly 4 blocks; shifting it by a hair
    # makes it overlap 9.
    aligned = shapely.box(110.0, 30.0, 110.1, 30.1)
    assert len(grid_cover(g, [aligned])) == 4
    shifted = shapely.box(110.001, 30.001, 110.101, 30.101)
    cover = grid_cover(g, [shifted])
    assert len(cover) == 9
    # The corner block holds a 0.001 x 0.001 sliver: exact, not from sub-cells.
    corner = min(range(9), key=lambda i: cover.land_fraction[i])
    assert cover.land_fraction[corner] == pytest.approx(0.001 * 0.001 / 0.0025, rel=1e-3)


def test_grid_cover_majority_unit_and_slivers():
    g = Grid(0.05)
    west = shapely.box(110.0, 30.0, 110.03, 30.05)  # 60 % of the block
    east = shapely.box(110.03, 30.0, 110.05, 30.05)  # 40 %
    island = shapely.box(110.2001, 30.2001, 110.2002, 30.2002)  # far smaller than a sub-cell
    cover = grid_cover(g, [east, west, island])
    by_block = {
        (int(r), int(c)): int(u)
        for r, c, u in zip(cover.rows, cover.cols, cover.unit_index, strict=True)
    }
    home = g.block_at(110.01, 30.01)
    assert by_block[(home.row, home.col)] == 1  # west wins
    isl = g.block_at(110.20015, 30.20015)
    assert by_block[(isl.row, isl.col)] == 2
    assert len(cover) == 2


@pytest.mark.django_db
def test_grid_build_assigns_province_and_county_and_is_idempotent():
    p1 = _unit(AdminLevel.PROVINCE, 420000, "湖北省", (110.0, 30.0, 110.2, 30.1))
    p2 = _unit(AdminLevel.PROVINCE, 430000, "湖南省", (110.0, 29.9, 110.2, 30.0))
    c1 = _unit(AdminLevel.CITY, 420500, "宜昌市", (110.0, 30.0, 110.2, 30.1), p1)
    _unit(AdminLevel.COUNTY, 420501, "甲县", (110.0, 30.0, 110.1, 30.1), c1)
    _unit(AdminLevel.COUNTY, 420502, "乙县", (110.1, 30.0, 110.2, 30.1), c1)
    camp = Campaign.objects.create(slug="t", name="t", region="t", year=2020)
    camp.provinces.add(p1, p2)
    out = StringIO()
    call_command("grid_build", "--campaign", "t", "--json", "--no-progress", stdout=out)
    result = json.loads(out.getvalue())
    assert result["blocks"] == 8 + 8
    assert result["by_province"] == {"湖北省": 8, "湖南省": 8}
    b = Block.objects.get(
        campaign=camp,
        row=Grid(0.05).block_at(110.12, 30.02).row,
        col=Grid(0.05).block_at(110.12, 30.02).col,
    )
    assert b.county.name_zh == "乙县" and b.province_id == p1.id
    # Hunan has no counties loaded: its blocks are assigned to the province, county empty.
    assert Block.objects.filter(province=p2, county__isnull=True).count() == 8
    out2 = StringIO()
    call_command("grid_build", "--campaign", "t", "--json", "--no-progress", stdout=out2)
    again = json.loads(out2.getvalue())
    assert again["created"] == 0 and again["existing"] == 16
    assert Block.objects.filter(campaign=camp).count() == 16


def test_national_count_close_to_paper(shared_data):
    """The Tianditu boundaries give 390,278 blocks (paper: 389,777); see the README."""
    import geopandas as gpd

    df = gpd.read_file(shared_data / "boundaries" / "china_admin_tianditu.gpkg", layer="province")
    cover = grid_cover(Grid(0.05), list(df.geometry.values))
    assert abs(len(cover) - 389_777) / 389_777 < 0.005
