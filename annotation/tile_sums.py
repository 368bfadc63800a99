"""A lead's low-zoom sums: per cell of 2 x 2 blocks, the block count and the current segmenter's
predicted cropland fractions (sum and count), followed prediction by prediction.

Summing every prediction of a national campaign takes 1.6 s on PostGIS and 3 s on SQLite; it
used to happen in each process, again after every new prediction. Now the sums are kept in the
process and in the database (``OverviewCellSums``), and a new prediction is added by reading
only the rows above the last id settled. Rows can commit out of id order (several ``gpu``
workers), so an id is settled only when every id up to it has been read, or when a missing id
has stayed missing for ``GRACE_S`` (a rolled-back insert, a deleted row): until then each
request re-reads the rows above the settled id and adds those not counted yet (the re-read
window). A full sum runs when the grid changes, at least every ``FULL_EVERY_S`` (what ids cannot
tell: deletions, a transaction open longer than ``GRACE_S``), and when nothing is kept.
"""

from __future__ import annotations

import io
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import IntegrityError, connection, transaction

from annotation.models import OverviewCellSums
from learning.models import BlockPrediction, ModelKind, ModelVersion
from mapping.models import Block, Campaign

BASE_K = 2  # cell_blocks() gives 1 or a power of two, so every cell is made of 2 x 2 cells
GRACE_S = 300.0
FULL_EVERY_S = 3600.0
TAIL = 1000  # ids below the newest a full sum remembers as counted, so it can settle them
SAVE_EVERY_ROWS = 2000  # predictions added since the copy in the database before it is saved
MAX_GAPS = 50_000  # more missing ids than this above the settled one: sum in full instead


@dataclass
class CellSums:
    """The sums (sorted by cell key, row * 100000 + col of the 2 x 2 cell) and what they hold:
    every prediction id up to ``settled``, and the ids in ``counted`` above it; ``gaps`` are
    the ids above it not seen yet, with the wall time they were first missed."""

    key: np.ndarray
    n: np.ndarray
    fsum: np.ndarray
    fcount: np.ndarray
    blocks_version: int
    settled: int
    counted: set[int] = field(default_factory=set)
    gaps: dict[int, float] = field(default_factory=dict)
    full_at: float = 0.0
    unsaved: int = 0
    revision: int = 0  # bumped whenever the sums change (what coarser levels are made from)
    generation: int = field(default_factory=lambda: next(_GENERATIONS))

    @property
    def newest(self) -> int:
        return max([self.settled, *self.counted, *self.gaps])


_GENERATIONS = itertools.count(1)
# Request threads of one process share the kept sums: one of them follows or sums at a time
# (two following at once would both add a row neither had counted yet).
_LOCK = threading.Lock()
# (campaign id, segmenter id) -> the sums; a process keeps its own and shares them through the
# database.
_HELD: dict[tuple[int, int], CellSums] = {}


