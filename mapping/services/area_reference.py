"""The official figure a province's mapped area is compared with: the same land on both sides.

A campaign that covers a whole province compares with the province's figure. One that covers
part of it (the demo covers about 5-10 % of each of its provinces) compares with the sum of
the figures of the counties it covers, and only the mapped area of those counties' blocks: a
county counts as covered when the campaign's blocks cover ``COVERED_MIN`` of its area, or
when its figure is itself for the campaign's part of it (``campaign_part``, the demo's DEMO
figures). Without such figures the area criterion is "not comparable", with the share of the
province the campaign covers, instead of a ratio that could never pass.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mapping.models import AdminLevel, AdminUnit, Block, Campaign, OfficialStatistic

COVERED_MIN = 0.97  # of a unit's area under the campaign's blocks to call it covered
# The least trustworthy status wins when figures are summed (DEMO is never official).
STATUS_ORDER = (
    "VERIFIED", "VERIFIED_ROUNDED", "WEAKLY_VERIFIED", "UNVERIFIED", "OTHER_SOURCE", "DEMO",
)


@dataclass(frozen=True)
class AreaReference:
    scope: str  # "province", "counties" or "none"
    official_ha: float | None
    status: str  # "" when there is no figure
    coverage_share: float  # of the province's area under the campaign's blocks
    counties: list[int] = field(default_factory=list)  # adcodes summed (scope "counties")
    block_ids: set[int] | None = None  # blocks whose mapped area counts (None: all)
    footprint_share: float | None = None  # of the campaign's blocks inside the summed counties

    def as_dict(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "official_ha": self.official_ha,
            "status": self.status,
            "coverage_share": round(self.coverage_share, 4),
            "counties": self.counties,
            "footprint_share": None if self.footprint_share is None
            else round(self.footprint_share, 4),
        }


def _weakest(statuses: list[str]) -> str:
    known = [s for s in statuses if s in STATUS_ORDER]
    return max(known, key=STATUS_ORDER.index) if known else (statuses[0] if statuses else "")


def area_reference(*, campaign: Campaign, province: AdminUnit) -> AreaReference:
    """Which official figure the province's mapped area is compared with (see the module)."""
    cell = float(campaign.block_size_deg) ** 2
    rows = list(
        Block.objects.filter(campaign=campaign, province=province).values_list(
            "pk", "county_id", "land_fraction"
        )
    )
    covered_deg2 = sum(cell * float(lf) for _, _, lf in rows)
    prov_area = float(province.geometry.area) if province.geometry else 0.0
    coverage = min(1.0, covered_deg2 / prov_area) if prov_area > 0 else 0.0
    stats = {
        s.province_id: s
        for s in OfficialStatistic.objects.filter(campaign=campaign).select_related("province")
    }
    prov_stat = stats.get(province.pk)
    if prov_stat is not None and coverage >= COVERED_MIN and prov_stat.hectares > 0:
        return AreaReference("province", float(prov_stat.hectares), prov_stat.status, coverage)
    if prov_stat is not None and prov_stat.campaign_part and prov_stat.hectares > 0:
        return AreaReference("province", float(prov_stat.hectares), prov_stat.status, coverage)
    by_county: dict[int, list[int]] = defaultdict(list)
    county_deg2: dict[int, float] = defaultdict(float)
    for pk, county_id, lf in rows:
        if county_id is not None:
            by_county[county_id].append(pk)
            county_deg2[county_id] += cell * float(lf)
    units = {
        u.pk: u for u in AdminUnit.objects.filter(pk__in=list(by_county), level=AdminLevel.COUNTY)
    }
    summed: list[int] = []
    for county_id in sorted(by_county):
        stat, unit = stats.get(county_id), units.get(county_id)
        if stat is None or unit is None:
            continue
        area = float(unit.geometry.area) if unit.geometry else 0.0
        if stat.campaign_part or (area > 0 and county_deg2[county_id] / area >= COVERED_MIN):
            summed.append(county_id)
    if summed:
        block_ids = {pk for c in summed for pk in by_county[c]}
        return AreaReference(
            "counties",
            sum(float(stats[c].hectares) for c in summed),
            _weakest([stats[c].status for c in summed]),
            coverage,
            counties=sorted(units[c].adcode for c in summed),
            block_ids=block_ids,
            footprint_share=len(block_ids) / len(rows) if rows else None,
        )
    return AreaReference("none", None, prov_stat.status if prov_stat else "", coverage)
