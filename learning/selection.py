"""Pure: rank candidate blocks for labelling and spread the picks over a province.

No Django here (import-linter contract): candidates in, picks out, so the same rule runs in a
worker, a benchmark or the savings simulation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """One block that could be labelled next, with what the round measured on it.

    Each signal is in [0, 1] (higher means more worth labelling) or None when unmeasured.
    """

    block_id: int
    lon: float
    lat: float
    p_incorrect: float | None
    low_confidence: float | None
    disagreement: float | None


@dataclass(frozen=True)
class Pick:
    block_id: int
    score: float
    cell: tuple[int, int] | None


def priority(c: Candidate, weights: dict[str, float]) -> float:
    """Weighted mean of the measured signals; an unmeasured signal drops out (its weight too),
    so a round without a correctness model still ranks by confidence and disagreement."""
    total = 0.0
    wsum = 0.0
    for name in ("p_incorrect", "low_confidence", "disagreement"):
        v = getattr(c, name)
        w = float(weights.get(name, 0.0))
        if v is None or w <= 0 or math.isnan(v):
            continue
        total += w * min(1.0, max(0.0, float(v)))
        wsum += w
    return total / wsum if wsum else 0.0


def select_spread(
    candidates: Sequence[Candidate], *, n: int, cell_deg: float, weights: dict[str, float]
) -> list[Pick]:
    """The ``n`` best candidates with at most one per ``cell_deg`` cell (no clumps).

    Greedy by score (ties broken by block id, so a round is repeatable). When the cells run out
    before ``n`` picks, fewer are returned: spreading matters more than the count. ``cell_deg``
    0 turns spreading off.
    """
    if n <= 0:
        return []
    scored = sorted(
        ((priority(c, weights), c) for c in candidates), key=lambda sc: (-sc[0], sc[1].block_id)
    )
    taken: set[tuple[int, int]] = set()
    out: list[Pick] = []
    for score, c in scored:
        cell = None
        if cell_deg > 0:
            cell = (math.floor(c.lon / cell_deg), math.floor(c.lat / cell_deg))
            if cell in taken:
                continue
            taken.add(cell)
        out.append(Pick(block_id=c.block_id, score=round(score, 6), cell=cell))
        if len(out) >= n:
            break
    return out
