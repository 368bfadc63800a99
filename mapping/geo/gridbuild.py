"""Which grid blocks cover a region's land, and which province and county hold most of each.

Pure (numpy, shapely, rasterio): units in, arrays out. The work is split so that it stays fast
for a whole country (about 390,000 blocks of 0.05 degree for China):

1. The units are rasterised at ``subdivisions`` x ``subdivisions`` sub-cells per block (pixel
   centres); the majority unit of a block's sub-cells is its county, and the covered share of
   sub-cells estimates its land fraction.
2. Blocks that a unit touches but does not fill (coast, borders, islands smaller than a
   sub-cell) are settled exactly with shapely: a block is kept only if its area intersects a
   unit, and a block that no sub-cell centre fell in takes the unit with the largest exact
   intersection area.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from shapely.geometry.base import BaseGeometry

from mapping.geo.grid import ORIGIN_LAT, ORIGIN_LON, Grid

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class GridCover:
    """Blocks of the region: parallel arrays, one entry per block."""

    rows: npt.NDArray[np.int32]
    cols: npt.NDArray[np.int32]
    unit_index: npt.NDArray[np.int32]  # index into the units passed in
    land_fraction: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.rows.size)


def grid_cover(
    grid: Grid,
    units: Sequence[BaseGeometry],
    *,
    subdivisions: int = 8,
    progress: Progress | None = None,
) -> GridCover:
    """Every block whose area intersects one of ``units`` (polygons in lon/lat).

    ``unit_index[i]`` is the unit holding most of block i. Pass counties to get counties; a
    caller maps them to provinces through its own table.
    """
    if not units:
        raise ValueError("no units to build the grid over")
    report = progress or (lambda _stage, _frac: None)
    geoms = np.asarray(units, dtype=object)
    if not all(isinstance(g, BaseGeometry) and not g.is_empty for g in geoms):
        raise ValueError("every unit needs a non-empty geometry")
    s = int(subdivisions)
    if not 1 <= s <= 32:
        raise ValueError("subdivisions must be between 1 and 32")

    west, south, east, north = shapely.total_bounds(geoms)
    rows_range, cols_range = grid.blocks_in_bounds(west, south, east, north)
    r0, c0 = rows_range.start, cols_range.start
    n_rows, n_cols = len(rows_range), len(cols_range)
    cell = grid.size_deg / s
    n = grid.per_degree
    origin_west = ORIGIN_LON + c0 / n
    origin_north = ORIGIN_LAT + (r0 + n_rows) / n
    transform = from_origin(origin_west, origin_north, cell, cell)
    shape = (n_rows * s, n_cols * s)
    report("rasterise", 0.0)

    # Unit ids are 1-based in the raster; 0 is outside every unit.
    dtype = np.int16 if len(geoms) < 32000 else np.int32
    labels = rasterize(
        ((g, i + 1) for i, g in enumerate(geoms)),
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype=dtype,
        all_touched=False,
    )
    report("rasterise", 0.5)
    touched = rasterize(
        ((g, 1) for g in geoms),
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype=np.uint8,
        all_touched=True,
    )
    report("rasterise", 1.0)

    # (block row from north, s, block col, s) -> (blocks, s*s); the raster runs north to south.
    sub = labels.reshape(n_rows, s, n_cols, s).transpose(0, 2, 1, 3).reshape(-1, s * s)
    touched_any = touched.reshape(n_rows, s, n_cols, s).any(axis=(1, 3)).ravel()
    del labels, touched
    covered = (sub > 0).sum(axis=1)
    lo = sub.min(axis=1)
    hi = sub.max(axis=1)
    unit = np.zeros(sub.shape[0], dtype=np.int64)
    uniform = (lo == hi) & (lo > 0)
    unit[uniform] = lo[uniform]
    mixed = np.flatnonzero((covered > 0) & ~uniform)
    for start in range(0, mixed.size, 50000):
        idx = mixed[start : start + 50000]
        unit[idx] = _majority_nonzero(sub[idx])
        report("majority", min(1.0, (start + 50000) / max(mixed.size, 1)))
    fraction = covered.astype(np.float32) / (s * s)

    # Blocks that a unit touches but no sub-cell centre fell in (slivers along coasts and
    # borders, small islands) are settled exactly: kept if the area of the intersection is
    # positive, given the unit with the largest exact intersection and an exact fraction.
    keep = covered > 0
    sliver = np.flatnonzero(touched_any & (covered == 0))
    if sliver.size:
        prow = sliver // n_cols
        pcol = sliver % n_cols
        bw = origin_west + pcol * grid.size_deg
        bn = origin_north - prow * grid.size_deg
        boxes = shapely.box(bw, bn - grid.size_deg, bw + grid.size_deg, bn)
        tree = shapely.STRtree(geoms)
        box_i, unit_i = tree.query(boxes, predicate="intersects")
        # "intersects" includes touching along an edge; keep only pairs with positive area.
        area = shapely.area(shapely.intersection(boxes[box_i], geoms[unit_i]))
        positive = area > 0
        box_i, unit_i, area = box_i[positive], unit_i[positive], area[positive]
        if box_i.size:
            order = np.lexsort((-area, box_i))
            bi, ui = box_i[order], unit_i[order]
            first = np.r_[True, bi[1:] != bi[:-1]]
            keep[sliver[bi[first]]] = True
            unit[sliver[bi[first]]] = ui[first] + 1
            totals = np.bincount(box_i, weights=area, minlength=sliver.size)
            fraction[sliver] = (totals / (grid.size_deg * grid.size_deg)).astype(np.float32)
        report("exact", 1.0)

    kept = np.flatnonzero(keep & (unit > 0))
    row_from_north = kept // n_cols
    col = kept % n_cols
    return GridCover(
        rows=(r0 + n_rows - 1 - row_from_north).astype(np.int32),
        cols=(c0 + col).astype(np.int32),
        unit_index=(unit[kept] - 1).astype(np.int32),
        land_fraction=np.minimum(fraction[kept], 1.0).astype(np.float32),
    )


def _majority_nonzero(sub: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """Most frequent non-zero value of each row (ties: the smallest value)."""
    srt = np.sort(sub.astype(np.int64), axis=1)
    n, k = srt.shape
    # Run lengths along each sorted row; zeros are given length 0 so they never win.
    change = np.ones_like(srt, dtype=bool)
    change[:, 1:] = srt[:, 1:] != srt[:, :-1]
    run_id = np.cumsum(change, axis=1) - 1
    flat = (np.arange(n)[:, None] * k + run_id).ravel()
    counts = np.bincount(flat, weights=(srt.ravel() != 0).astype(np.float64), minlength=n * k)
    counts = counts.reshape(n, k)
    best_run = counts.argmax(axis=1)
    # Value of the best run: first element of each run.
    pos = np.argmax(run_id == best_run[:, None], axis=1)
    best: npt.NDArray[np.int64] = srt[np.arange(n), pos]
    return best
