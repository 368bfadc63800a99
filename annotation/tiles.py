"""The campaign overview map as Mapbox vector tiles, with validators.

Layer ``blocks`` (zoom 8 and up for 0.05° blocks): one rectangle per block with its id, row, col,
province adcode, work status (of the primary assignment; of the annotator's own for an annotator;
``unassigned``), and per imagery source the newest verdict and the current segmenter's predicted
cropland fraction; for leads and admins also the assignee, the second (agreement) person and the
integration decision in force. Layer ``cells`` (lower zooms): blocks merged into square cells of
``cell_blocks(z)`` blocks a side, each with its block count, the count per work status and the
mean predicted cropland fraction, so a tile of the whole country stays a few hundred features.

PostGIS encodes a tile in one SQL statement (``ST_AsMVT``); the embedded SpatiaLite database runs
the same feature query and encodes the rectangles in ``mapping.geo.mvt``. An annotator's tiles
hold only their own blocks and verdicts, as the GeoJSON overview does.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from annotation.models import Assignment, AssignmentStatus, AuditEntry, VerdictLabel
from annotation.tile_sums import BASE_K, CellSums, cell_sums_base, current_segmenter, sums_versions
from learning.models import BlockPrediction, ModelKind, ModelVersion
from learning.product.models import BlockIntegration
from mapping.geo.grid import tile_bounds_lonlat
from mapping.geo.mvt import BUFFER, EXTENT, MAX_LAT, Layer, cell_blocks, encode_tile, tile_rects
from mapping.models import AdminUnit, Block, Campaign, ImagerySource

# Bumped when the tiles' layers or properties change, so browsers drop what they validated.
TILE_FORMAT = 1
UNASSIGNED = "unassigned"
STATUSES = (
    AssignmentStatus.TODO,
    AssignmentStatus.IN_PROGRESS,
    AssignmentStatus.SUBMITTED,
    AssignmentStatus.ACCEPTED,
)


@dataclass(frozen=True)
class TileScope:
    """Whose map: ``only_user`` is an annotator (their blocks only), None a lead's or admin's."""

    campaign: Campaign
    only_user: AbstractBaseUser | None


def _t(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def overview_tile_version(*, scope: TileScope) -> str:
    """An ETag for every tile of the scope: it changes whenever something a tile shows may have
    changed. Each part is an index lookup (no scan), so a revalidation costs one small query:
    the newest audit entry (every assignment, status change, verdict and lead decision writes
    one), assignment, prediction and integration row, the campaign's current segmenter, the
    newest block and the imagery sources."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT (SELECT MAX(id) FROM {_t(AuditEntry)}),"
            f" (SELECT MAX(id) FROM {_t(Assignment)}),"
            f" (SELECT MAX(id) FROM {_t(BlockPrediction)}),"
            f" (SELECT MAX(updated_at) FROM {_t(BlockIntegration)}),"
            f" (SELECT MAX(id) FROM {_t(ModelVersion)} WHERE campaign_id = %s AND kind = %s"
            f"  AND is_current = %s),"
            f" (SELECT MAX(id) FROM {_t(Block)} WHERE campaign_id = %s),"
            f" (SELECT COUNT(*) FROM {_t(ImagerySource)})",
            [scope.campaign.pk, ModelKind.SEGMENTER, True, scope.campaign.pk],
        )
        parts = cur.fetchone()
    user = scope.only_user.pk if scope.only_user is not None else "all"
    text = f"{TILE_FORMAT}|{scope.campaign.pk}|{user}|{'|'.join(map(str, parts))}"
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


# --- the feature query, shared by both databases ---------------------------------------------


@dataclass(frozen=True)
class _Query:
    sql: str
    params: list[Any]
    columns: list[str]


