"""Block, slope and province aggregation of a comparison, and its CSV/JSON forms.

Which pixels count where:

- **Pixel IoU, block AF and ED** use the pixels where both maps have data (the final map's
  valid pixels that the product also covers), so that a product's no-data or its edge does not
  read as missing cropland.
- **Areas** (block and province hectares) use each map's own valid pixels on the final grid.
- A **province's area** is the sum over the blocks assigned to it (a block belongs to the
  province holding most of it, as in the grid), which is how the stopping rule counts area.
  Against the official statistic it is only judged when the comparison covers every block of
  the province (``complete``); the ±10 % counts are over complete provinces with a statistic.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.io import DatasetReader

from learning.product.core.compare.classes import ClassMapping
from learning.product.core.compare.finalmap import FinalBlock
from learning.product.core.compare.grids import Bounds, pixel_size_m, read_on_grid
from learning.product.core.compare.metrics import (
    ZERO,
    Confusion,
    area_fraction,
    boundary_fraction,
    confusion,
    edge_density,
    relative_deviation,
)

# Slope classes of China's cultivated-land grading (TNLS): <=2, 2-6, 6-15, 15-25, >25 degrees.
SLOPE_EDGES: tuple[float, ...] = (0.0, 2.0, 6.0, 15.0, 25.0, 90.0)
# Relative deviation classes; (T - C) / C is never below -1 (T >= 0).
DEVIATION_EDGES: tuple[float, ...] = (-1.0, -0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0, math.inf)
WITHIN = 0.10  # "within ±10 % of the official statistic"


@dataclass(frozen=True)
class BlockRef:
    """A block to compare: its id, code, province adcode, lon/lat bounds and median slope."""

    key: int
    code: str
    province: int | None
    bounds: Bounds
    slope: float = math.nan


@dataclass(frozen=True)
class BlockResult:
    key: int
    code: str
    province: int | None
    slope: float
    width: int
    height: int
    dx_m: float
    dy_m: float
    n_common: int
    tp: int
    fp: int
    fn: int
    tn: int
    iou: float
    af_final: float
    af_product: float
    ed_final: float
    ed_product: float
    bf_final: float
    bf_product: float
    dev_af: float
    dev_ed: float
    final_ha: float
    product_ha: float

    @property
    def confusion(self) -> Confusion:
        return Confusion(self.tp, self.fp, self.fn, self.tn)


def compare_block(*, ref: BlockRef, final: FinalBlock, product: DatasetReader,
                  classes: ClassMapping) -> BlockResult:
    """Resample the product onto the final block's grid (nearest) and measure both."""
    raster = final.raster
    on = read_on_grid(product, raster)
    prod_crop = classes.cropland(on.values) & on.valid
    common = final.valid & on.valid
    dx, dy = pixel_size_m(raster)
    ha = dx * dy / 10_000.0
    conf = confusion(prod_crop, final.cropland, common)
    af_f, af_p = area_fraction(final.cropland, common), area_fraction(prod_crop, common)
    ed_f = edge_density(final.cropland, dx, dy, common)
    ed_p = edge_density(prod_crop, dx, dy, common)
    return BlockResult(
        key=ref.key, code=ref.code, province=ref.province, slope=ref.slope,
        width=raster.width, height=raster.height, dx_m=dx, dy_m=dy,
        n_common=int(np.count_nonzero(common)),
        tp=conf.tp, fp=conf.fp, fn=conf.fn, tn=conf.tn, iou=conf.iou,
        af_final=af_f, af_product=af_p, ed_final=ed_f, ed_product=ed_p,
        bf_final=boundary_fraction(final.cropland, common),
        bf_product=boundary_fraction(prod_crop, common),
        dev_af=relative_deviation(af_p, af_f), dev_ed=relative_deviation(ed_p, ed_f),
        final_ha=int(np.count_nonzero(final.cropland & final.valid)) * ha,
        product_ha=int(np.count_nonzero(prod_crop)) * ha,
    )


# --- slope histogram ---------------------------------------------------------------------------


def _label(lo: float, hi: float, unit: str = "") -> str:
    if math.isinf(hi):
        return f">{lo:g}{unit}"
    return f"{lo:g}–{hi:g}{unit}"