def _t(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _cell(alias: str = "b") -> str:
    return f'{alias}."row" / {BASE_K} * 100000 + {alias}."col" / {BASE_K}'


def _full(campaign: Campaign, segmenter: int, blocks_version: int) -> CellSums:
    """Sum every prediction; in the same statement (one snapshot), the ids of the newest
    ``TAIL`` rows, which the sums hold and which stay open to later commits below them."""
    b, p = _t(Block), _t(BlockPrediction)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT {_cell()} AS key, COUNT(*) FROM {b} b WHERE b.campaign_id = %s GROUP BY 1",
            [campaign.pk],
        )
        blocks = np.array(cur.fetchall(), dtype=np.int64).reshape(-1, 2)
        cur.execute(
            f"SELECT {_cell()}, SUM(p.cropland_fraction), COUNT(*), CAST(NULL AS BIGINT)"
            f" FROM {p} p JOIN {b} b ON b.id = p.block_id"
            " WHERE p.model_version_id = %s AND b.campaign_id = %s GROUP BY 1"
            " UNION ALL SELECT NULL, NULL, NULL, t.id FROM"
            f" {p} t WHERE t.id > (SELECT COALESCE(MAX(m.id), 0) FROM {p} m) - %s",
            [segmenter, campaign.pk, TAIL],
        )
        rows = cur.fetchall()
    preds = np.array([r[:3] for r in rows if r[3] is None], dtype=np.float64).reshape(-1, 3)
    tail = sorted(r[3] for r in rows if r[3] is not None)
    order = np.argsort(blocks[:, 0])
    key, n = blocks[order, 0], blocks[order, 1]
    fsum, fcount = np.zeros(len(key)), np.zeros(len(key), dtype=np.int64)
    if len(preds):
        at = np.searchsorted(key, preds[:, 0].astype(np.int64))
        fsum[at] = preds[:, 1]
        fcount[at] = preds[:, 2].astype(np.int64)
    settled = max(0, tail[-1] - TAIL) if tail else 0
    now = time.time()
    counted = set(tail)
    gaps = {i: now for i in range(settled + 1, tail[-1]) if i not in counted} if tail else {}
    sums = CellSums(key, n, fsum, fcount, blocks_version, settled, counted, gaps, full_at=now)
    _settle(sums, now)
    return sums


def _settle(sums: CellSums, now: float) -> None:
    """Move ``settled`` up over ids read, and over ids missing for longer than ``GRACE_S``."""
    i = sums.settled + 1
    while i in sums.counted or (i in sums.gaps and now - sums.gaps[i] > GRACE_S):
        sums.counted.discard(i)
        sums.gaps.pop(i, None)
        i += 1
    sums.settled = i - 1


def _follow(sums: CellSums, campaign: Campaign, segmenter: int) -> bool:
    """Add the predictions above the settled id not counted yet (the re-read window); False
    when that cannot be done (a block outside the kept cells, too many missing ids)."""
    b, p = _t(Block), _t(BlockPrediction)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT p.id, CASE WHEN p.model_version_id = %s AND b.campaign_id = %s THEN 1"
            f" ELSE 0 END, {_cell()}, p.cropland_fraction FROM {p} p JOIN {b} b"
            " ON b.id = p.block_id WHERE p.id > %s ORDER BY p.id",
            [segmenter, campaign.pk, sums.settled],
        )
        rows = cur.fetchall()
    now = time.time()
    newest = sums.newest
    for pid, ours, key, fraction in rows:
        newest = max(newest, pid)
        if pid in sums.counted:
            continue
        sums.counted.add(pid)
        sums.gaps.pop(pid, None)
        if not ours:
            continue
        at = int(np.searchsorted(sums.key, key))
        if at >= len(sums.key) or sums.key[at] != key:
            return False
        sums.fsum[at] += fraction
        sums.fcount[at] += 1
        sums.unsaved += 1
        sums.revision += 1
    if newest - sums.settled - len(sums.counted) > MAX_GAPS:
        return False
    for i in range(sums.settled + 1, newest):
        if i not in sums.counted:
            sums.gaps.setdefault(i, now)
    _settle(sums, now)
    return True


def _dump(sums: CellSums) -> bytes:
    buf = io.BytesIO()
    counted = np.array(sorted(sums.counted), dtype=np.int64)
    gap_ids = np.array(sorted(sums.gaps), dtype=np.int64)
    np.savez(
        buf, key=sums.key, n=sums.n, fsum=sums.fsum, fcount=sums.fcount, counted=counted,
        gap_ids=gap_ids, gap_at=np.array([sums.gaps[i] for i in gap_ids.tolist()]),
        meta=np.array([sums.blocks_version, sums.settled, sums.full_at], dtype=np.float64),
    )  # fmt: skip
    return buf.getvalue()


