"""The selection's pre-rank in SQL: which blocks can change a round's picks, without reading all.

``learning.selection.select_spread`` walks the candidates from the highest priority down and
keeps the first of each spread cell until it has ``n``. Its picks are therefore the ``n`` best
cell-bests (the highest block of each cell), and only the blocks ranked above the ``n``-th pick
are ever looked at. The database computes every unlabelled block's signals and priority (the
same weighted mean as ``learning.selection.priority``, in the same floating-point order), takes
each spread cell's best priority, and returns the blocks whose priority reaches the ``n``-th
best of those per province, less a margin (``MARGIN``, far above the rounding of a few
additions): every block the walk can reach, and nothing below. A province with fewer than
``n`` cells returns all its blocks. The caller recomputes each returned block's priority and
cell from its rows and checks them against the database's (``prerank_agrees``); the walk over
the returned blocks then picks exactly what it would pick over all of them.

A national round (390,270 blocks, 780,540 scores) returns a few thousand blocks instead of
sending every score, with its JSON features, to Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import connection

from annotation.models import Assignment, Sample
from learning.models import BlockPrediction, BlockScore
from mapping.models import Block

# How far below the n-th cell-best's priority a block is still returned. Priorities are in
# [0, 1] and the database's differ from Python's by a few units of 1e-16 at most.
MARGIN = 1e-9
SIGNALS = ("p_incorrect", "low_confidence", "disagreement")


@dataclass(frozen=True)
class Ranked:
    """A block the walk may reach: its spread cell and priority as the database computed them."""

    province_id: int
    cell: tuple[int, int] | None
    priority: float


def _t(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _floor(expr: str) -> str:
    if connection.vendor == "postgresql":
        return f"floor({expr})"
    # SQLite's floor() depends on how the library was built; CAST truncates toward zero.
    whole = f"CAST({expr} AS INTEGER)"
    return f"({whole} - (CASE WHEN {expr} < {whole} THEN 1 ELSE 0 END))"


def _priority(weights: dict[str, float]) -> tuple[str, list[float]]:
    """``learning.selection.priority`` as SQL over the columns named as ``SIGNALS``: a signal
    that is NULL (or NaN) drops out with its weight; values are clamped to [0, 1]."""
    pg = connection.vendor == "postgresql"
    least, greatest = ("LEAST", "GREATEST") if pg else ("MIN", "MAX")
    num, den, params_n, params_d = [], [], [], []
    for name in SIGNALS:
        w = float(weights.get(name, 0.0))
        if w <= 0 or math.isnan(w):
            continue
        v = f"NULLIF({name}, 'NaN'::float8)" if pg else name
        clamped = f"{least}(1.0, {greatest}(0.0, {v}))"
        num.append(f"(CASE WHEN {v} IS NULL THEN 0.0 ELSE %s * {clamped} END)")
        den.append(f"(CASE WHEN {v} IS NULL THEN 0.0 ELSE %s END)")
        params_n.append(w)
        params_d.append(w)
    if not num:
        return "0.0", []
    total, wsum = " + ".join(num), " + ".join(den)
    return (
        f"(CASE WHEN ({wsum}) > 0 THEN ({total}) / ({wsum}) ELSE 0.0 END)",
        [*params_d, *params_n, *params_d],
    )


def selection_prerank(
    *, round_id: int, province_ids: list[int], n: int, cell_deg: float, per_degree: int,
    weights: dict[str, float],
) -> dict[int, dict[int, Ranked]]:  # fmt: skip
    """Per province of ``province_ids``, the unlabelled blocks the round scored that the spread
    walk for ``n`` picks can reach (see the module's docstring), by block id."""
    if n <= 0 or not province_ids:
        return {}
    pg = connection.vendor == "postgresql"
    iou = "s.iou_sources"  # the generated column (BlockScore.iou_sources), not the JSON
    # A block's centre from its grid row and column, the way mapping.geo.grid makes its edges
    # (an integer over the blocks per degree), so it equals the centre of its stored bounds.
    edge = "((CAST({k} AS {t}) - {o} * %s) / %s)"
    real = "float8" if pg else "REAL"
    west, east = (edge.format(k=k, t=real, o=180) for k in ('b."col"', '(b."col" + 1)'))
    south, north = (edge.format(k=k, t=real, o=90) for k in ('b."row"', '(b."row" + 1)'))
    nd = per_degree
    centre_p = [nd, nd, nd, nd]
    if cell_deg > 0:
        cx = _floor(f"(({west} + {east}) / 2.0) / %s")
        cy = _floor(f"(({south} + {north}) / 2.0) / %s")
        # _floor repeats its argument on SQLite: its parameters too.
        one = [*centre_p, cell_deg] * (1 if pg else 3)
        cell_sql, cell_p = f"{cx} AS cx, {cy} AS cy", [*one, *one]
    else:
        cell_sql, cell_p = "b.id AS cx, 0 AS cy", []
    pri, pri_p = _priority(weights)
    marks = ", ".join(["%s"] * len(province_ids))
    # ``pri``: each unlabelled block's priority (labelled blocks are dropped per block, after
    # the grouping, not per score); ``cells``: each spread cell's best priority; ``bar``: per
    # province the n-th best cell's, less the margin (NULL with fewer than n cells: all).
    sql = f"""
WITH pri AS (
  SELECT block, prov, cx, cy, {pri} AS pr FROM (
    SELECT block, prov, cx, cy, pinc AS p_incorrect, 1.0 - conf AS low_confidence,
      CASE WHEN n_iou > 0 THEN 1.0 - iou WHEN n > 1 THEN frange END AS disagreement
    FROM (
      SELECT b.id AS block, b.province_id AS prov, {cell_sql},
        MAX(s.p_incorrect) AS pinc, AVG(p.mean_confidence) AS conf,
        AVG({iou}) AS iou, COUNT({iou}) AS n_iou,
        MAX(p.cropland_fraction) - MIN(p.cropland_fraction) AS frange, COUNT(*) AS n
      FROM {_t(BlockScore)} s
      JOIN {_t(BlockPrediction)} p ON p.id = s.prediction_id
      JOIN {_t(Block)} b ON b.id = p.block_id
      WHERE p.round_id = %s AND b.province_id IN ({marks})
      GROUP BY b.id, b.province_id
    ) agg
    WHERE NOT EXISTS (SELECT 1 FROM {_t(Sample)} x WHERE x.block_id = agg.block)
      AND NOT EXISTS (SELECT 1 FROM {_t(Assignment)} x WHERE x.block_id = agg.block)
  ) sig
), cells AS (
  SELECT prov, MAX(pr) AS top FROM pri GROUP BY prov, cx, cy
), bar AS (
  SELECT prov, CASE WHEN COUNT(*) < %s THEN NULL ELSE MIN(top) - %s END AS t
  FROM (SELECT prov, top, ROW_NUMBER() OVER (PARTITION BY prov ORDER BY top DESC) AS rk
        FROM cells) q
  WHERE rk <= %s GROUP BY prov
)
SELECT pri.prov, pri.block, pri.cx, pri.cy, pri.pr
FROM pri JOIN bar ON bar.prov = pri.prov
WHERE bar.t IS NULL OR pri.pr >= bar.t
"""
    params = [*pri_p, *cell_p, round_id, *province_ids, n, MARGIN, n]
    out: dict[int, dict[int, Ranked]] = {}
    with connection.cursor() as cur:
        cur.execute(sql, params)
        for prov, block, cx, cy, pr in cur.fetchall():
            cell = (int(cx), int(cy)) if cell_deg > 0 else None
            out.setdefault(prov, {})[block] = Ranked(prov, cell, float(pr))
    return out


def prerank_agrees(ranked: Ranked, *, priority: float, cell: tuple[int, int] | None) -> bool:
    """Whether Python's priority and cell of a returned block are the database's (to well
    within ``MARGIN``): if not, the pre-rank cannot be trusted for its province."""
    return ranked.cell == cell and abs(ranked.priority - priority) <= MARGIN / 4