@dataclass(frozen=True)
class SlopeBin:
    label: str
    low: float
    high: float
    n: int  # blocks in the slope class with a defined deviation
    n_undefined: int  # blocks in the class whose final map has no cropland (C = 0)
    mean: float
    median: float
    q25: float
    q75: float
    counts: list[int]  # per deviation class (DEVIATION_EDGES)


@dataclass(frozen=True)
class SlopeHistogram:
    measure: str  # "af" or "ed"
    slope_edges: list[float]
    deviation_edges: list[float]
    deviation_labels: list[str]
    bins: list[SlopeBin]
    n_no_slope: int  # blocks without a median slope (no DEM over them)


def _stat(values: np.ndarray[Any, Any], q: float) -> float:
    return float(np.quantile(values, q)) if values.size else math.nan


def slope_histogram(results: Sequence[BlockResult], measure: str, *,
                    slope_edges: Sequence[float] = SLOPE_EDGES,
                    deviation_edges: Sequence[float] = DEVIATION_EDGES) -> SlopeHistogram:
    """Deviation of ``measure`` ("af" or "ed") per slope class: statistics and a histogram.

    Slope classes are half-open [low, high) except the last, which includes its high edge;
    deviation classes likewise, the last one open to +inf.
    """
    if measure not in ("af", "ed"):
        raise ValueError(f"measure must be 'af' or 'ed', got {measure!r}")
    slopes = np.array([r.slope for r in results], dtype=np.float64)
    devs = np.array([getattr(r, f"dev_{measure}") for r in results], dtype=np.float64)
    s_edges = np.asarray(slope_edges, dtype=np.float64)
    d_edges = np.asarray(deviation_edges, dtype=np.float64)
    bins = []
    for i in range(len(s_edges) - 1):
        lo, hi = s_edges[i], s_edges[i + 1]
        last = i == len(s_edges) - 2
        in_bin = (slopes >= lo) & ((slopes <= hi) if last else (slopes < hi))
        d = devs[in_bin]
        defined = d[np.isfinite(d)]
        idx = np.searchsorted(d_edges, defined, side="right") - 1
        idx = np.clip(idx, 0, len(d_edges) - 2)
        counts = np.bincount(idx, minlength=len(d_edges) - 1)
        bins.append(SlopeBin(
            label=_label(float(lo), float(hi), "°"), low=float(lo), high=float(hi),
            n=int(defined.size), n_undefined=int(d.size - defined.size),
            mean=float(defined.mean()) if defined.size else math.nan,
            median=_stat(defined, 0.5), q25=_stat(defined, 0.25), q75=_stat(defined, 0.75),
            counts=[int(c) for c in counts],
        ))
    labels = [_label(float(d_edges[i]), float(d_edges[i + 1])) for i in range(len(d_edges) - 1)]
    return SlopeHistogram(
        measure=measure, slope_edges=[float(x) for x in s_edges],
        deviation_edges=[float(x) for x in d_edges], deviation_labels=labels, bins=bins,
        n_no_slope=int(np.count_nonzero(~np.isfinite(slopes))),
    )


# --- provinces ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvinceInput:
    adcode: int
    name: str
    blocks_total: int
    official_ha: float | None = None
    official_status: str = ""


@dataclass(frozen=True)
class ProvinceRow:
    adcode: int
    name: str
    blocks_total: int
    blocks_compared: int
    complete: bool
    final_ha: float
    product_ha: float
    official_ha: float | None
    official_status: str
    final_vs_official: float  # (final - official) / official; NaN without a statistic
    product_vs_official: float
    final_within: bool | None  # None: not judged (incomplete or no statistic)
    product_within: bool | None
    iou: float


def _within(dev: float, judged: bool) -> bool | None:
    if not judged or math.isnan(dev):
        return None
    # Round away float noise so that exactly 10 % counts as within.
    return abs(round(dev, 12)) <= WITHIN