def _load(data: bytes) -> CellSums:
    with np.load(io.BytesIO(data)) as z:
        version, settled, full_at = z["meta"].tolist()
        return CellSums(
            key=z["key"], n=z["n"], fsum=z["fsum"], fcount=z["fcount"],
            blocks_version=int(version), settled=int(settled),
            counted=set(z["counted"].tolist()),
            gaps=dict(zip(z["gap_ids"].tolist(), z["gap_at"].tolist(), strict=True)),
            full_at=full_at,
        )  # fmt: skip


def _save(campaign: Campaign, segmenter: int, sums: CellSums) -> None:
    """Write the sums for other processes (the last writer wins: every copy is whole)."""
    sums.unsaved = 0
    try:
        with transaction.atomic():
            OverviewCellSums.objects.filter(campaign=campaign).exclude(
                segmenter_id=segmenter
            ).delete()
            OverviewCellSums.objects.update_or_create(
                campaign=campaign, segmenter_id=segmenter, defaults={"data": _dump(sums)}
            )
    except IntegrityError:
        pass  # another process created it at the same moment: its copy is as good


def cell_sums_base(*, campaign: Campaign, segmenter: int, blocks_version: int,
                   predictions_version: int) -> CellSums:  # fmt: skip
    """The campaign's 2 x 2 cell sums for ``segmenter``, holding every prediction up to
    ``predictions_version`` (the newest prediction id) on a grid whose newest block id is
    ``blocks_version``."""
    with _LOCK:
        return _cell_sums_base(campaign, segmenter, blocks_version, predictions_version)


def _cell_sums_base(
    campaign: Campaign, segmenter: int, blocks_version: int, predictions_version: int
) -> CellSums:
    held = _HELD.get((campaign.pk, segmenter))
    if held is None:
        row = (
            OverviewCellSums.objects.filter(campaign=campaign, segmenter_id=segmenter)
            .values_list("data", flat=True)
            .first()
        )
        held = _load(bytes(row)) if row is not None else None
    now = time.time()
    fresh = (
        held is not None
        and held.blocks_version == blocks_version
        and now - held.full_at < FULL_EVERY_S
    )
    if held is not None and fresh and (predictions_version > held.newest or held.gaps):
        fresh = _follow(held, campaign, segmenter)
    if held is None or not fresh:
        held = _full(campaign, segmenter, blocks_version)
        _save(campaign, segmenter, held)
    elif held.unsaved >= SAVE_EVERY_ROWS:
        _save(campaign, segmenter, held)
    _HELD[(campaign.pk, segmenter)] = held
    return held


def current_segmenter(campaign: Campaign) -> int | None:
    """The id of the campaign's current segmenter (whose predictions the map shows)."""
    return (
        ModelVersion.objects.filter(campaign=campaign, kind=ModelKind.SEGMENTER, is_current=True)
        .values_list("pk", flat=True)
        .first()
    )


def sums_versions(campaign: Campaign) -> tuple[int, int]:
    """The campaign's newest block id and the newest prediction id (of any campaign)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT (SELECT MAX(id) FROM {_t(Block)} WHERE campaign_id = %s),"
            f" (SELECT MAX(id) FROM {_t(BlockPrediction)})",
            [campaign.pk],
        )
        blocks, preds = cur.fetchone()
    return blocks or 0, preds or 0


def overview_sums_prepare(*, campaign: Campaign) -> bool:
    """Count a lead's low-zoom sums for the campaign's current segmenter now and keep them in
    the database (a round's end calls this in its worker once its segmenter is current), so
    the first low-zoom tile after a new segmenter loads them instead of summing every
    prediction inside a request (1.2-2.9 s on a national campaign). False: no segmenter."""
    segmenter = current_segmenter(campaign)
    if segmenter is None:
        return False
    blocks_version, preds_version = sums_versions(campaign)
    cell_sums_base(
        campaign=campaign, segmenter=segmenter, blocks_version=blocks_version,
        predictions_version=preds_version,
    )  # fmt: skip
    return True


def cell_sums_forget() -> None:
    """Drop what this process keeps (tests; the database copy stays)."""
    _HELD.clear()
