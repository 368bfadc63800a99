"""The selecting stage: the next blocks to label per province still to do, by priority and
spread out, read through the database's pre-rank.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, FloatField, Func, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, NullIf

from annotation.models import Assignment, Sample
from learning.models import (
    BlockScore,
    BlockSelection,
    ProvinceDecision,
    ProvinceRoundResult,
    Round,
    RoundState,
)
from learning.selection import Candidate, priority, select_spread
from learning.services.config import RoundConfig, round_config_parse
from learning.services.data import json_safe
from learning.services.round.finish import round_finish
from learning.services.round.machine import round_get
from learning.services.round.progress import round_log, round_timing_add
from learning.services.selection_prerank import Ranked, prerank_agrees, selection_prerank
from mapping.geo.grid import grid_for

log = logging.getLogger(__name__)


ScoredBlocks = dict[int, tuple[float, float, list[tuple[Any, ...]]]]


def _plain_rows(qs: Any, chunk: int = 5000) -> Iterator[tuple[Any, ...]]:
    """The rows of a ``values_list`` query of plain numbers (no converters to apply) through
    a client-side cursor. ``iterator()`` declares a server-side cursor on PostgreSQL, which
    PostgreSQL never runs with parallel workers: the 780,540 scores of a national round took
    20 s to read that way and 9 s so (load ~8 on 2 cores), for ~80 MB held by the client
    library while they are read. A query that can match nothing (``__in=[]``: every province
    converged) has no SQL: no rows, as ``iterator()`` gives."""
    try:
        sql, params = qs.query.sql_with_params()
    except EmptyResultSet:
        return
    with connection.cursor() as cur:
        cur.execute(sql, params)
        while rows := cur.fetchmany(chunk):
            yield from rows


def _selection_scores(
    *, rnd: Round, province_ids: list[int], labelled: set[int], block_ids: list[int] | None = None
) -> Iterator[tuple[int, ScoredBlocks]]:
    """Per province of ``province_ids`` (in id order), its unlabelled blocks the round scored:
    each block's centroid and, per scored prediction, (p_incorrect, mean confidence, the
    sources' IoU feature, cropland fraction). One pass over the round's scores as plain
    values, a province at a time (a national round has ~800,000 scores: no model instances,
    and no query per province, which would read every prediction of the round again).
    ``block_ids``: only these blocks."""
    # A block's centre from the bounding box stored with its geometry (blocks are the grid's
    # rectangles, whose centroid it is): ST_Centroid of every block was a third of the read.
    names = {"postgresql": ("ST_XMin", "ST_XMax", "ST_YMin", "ST_YMax")}
    x0, x1, y0, y1 = names.get(connection.vendor, ("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"))

    def centre(low: str, high: str) -> Any:
        def edge(name: str) -> Func:
            return Func(F("prediction__block__geometry"), function=name,
                        output_field=FloatField())  # fmt: skip

        return (edge(low) + edge(high)) / Value(2.0)

    scores = BlockScore.objects.filter(
        prediction__round=rnd, prediction__block__province_id__in=province_ids
    )
    if block_ids is not None:
        scores = scores.filter(prediction__block_id__in=block_ids)
    rows = (
        scores
        # The IoU feature as a number from the database: read as a JSON key, each of a
        # national round's 780,000 values went through json.loads (a third of the selection).
        # SQLite's text of a JSON null is 'null' (it would cast to 0.0), PostgreSQL's is NULL.
        .annotate(
            lon=centre(x0, x1), lat=centre(y0, y1),
            iou=Cast(NullIf(KeyTextTransform("iou_sources", "features"), Value("null")),
                     FloatField()),
        )  # fmt: skip
        .order_by("prediction__block__province_id")
        .values_list(
            "prediction__block__province_id", "prediction__block_id", "lon", "lat",
            "p_incorrect", "prediction__mean_confidence", "iou",
            "prediction__cropland_fraction",
        )  # fmt: skip
    )
    found: dict[int, ScoredBlocks] = {}
    current: int | None = None
    for province_id, block_id, lon, lat, *values in _plain_rows(rows):
        if province_id != current:
            current = province_id
            found[province_id] = {}
        if block_id in labelled:
            continue
        by_block = found[province_id]
        if block_id not in by_block:
            by_block[block_id] = (lon, lat, [])
        by_block[block_id][2].append(tuple(values))
        if len(found) > 1:  # the previous province is complete: hand it over
            done = next(iter(found))
            yield done, found.pop(done)
    for province_id in province_ids:
        if province_id in found:
            yield province_id, found.pop(province_id)


def _candidates(by_block: ScoredBlocks) -> tuple[list[Candidate], dict[int, dict[str, Any]]]:
    """A block's candidate from its scores: the highest p_incorrect, one minus the mean
    confidence, and one minus the mean IoU feature of its sources (or, without it, how far
    the sources' cropland fractions are apart)."""
    cands, signals = [], {}
    for block_id, (lon, lat, scores) in by_block.items():
        p_inc = [s[0] for s in scores if s[0] is not None]
        conf = [s[1] for s in scores if s[1] is not None]
        ious = [s[2] for s in scores if s[2] is not None]
        fr = [s[3] for s in scores]
        # Plain means of one or two values: np.mean costs ~10 us a call, 8 s for the
        # 390,000 blocks of a national round.
        disagreement = (
            (1.0 - sum(ious) / len(ious))
            if ious
            else (float(max(fr) - min(fr)) if len(fr) > 1 else None)
        )
        cand = Candidate(
            block_id=block_id,
            lon=lon,
            lat=lat,
            p_incorrect=max(p_inc) if p_inc else None,
            low_confidence=1.0 - sum(conf) / len(conf) if conf else None,
            disagreement=disagreement,
        )
        cands.append(cand)
        signals[block_id] = {
            "p_incorrect": cand.p_incorrect,
            "low_confidence": cand.low_confidence,
            "disagreement": cand.disagreement,
        }
    return cands, signals


def _labelled(rnd: Round) -> set[int]:

    labelled = set(
        Sample.objects.filter(block__campaign_id=rnd.campaign_id).values_list("block_id", flat=True)
    )
    return labelled | set(
        Assignment.objects.filter(block__campaign_id=rnd.campaign_id).values_list(
            "block_id", flat=True
        )
    )


def _prerank_holds(cands: list[Candidate], ranked: dict[int, Ranked], cfg: RoundConfig) -> bool:
    """Whether every candidate read back has the priority and spread cell the database ranked
    it by (so the walk over them picks what it would pick over every block)."""
    weights = cfg.weights.model_dump()
    d = cfg.spread_cell_deg
    return len(cands) == len(ranked) and all(
        c.block_id in ranked
        and prerank_agrees(
            ranked[c.block_id],
            priority=priority(c, weights),
            cell=(math.floor(c.lon / d), math.floor(c.lat / d)) if d > 0 else None,
        )
        for c in cands
    )


def round_select_run(*, round_id: int) -> None:
    """Pick the next blocks per province still to do, spread out; then finish the round.

    The database pre-ranks every unlabelled block (``selection_prerank``) and only the blocks
    the spread walk can reach are read with their scores; a province whose read-back disagrees
    with the pre-rank is read whole, as before."""
    rnd = round_get(round_id)
    if rnd.state != RoundState.SELECTING:
        return
    cfg = round_config_parse(rnd.config)
    t0 = time.monotonic()
    continuing = list(
        ProvinceRoundResult.objects.filter(
            round=rnd, decision=ProvinceDecision.CONTINUE
        ).values_list("province_id", flat=True)
    )
    weights = cfg.weights.model_dump()
    prerank = selection_prerank(
        round_id=rnd.pk, province_ids=sorted(continuing), n=cfg.select_per_province,
        cell_deg=cfg.spread_cell_deg, per_degree=grid_for(rnd.campaign.block_size_deg).per_degree,
        weights=weights,
    )  # fmt: skip
    reachable = sorted(b for by_block in prerank.values() for b in by_block)
    read: dict[int, ScoredBlocks] = {}
    for i in range(0, len(reachable), 5000):
        for province_id, by_block in _selection_scores(
            rnd=rnd, province_ids=sorted(prerank), labelled=set(),
            block_ids=reachable[i : i + 5000],
        ):  # fmt: skip
            read.setdefault(province_id, {}).update(by_block)
    labelled: set[int] | None = None
    picks: list[tuple[float, int, int, dict[str, Any]]] = []
    for province_id in sorted(prerank):
        cands, signals = _candidates(read.get(province_id, {}))
        if not _prerank_holds(cands, prerank[province_id], cfg):
            log.warning("selection pre-rank disagrees in province %s: read whole", province_id)
            labelled = _labelled(rnd) if labelled is None else labelled
            whole = dict(_selection_scores(rnd=rnd, province_ids=[province_id], labelled=labelled))
            cands, signals = _candidates(whole.get(province_id, {}))
        for pick in select_spread(
            cands,
            n=cfg.select_per_province,
            cell_deg=cfg.spread_cell_deg,
            weights=weights,
        ):
            picks.append((pick.score, pick.block_id, province_id, signals[pick.block_id]))
    picks.sort(key=lambda p: (-p[0], p[1]))
    with transaction.atomic():
        BlockSelection.objects.filter(round=rnd).delete()
        BlockSelection.objects.bulk_create(
            [
                BlockSelection(
                    round=rnd,
                    block_id=block_id,
                    province_id=province_id,
                    rank=i + 1,
                    score=score,
                    scores=json_safe(sig),
                )
                for i, (score, block_id, province_id, sig) in enumerate(picks)
            ]
        )
    round_log(
        rnd=round_id,
        message=f"{len(picks)} block(s) selected for labelling in "
        f"{len(continuing)} province(s) still to do",
    )
    round_timing_add(round_id=round_id, stage=RoundState.SELECTING, seconds=time.monotonic() - t0)
    round_finish(round_id=round_id)