def province_rows(results: Sequence[BlockResult], provinces: Iterable[ProvinceInput]
                  ) -> list[ProvinceRow]:
    """One row per province with compared blocks; areas against the official statistic."""
    rows = []
    for p in provinces:
        mine = [r for r in results if r.province == p.adcode]
        if not mine:
            continue
        final_ha = math.fsum(r.final_ha for r in mine)
        product_ha = math.fsum(r.product_ha for r in mine)
        conf = sum((r.confusion for r in mine), ZERO)
        complete = len(mine) >= p.blocks_total
        off = p.official_ha
        dev_f = relative_deviation(final_ha, off) if off else math.nan
        dev_p = relative_deviation(product_ha, off) if off else math.nan
        judged = complete and bool(off)
        rows.append(ProvinceRow(
            adcode=p.adcode, name=p.name, blocks_total=p.blocks_total,
            blocks_compared=len(mine), complete=complete, final_ha=final_ha,
            product_ha=product_ha, official_ha=off, official_status=p.official_status,
            final_vs_official=dev_f, product_vs_official=dev_p,
            final_within=_within(dev_f, judged), product_within=_within(dev_p, judged),
            iou=conf.iou,
        ))
    return rows


# --- the whole report --------------------------------------------------------------------------


def _finite(values: Iterable[float]) -> np.ndarray[Any, Any]:
    a = np.array(list(values), dtype=np.float64)
    return a[np.isfinite(a)]


@dataclass
class Report:
    """Everything a comparison run measured (JSON-ready through :meth:`to_json`)."""

    blocks_compared: int
    blocks_not_covered: int  # blocks the final map or the product does not cover
    pixel: dict[str, float]
    block: dict[str, float]
    slope_af: SlopeHistogram
    slope_ed: SlopeHistogram
    provinces: list[ProvinceRow]
    provinces_judged: int
    final_within_10pct: int
    product_within_10pct: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = _jsonable(asdict(self))
        return out


def _jsonable(x: Any) -> Any:
    """NaN and inf are not JSON: write them as null (inf only appears as a class edge)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def build_report(results: Sequence[BlockResult], provinces: Sequence[ProvinceInput], *,
                 blocks_not_covered: int = 0) -> Report:
    conf = sum((r.confusion for r in results), ZERO)
    dev_af = _finite(r.dev_af for r in results)
    dev_ed = _finite(r.dev_ed for r in results)
    rows = province_rows(results, provinces)
    judged = [r for r in rows if r.final_within is not None]

    def med(a: np.ndarray[Any, Any]) -> float:
        return float(np.median(a)) if a.size else math.nan

    def mean(a: np.ndarray[Any, Any]) -> float:
        return float(a.mean()) if a.size else math.nan

    notes = []
    if results and all(math.isnan(r.slope) for r in results):
        notes.append("no median slope: the campaign has no DEM over the compared blocks")
    return Report(
        blocks_compared=len(results),
        blocks_not_covered=blocks_not_covered,
        pixel={"tp": conf.tp, "fp": conf.fp, "fn": conf.fn, "tn": conf.tn, "iou": conf.iou},
        block={
            "af_final_mean": mean(_finite(r.af_final for r in results)),
            "af_product_mean": mean(_finite(r.af_product for r in results)),
            "ed_final_mean": mean(_finite(r.ed_final for r in results)),
            "ed_product_mean": mean(_finite(r.ed_product for r in results)),
            "dev_af_mean": mean(dev_af), "dev_af_median": med(dev_af),
            "dev_ed_mean": mean(dev_ed), "dev_ed_median": med(dev_ed),
            "dev_undefined": sum(1 for r in results if math.isnan(r.dev_af)),
        },
        slope_af=slope_histogram(results, "af"),
        slope_ed=slope_histogram(results, "ed"),
        provinces=rows,
        provinces_judged=len(judged),
        final_within_10pct=sum(1 for r in judged if r.final_within),
        product_within_10pct=sum(1 for r in judged if r.product_within),
        notes=notes,
    )


BLOCK_COLUMNS = [f for f in BlockResult.__dataclass_fields__]
PROVINCE_COLUMNS = [f for f in ProvinceRow.__dataclass_fields__]


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return "" if v is None else v


def write_blocks_csv(results: Iterable[BlockResult], dest: Path) -> None:
    with open(dest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(BLOCK_COLUMNS)
        for r in results:
            w.writerow([_cell(getattr(r, c)) for c in BLOCK_COLUMNS])


def write_provinces_csv(rows: Iterable[ProvinceRow], dest: Path) -> None:
    with open(dest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(PROVINCE_COLUMNS)
        for r in rows:
            w.writerow([_cell(getattr(r, c)) for c in PROVINCE_COLUMNS])
