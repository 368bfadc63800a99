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

from dataclasses import dataclass, field

from django.db.models import Count, Sum

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
    county_ids: list[int] | None = None  # the summed counties' ids (scope "counties")

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
    """Which official figure the province's mapped area is compared with (see the module).
    Counts and land areas are SQL aggregates (a national province has tens of thousands of
    blocks)."""
    cell = float(campaign.block_size_deg) ** 2
    blocks = Block.objects.filter(campaign=campaign, province=province)
    per_county = {
        county_id: (n, float(lf or 0.0))
        for county_id, n, lf in blocks.values_list("county_id")
        .annotate(n=Count("id"), lf=Sum("land_fraction"))
        .order_by()
    }
    n_blocks = sum(n for n, _ in per_county.values())
    covered_deg2 = cell * sum(lf for _, lf in per_county.values())
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
    units = {
        u.pk: u
        for u in AdminUnit.objects.filter(
            pk__in=[c for c in per_county if c is not None], level=AdminLevel.COUNTY
        )
    }
    summed: list[int] = []
    for county_id in sorted(c for c in per_county if c is not None):
        stat, unit = stats.get(county_id), units.get(county_id)
        if stat is None or unit is None:
            continue
        area = float(unit.geometry.area) if unit.geometry else 0.0
        if stat.campaign_part or (
            area > 0 and cell * per_county[county_id][1] / area >= COVERED_MIN
        ):
            summed.append(county_id)
    if summed:
        block_ids = set(blocks.filter(county_id__in=summed).values_list("pk", flat=True))
        return AreaReference(
            "counties",
            sum(float(stats[c].hectares) for c in summed),
            _weakest([stats[c].status for c in summed]),
            coverage,
            counties=sorted(units[c].adcode for c in summed),
            block_ids=block_ids,
            footprint_share=len(block_ids) / n_blocks if n_blocks else None,
            county_ids=summed,
        )
    return AreaReference("none", None, prov_stat.status if prov_stat else "", coverage)