def _tile_blocks(campaign: Campaign, z: int, x: int, y: int, k: int) -> tuple[range, range]:
    """Row and column ranges of the blocks in the tile and its buffer, widened to whole cells
    of ``k`` blocks so a cell on a tile edge counts the same in both tiles."""
    size = float(campaign.block_size_deg)
    n = round(1 / size)
    w, s, e, nn = tile_bounds_lonlat(x, y, z)
    pad_x = (e - w) * BUFFER / EXTENT
    pad_y = (nn - s) * BUFFER / EXTENT
    r0 = max(math.floor((s - pad_y + 90) * n), 0)
    r1 = math.ceil((nn + pad_y + 90) * n)
    c0 = max(math.floor((w - pad_x + 180) * n), 0)
    c1 = math.ceil((e + pad_x + 180) * n)
    return range(r0 // k * k, -(-r1 // k) * k), range(c0 // k * k, -(-c1 // k) * k)


def _where(scope: TileScope, rows: range, cols: range) -> tuple[str, list[Any]]:
    sql = 'b.campaign_id = %s AND b."row" >= %s AND b."row" < %s AND b."col" >= %s AND b."col" < %s'
    params: list[Any] = [scope.campaign.pk, rows.start, rows.stop, cols.start, cols.stop]
    if scope.only_user is not None:
        sql += (
            f" AND EXISTS (SELECT 1 FROM {_t(Assignment)} o"
            " WHERE o.block_id = b.id AND o.user_id = %s)"
        )
        params.append(scope.only_user.pk)
    return sql, params


def _mine(scope: TileScope, alias: str) -> tuple[str, list[Any]]:
    """The assignment whose status the map shows: the annotator's own, else the primary one."""
    if scope.only_user is not None:
        return f"{alias}.user_id = %s", [scope.only_user.pk]
    return f"{alias}.agreement = %s", [False]


def _sources() -> list[tuple[int, str]]:
    return list(ImagerySource.objects.order_by("slug").values_list("pk", "slug"))


def _blocks_query(scope: TileScope, rows: range, cols: range) -> _Query:
    """One row per block of the tile, on PostgreSQL (SQLite: ``_blocks_query_subqueries``).
    The tile's blocks are read once (``tb``) and the verdicts and predictions joined to them
    once each, in CTEs that leave one row per block (the newest verdict per block and source by
    a window, the sources pivoted into columns), so the final joins are one to one; the
    integration decision is a join. A correlated subquery per block and property (eight on a
    lead's tile with two sources) made zoom 8 take 70 ms p95 on PostGIS, PostgreSQL running
    subplans 780 times each; the assignments (status, assignee, second) are one CTE too."""
    if connection.vendor != "postgresql":
        return _blocks_query_subqueries(scope, rows, cols)
    a, v, p = _t(Assignment), _t(VerdictLabel), _t(BlockPrediction)
    where, where_p = _where(scope, rows, cols)
    mine, mine_p = _mine(scope, "a")
    sources = _sources()
    ctes = [
        f'tb AS (SELECT b.id, b."row", b."col", b.province_id FROM {_t(Block)} b WHERE {where})'
    ]
    params: list[Any] = [*where_p]
    # Assignments are few (a national campaign labels a small share of its blocks): the tile's
    # are read once, by an index probe per block that mostly finds nothing, and folded into
    # one row per block (the newest of each kind). Three correlated subqueries made the same
    # probes three times; the province is a join (34 rows).
    if scope.only_user is None:
        user = _t(get_user_model())
        ctes.append(
            "asg AS (SELECT a.block_id,"
            f" (ARRAY_AGG(a.status ORDER BY a.id DESC) FILTER (WHERE {mine}))[1] AS status,"
            " (ARRAY_AGG(u.username ORDER BY a.id DESC) FILTER (WHERE NOT a.agreement))[1]"
            " AS assignee,"
            " (ARRAY_AGG(u.username ORDER BY a.id DESC) FILTER (WHERE a.agreement))[1] AS second"
            f" FROM tb JOIN {a} a ON a.block_id = tb.id LEFT JOIN {user} u ON u.id = a.user_id"
            " GROUP BY a.block_id)"
        )
    else:
        ctes.append(
            "asg AS (SELECT a.block_id, (ARRAY_AGG(a.status ORDER BY a.id DESC))[1] AS status"
            f" FROM tb JOIN {a} a ON a.block_id = tb.id WHERE {mine} GROUP BY a.block_id)"
        )
    params += mine_p
    cols_sql = [
        "tb.id AS id",
        'tb."row" AS "row"',
        'tb."col" AS "col"',
        "pu.adcode AS province",
        "COALESCE(asg.status, %s) AS status",
    ]
    select_p: list[Any] = [UNASSIGNED]
    joins = [
        f"LEFT JOIN {_t(AdminUnit)} pu ON pu.id = tb.province_id",
        "LEFT JOIN asg ON asg.block_id = tb.id",
    ]
    if scope.only_user is None:
        cols_sql += ["asg.assignee AS assignee", "asg.second AS second"]
        cols_sql.append("i.decision AS decision")
        joins.append(f"LEFT JOIN {_t(BlockIntegration)} i ON i.block_id = tb.id")
    own = " AND v.user_id = %s" if scope.only_user is not None else ""
    pivot = ", ".join(
        f'MAX(CASE WHEN q.source_id = %s THEN q.verdict END) AS "v{i}"' for i in range(len(sources))
    )
    ctes.append(
        f"vd AS (SELECT q.block_id, {pivot} FROM (SELECT v.block_id, v.source_id, v.verdict,"
        " ROW_NUMBER() OVER (PARTITION BY v.block_id, v.source_id ORDER BY v.updated_at DESC,"
        f" v.id DESC) AS o FROM {v} v JOIN tb ON tb.id = v.block_id WHERE 1 = 1{own}) q"
        " WHERE q.o = 1 GROUP BY q.block_id)"
    )
    params += [source_id for source_id, _ in sources]
    if scope.only_user is not None:
        params.append(scope.only_user.pk)
    joins.append("LEFT JOIN vd ON vd.block_id = tb.id")
    segmenter = current_segmenter(scope.campaign)
    if segmenter is not None:
        pivot = ", ".join(
            f'MAX(CASE WHEN p.source_id = %s THEN p.cropland_fraction END) AS "f{i}"'
            for i in range(len(sources))
        )
        ctes.append(
            f"pr AS (SELECT p.block_id, {pivot} FROM {p} p JOIN tb ON tb.id = p.block_id"
            " WHERE p.model_version_id = %s GROUP BY p.block_id)"
        )
        params += [*(source_id for source_id, _ in sources), segmenter]
        joins.append("LEFT JOIN pr ON pr.block_id = tb.id")
    for i, (_, slug) in enumerate(sources):
        cols_sql.append(f'vd."v{i}" AS "verdict_{slug}"')
        if segmenter is not None:
            cols_sql.append(f'pr."f{i}" AS "fraction_{slug}"')
    sql = (
        f"WITH {', '.join(ctes)} SELECT {', '.join(cols_sql)} FROM tb {' '.join(joins)}"
        " ORDER BY tb.id"
    )
    names = [c.rsplit(" AS ", 1)[1].strip('"') for c in cols_sql]
    return _Query(sql, params + select_p, names)


def _blocks_query_subqueries(scope: TileScope, rows: range, cols: range) -> _Query:
    """SQLite's form of ``_blocks_query``: a correlated subquery per block and property, each
    an index probe (9-46 ms p95 at every zoom on the national fixture); the joined form took
    150-210 ms there."""
    a, v, p = _t(Assignment), _t(VerdictLabel), _t(BlockPrediction)
    cols_sql: list[str] = [
        "b.id AS id",
        'b."row" AS "row"',
        'b."col" AS "col"',
        "pu.adcode AS province",
    ]
    params: list[Any] = []
    mine, mine_p = _mine(scope, "a")
    cols_sql.append(
        f"COALESCE((SELECT a.status FROM {a} a WHERE a.block_id = b.id AND {mine}"
        f" ORDER BY a.id DESC LIMIT 1), %s) AS status"
    )
    params += [*mine_p, UNASSIGNED]
    if scope.only_user is None:
        user = _t(get_user_model())
        for name, second in (("assignee", False), ("second", True)):
            cols_sql.append(
                f"(SELECT u.username FROM {a} a JOIN {user} u ON u.id = a.user_id"
                f" WHERE a.block_id = b.id AND a.agreement = %s ORDER BY a.id DESC LIMIT 1)"
                f" AS {name}"
            )
            params.append(second)
        cols_sql.append(
            f"(SELECT i.decision FROM {_t(BlockIntegration)} i WHERE i.block_id = b.id) AS decision"
        )
    segmenter = current_segmenter(scope.campaign)
    for source_id, slug in _sources():
        own = " AND v.user_id = %s" if scope.only_user is not None else ""
        cols_sql.append(
            f"(SELECT v.verdict FROM {v} v WHERE v.block_id = b.id AND v.source_id = %s{own}"
            f' ORDER BY v.updated_at DESC, v.id DESC LIMIT 1) AS "verdict_{slug}"'
        )
        params += [source_id, *([scope.only_user.pk] if scope.only_user is not None else [])]
        if segmenter is not None:
            cols_sql.append(
                f"(SELECT p.cropland_fraction FROM {p} p WHERE p.block_id = b.id"
                f' AND p.source_id = %s AND p.model_version_id = %s) AS "fraction_{slug}"'
            )
            params += [source_id, segmenter]
    where, where_p = _where(scope, rows, cols)
    sql = (
        f"SELECT {', '.join(cols_sql)} FROM {_t(Block)} b"
        f" LEFT JOIN {_t(AdminUnit)} pu ON pu.id = b.province_id WHERE {where}"
    )
    names = [c.rsplit(" AS ", 1)[1].strip('"') for c in cols_sql]
    return _Query(sql, params + where_p, names)


def _cells_query(scope: TileScope, rows: range, cols: range, k: int) -> _Query:
    a, b = _t(Assignment), _t(Block)
    where, where_p = _where(scope, rows, cols)
    cell = f'b."row" / {k} AS cr, b."col" / {k} AS cc'
    mine, mine_p = _mine(scope, "a")
    newer, newer_p = _mine(scope, "a2")
    counts = ", ".join(
        f"SUM(CASE WHEN a.status = '{s.value}' THEN 1 ELSE 0 END) AS {s.value}" for s in STATUSES
    )
    parts = [
        f"cells AS (SELECT {cell}, COUNT(*) AS n FROM {b} b WHERE {where} GROUP BY 1, 2)",
        f"work AS (SELECT {cell}, {counts} FROM {a} a JOIN {b} b ON b.id = a.block_id"
        f" WHERE {where} AND {mine} AND NOT EXISTS (SELECT 1 FROM {a} a2"
        f" WHERE a2.block_id = a.block_id AND {newer} AND a2.id > a.id) GROUP BY 1, 2)",
    ]
    params: list[Any] = [*where_p, *where_p, *mine_p, *newer_p]
    segmenter = current_segmenter(scope.campaign)
    frac = "NULL"
    if segmenter is not None:
        parts.append(
            f"pred AS (SELECT {cell}, AVG(p.cropland_fraction) AS fraction"
            f" FROM {_t(BlockPrediction)} p JOIN {b} b ON b.id = p.block_id"
            f" WHERE p.model_version_id = %s AND {where} GROUP BY 1, 2)"
        )
        params += [segmenter, *where_p]
        frac = "pred.fraction"
    status_cols = ", ".join(f"COALESCE(work.{s.value}, 0) AS {s.value}" for s in STATUSES)
    sql = (
        f"WITH {', '.join(parts)} SELECT cells.cr * 100000 + cells.cc AS id, cells.cr AS cr,"
        f" cells.cc AS cc, cells.n AS n, {status_cols}, {frac} AS fraction FROM cells"
        " LEFT JOIN work ON work.cr = cells.cr AND work.cc = cells.cc"
        + (" LEFT JOIN pred ON pred.cr = cells.cr AND pred.cc = cells.cc" if frac != "NULL" else "")
    )
    return _Query(sql, params, ["id", "cr", "cc", "n", *(s.value for s in STATUSES), "fraction"])


# --- the tile ---------------------------------------------------------------------------------


def overview_tile(*, scope: TileScope, z: int, x: int, y: int) -> bytes:
    """The tile's MVT bytes (empty when no block of the scope falls in it)."""
    size = float(scope.campaign.block_size_deg)
    k = cell_blocks(z, size)
    rows, cols = _tile_blocks(scope.campaign, z, x, y, k)
    if k > 1 and scope.only_user is None:
        return _cached_cells_tile(scope, rows, cols, z, x, y, k, size)
    q = _blocks_query(scope, rows, cols) if k == 1 else _cells_query(scope, rows, cols, k)
    if connection.vendor == "postgresql":
        return _postgis_tile(q, z, x, y, k, size)
    return _python_tile(q, z, x, y, k, size)


def _postgis_tile(q: _Query, z: int, x: int, y: int, k: int, size: float) -> bytes:
    props = ", ".join(
        f'ROUND(g."{c}"::numeric, 3)::float8 AS "{c}"' if c.startswith("fraction") else f'g."{c}"'
        for c in q.columns
        if c not in ("cr", "cc")
    )
    if k == 1:
        props += ", g.id AS block"  # the feature id again, as a property the map can read
    # The rectangle straight in tile coordinates, clipped by a clamp, as ``mapping.geo.mvt``
    # computes it for SpatiaLite (the same float8 arithmetic, rint included): a grid cell stays
    # a rectangle in Web Mercator. ST_Transform and ST_AsMVTGeom per block were most of a
    # zoom-8 tile's time; the ring runs as the Python encoder's (an exterior in MVT terms).
    r, c = ('f."row"', 'f."col"') if k == 1 else (f"f.cr * {k}", f"f.cc * {k}")
    n = float(round(1 / size))
    scale = 2.0**z / 360.0 * EXTENT
    lo, hi = -BUFFER, EXTENT + BUFFER

    def f8(v: float) -> str:
        return f"{float(v)!r}::float8"

    def clamp(v: str) -> str:
        return f"LEAST(GREATEST(ROUND({v}), {f8(lo)}), {f8(hi)})"

    def lon(col: str) -> str:
        w = f"(({col})::float8 - {f8(180 * n)}) / {f8(n)}"
        return f"({w} + {f8(180)}) * {f8(scale)} - {f8(x * EXTENT)}"

    def lat(row: str) -> str:
        s = f"(({row})::float8 - {f8(90 * n)}) / {f8(n)}"
        clipped = f"LEAST(GREATEST({s}, {f8(-MAX_LAT)}), {f8(MAX_LAT)})"
        frac = f"({f8(1)} - ASINH(TAN(RADIANS({clipped}))) / PI()) / {f8(2)} * {f8(2.0**z)}"
        return f"({frac} - {f8(y)}) * {f8(EXTENT)}"

    corners = (
        f"{clamp(lon(c))} AS x0, {clamp(lat(f'{r} + {k}'))} AS y0,"
        f" {clamp(lon(f'{c} + {k}'))} AS x1, {clamp(lat(r))} AS y1"
    )
    path = (("x0", "y0"), ("x1", "y0"), ("x1", "y1"), ("x0", "y1"), ("x0", "y0"))
    ring = ", ".join(f"ST_MakePoint(g.{a}, g.{b})" for a, b in path)
    layer = "blocks" if k == 1 else "cells"
    sql = (
        f"WITH f AS ({q.sql}), g AS (SELECT f.*, {corners} FROM f)"
        f" SELECT ST_AsMVT(t, %s, {EXTENT}, 'geom', 'id') FROM (SELECT {props},"
        f" ST_MakePolygon(ST_MakeLine(ARRAY[{ring}])) AS geom FROM g"
        " WHERE g.x1 > g.x0 AND g.y1 > g.y0) t"
    )
    # Without JIT: the planner's cost for a tile (its row estimates multiplied through the
    # joins) passes jit_above_cost, and compiling took 150 ms of a 180 ms zoom-8 tile.
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL jit = off")
        cur.execute(sql, [*q.params, layer])
        (data,) = cur.fetchone()
    return bytes(data or b"")


def _round3(v: float) -> float:
    """Half away from zero, as PostgreSQL's ROUND(numeric, 3) (Python's round() is half-even)."""
    return math.floor(float(v) * 1000 + 0.5) / 1000


def _python_tile(q: _Query, z: int, x: int, y: int, k: int, size: float) -> bytes:
    with connection.cursor() as cur:
        cur.execute(q.sql, q.params)
        rows = cur.fetchall()
    if not rows:
        return b""
    cols = {c: i for i, c in enumerate(q.columns)}
    n = round(1 / size)
    if k == 1:
        r = np.array([row[cols["row"]] for row in rows], dtype=np.float64)
        c = np.array([row[cols["col"]] for row in rows], dtype=np.float64)
        west, south = (c - 180 * n) / n, (r - 90 * n) / n
        east, north = (c + 1 - 180 * n) / n, (r + 1 - 90 * n) / n
        layer = "blocks"
    else:
        cr = np.array([row[cols["cr"]] for row in rows], dtype=np.float64)
        cc = np.array([row[cols["cc"]] for row in rows], dtype=np.float64)
        west, south = (cc * k - 180 * n) / n, (cr * k - 90 * n) / n
        east, north = ((cc + 1) * k - 180 * n) / n, ((cr + 1) * k - 90 * n) / n
        layer = "cells"
    rects, keep = tile_rects(west, south, east, north, z, x, y)
    idx = np.flatnonzero(keep).tolist()
    props: dict[str, list[Any]] = {}
    for name in q.columns:
        if name in ("id", "cr", "cc"):
            continue
        i = cols[name]
        if name.startswith("fraction"):
            props[name] = [None if rows[j][i] is None else _round3(rows[j][i]) for j in idx]
        else:
            props[name] = [rows[j][i] for j in idx]
    ids = [rows[j][cols["id"]] for j in idx]
    if k == 1:
        props["block"] = ids
    return encode_tile([Layer(layer, rects[idx], ids, props)])


# --- a lead's low zooms: the slow part counted once ------------------------------------------
#
# A zoom-3 tile of China covers 200,000 blocks and 400,000 predictions: summing them on every
# request takes about a second on either database. Block counts and predicted fractions change
# only with the grid or a new prediction, so they are summed over cells of 2 x 2 blocks (every
# coarser cell is a union of those), kept, and followed by prediction id (``annotation.tile_sums``);
# the work statuses, which change all day, are counted over the sparse assignments once per
# newest assignment and audit entry (``_work_sums``).

_BASES: dict[Any, tuple[tuple[Any, ...], dict[int, dict[str, Any]]]] = {}
_BASE_K = BASE_K


def _cell_sums(campaign: Campaign, k: int) -> dict[str, Any]:
    """Per cell of ``k`` x ``k`` blocks: its key (row * 100000 + col of the cell), block count,
    and the sum and count of the current segmenter's predicted fractions; sorted by key. The
    2 x 2 sums come from ``annotation.tile_sums`` (kept, followed by prediction id); coarser
    levels are merged from them once per change."""
    segmenter = current_segmenter(campaign)
    blocks_version, preds_version = sums_versions(campaign)
    if segmenter is None:
        base = _no_predictions(campaign, blocks_version)
    else:
        base = cell_sums_base(
            campaign=campaign, segmenter=segmenter, blocks_version=blocks_version,
            predictions_version=preds_version,
        )  # fmt: skip
    version = (base.generation, base.revision, segmenter, blocks_version)
    held = _BASES.get(campaign.pk)
    if held is None or held[0] != version:
        levels = {_BASE_K: {"key": base.key, "n": base.n, "fsum": base.fsum,
                            "fcount": base.fcount}}  # fmt: skip
        held = (version, levels)
        _BASES[campaign.pk] = held
    levels = held[1]
    if k not in levels:
        base_level, f = levels[_BASE_K], k // _BASE_K
        keys = (base_level["key"] // 100000 // f) * 100000 + (base_level["key"] % 100000) // f
        uniq, inv = np.unique(keys, return_inverse=True)
        levels[k] = {
            "key": uniq,
            "n": np.bincount(inv, weights=base_level["n"]).astype(np.int64),
            "fsum": np.bincount(inv, weights=base_level["fsum"]),
            "fcount": np.bincount(inv, weights=base_level["fcount"]).astype(np.int64),
        }
    return levels[k]


_EMPTY: dict[tuple[int, int], CellSums] = {}


def _no_predictions(campaign: Campaign, blocks_version: int) -> CellSums:
    """Block counts alone (no current segmenter), kept per grid version."""
    held = _EMPTY.get((campaign.pk, blocks_version))
    if held is None:
        b = _t(Block)
        with connection.cursor() as cur:
            cur.execute(
                f'SELECT b."row" / {_BASE_K} * 100000 + b."col" / {_BASE_K}, COUNT(*)'
                f" FROM {b} b WHERE b.campaign_id = %s GROUP BY 1",
                [campaign.pk],
            )
            rows = np.array(cur.fetchall(), dtype=np.int64).reshape(-1, 2)
        rows = rows[np.argsort(rows[:, 0])]
        held = CellSums(rows[:, 0], rows[:, 1], np.zeros(len(rows)),
                        np.zeros(len(rows), dtype=np.int64), blocks_version, 0)  # fmt: skip
        _EMPTY.clear()
        _EMPTY[(campaign.pk, blocks_version)] = held
    return held


def _work_sums(campaign: Campaign, k: int) -> dict[str, Any]:
    """Per cell of ``k`` x ``k`` blocks holding work: its key and the count of each work status
    (of the primary assignment, the newest when a block has several); sorted by key.

    Counted once over the campaign's assignments (sparse: a national campaign labels a small
    share of its blocks) and kept until a newer assignment or audit entry exists (every
    assignment and status change writes one, as the tiles' ETag relies on), so a low-zoom tile
    is array slicing instead of a join over the hundred thousand blocks under it."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT (SELECT MAX(id) FROM {_t(Assignment)}), (SELECT MAX(id) FROM {_t(AuditEntry)})"
        )
        version = ("work", campaign.pk, *cur.fetchone())
    held = _BASES.get(("work", campaign.pk))
    if held is None or held[0] != version:
        held = (version, {_BASE_K: _work_sums_sql(campaign)})
        _BASES[("work", campaign.pk)] = held
    levels = held[1]
    if k not in levels:
        base, f = levels[_BASE_K], k // _BASE_K
        keys = (base["key"] // 100000 // f) * 100000 + (base["key"] % 100000) // f
        uniq, inv = np.unique(keys, return_inverse=True)
        counts = np.zeros((len(uniq), len(STATUSES)), dtype=np.int64)
        np.add.at(counts, inv, base["counts"])
        levels[k] = {"key": uniq, "counts": counts}
    return levels[k]


def _work_sums_sql(campaign: Campaign) -> dict[str, Any]:
    scope = TileScope(campaign=campaign, only_user=None)
    mine, mine_p = _mine(scope, "a")
    newer, newer_p = _mine(scope, "a2")
    a, k = _t(Assignment), _BASE_K
    counts = ", ".join(f"SUM(CASE WHEN a.status = '{s.value}' THEN 1 ELSE 0 END)" for s in STATUSES)
    with connection.cursor() as cur:
        cur.execute(
            f'SELECT b."row" / {k} * 100000 + b."col" / {k} AS key, {counts}'
            f" FROM {a} a JOIN {_t(Block)} b ON b.id = a.block_id WHERE b.campaign_id = %s"
            f" AND {mine} AND NOT EXISTS (SELECT 1 FROM {a} a2 WHERE a2.block_id = a.block_id"
            f" AND {newer} AND a2.id > a.id) GROUP BY 1",
            [campaign.pk, *mine_p, *newer_p],
        )
        rows = np.array(cur.fetchall(), dtype=np.int64).reshape(-1, 1 + len(STATUSES))
    order = np.argsort(rows[:, 0])
    return {"key": rows[order, 0], "counts": rows[order, 1:]}


def _cached_cells_tile(
    scope: TileScope, rows: range, cols: range, z: int, x: int, y: int, k: int, size: float
) -> bytes:
    """The ``cells`` layer of a lead's tile: counts and fractions from the kept sums, work
    statuses from the kept work counts (the same layer ``_cells_query`` makes, without reading
    every block)."""
    sums = _cell_sums(scope.campaign, k)
    cr, cc = sums["key"] // 100000, sums["key"] % 100000
    inside = (
        (cr >= rows.start // k) & (cr < -(-rows.stop // k))
        & (cc >= cols.start // k) & (cc < -(-cols.stop // k))
    )  # fmt: skip
    idx = np.flatnonzero(inside)
    if not len(idx):
        return b""
    work = _work_sums(scope.campaign, k)
    n = round(1 / size)
    w = (cc[idx] * k - 180 * n) / n
    s_ = (cr[idx] * k - 90 * n) / n
    rects, keep = tile_rects(w, s_, w + k / n, s_ + k / n, z, x, y)
    sel = idx[keep]
    keys = sums["key"][sel]
    # Each kept cell's row in the work counts (cells without work count 0).
    at = np.searchsorted(work["key"], keys)
    found = at < len(work["key"])
    found[found] = work["key"][at[found]] == keys[found]
    status = np.zeros((len(keys), len(STATUSES)), dtype=np.int64)
    status[found] = work["counts"][at[found]]
    props: dict[str, list[Any]] = {
        "n": sums["n"][sel].tolist(),
        **{st.value: status[:, i].tolist() for i, st in enumerate(STATUSES)},
        "fraction": [
            _round3(fs / fc) if fc else None
            for fs, fc in zip(sums["fsum"][sel].tolist(), sums["fcount"][sel].tolist(), strict=True)
        ],
    }
    return encode_tile([Layer("cells", rects[keep], keys.tolist(), props)])


# --- the legend's numbers ------------------------------------------------------------------------


def overview_counts(*, scope: TileScope) -> dict[str, Any]:
    """What the tiled map's legend counts, by SQL aggregates over the whole scope (no loop over
    blocks): blocks in total, per work status (``unassigned`` included), per newest verdict of
    each source (``none``: no verdict) and per province adcode."""
    from django.db.models import Count, Exists, OuterRef

    from annotation.selectors import _latest_verdicts

    blocks = Block.objects.filter(campaign=scope.campaign)
    user = scope.only_user
    if user is not None:
        blocks = blocks.filter(
            Exists(Assignment.objects.filter(block_id=OuterRef("pk"), user=user))
        )
    total = blocks.count()
    provinces = {
        str(adcode): n
        for adcode, n in blocks.values_list("province__adcode").annotate(n=Count("id")).order_by()
        if adcode is not None
    }
    mine = Assignment.objects.filter(block__campaign=scope.campaign)
    mine = mine.filter(user=user) if user is not None else mine.filter(agreement=False)
    newer = mine.filter(block_id=OuterRef("block_id"), pk__gt=OuterRef("pk"))
    statuses = dict(
        mine.exclude(Exists(newer)).values_list("status").annotate(n=Count("id")).order_by()
    )
    statuses[UNASSIGNED] = total - sum(statuses.values())
    latest = _latest_verdicts(only_user=user).filter(block__campaign=scope.campaign)
    if user is not None:
        latest = latest.filter(
            Exists(Assignment.objects.filter(block_id=OuterRef("block_id"), user=user))
        )
    verdicts: dict[str, dict[str, int]] = {slug: {} for _, slug in _sources()}
    for slug, verdict, n in (
        latest.values_list("source__slug", "verdict").annotate(n=Count("id")).order_by()
    ):
        verdicts.setdefault(slug, {})[verdict] = n
    for counts in verdicts.values():
        counts["none"] = total - sum(counts.values())
    return {"total": total, "statuses": statuses, "verdicts": verdicts, "provinces": provinces}
