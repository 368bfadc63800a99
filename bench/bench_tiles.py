"""The overview map of a national campaign: the campaign page, vector tiles at every zoom 3..14
and ``blocks.geojson`` for county-sized boxes, timed in-process (server side: Django's test
client, a logged-in lead, every middleware) against the old paths in the same run: the
GeoJSON overview (``overview.geojson`` with the tile's bbox, limit 20,000) for the same tiles,
the page's old province list query and the old ``blocks.geojson`` serialisation.

Goals (issue 15): page <= 1.5 s, a tile <= 50 ms p95 at every zoom, blocks.geojson for a
county-sized box <= 50 ms median.

Database: PostGIS when ``DATABASE_URL`` is set (the database is created if missing and kept, so
the national grid, ~100 s, is built once), else SQLite + SpatiaLite in ``var/bench-tiles[-quick]/``
(kept for the same reason; delete the folder to rebuild). ``--quick``: one province (Hubei).
``BENCH_TILES_PAGE_ONLY=1``: only the page and its legend's numbers (``overview-counts``).
The fixture: every block of the shipped boundaries, 2 % of them assigned (in the four work
statuses), and a current segmenter with a prediction for every block on both sources, written
by one ``INSERT ... SELECT`` per source (``--fixture`` alone builds it).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SLUG = "bench-national"
PASSWORD = "bench-pw-123!"
BATCH = 20_000


def _setup() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
    django.setup()


def _ensure_postgres_database() -> None:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    conn = psycopg.connect(
        host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"], dbname="postgres",
        password=cfg["PASSWORD"] or None, autocommit=True,
    )  # fmt: skip
    with conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]])
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


# ---- the fixture ------------------------------------------------------------------------------


def fixture(quick: bool) -> dict[str, Any]:
    """The campaign with its grid, people, assignments and predictions (idempotent)."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from annotation.models import Assignment, AssignmentStatus
    from croplayer_site.roles import roles_ensure
    from learning.models import BlockPrediction, ModelKind, ModelVersion
    from mapping.models import AdminUnit, Block, Campaign, ImagerySource
    from mapping.services.grid import grid_build
    from mapping.services.members import campaign_members_add

    timings: dict[str, float] = {}
    if not AdminUnit.objects.exists():
        call_command("import_admin_units", "--default", verbosity=0)
    camp, _ = Campaign.objects.get_or_create(
        slug=SLUG, defaults={"name": "National bench", "region": "China", "year": 2020}
    )
    if quick:
        camp.provinces.set(AdminUnit.objects.filter(level="province", adcode=420000))
    if not Block.objects.filter(campaign=camp).exists():
        t0 = time.perf_counter()
        grid_build(campaign=camp)
        timings["grid_build_s"] = round(time.perf_counter() - t0, 1)
    groups = roles_ensure()
    for name in ("lead", "annotator"):
        if not User.objects.filter(username=name).exists():
            u = User.objects.create_user(name, password=PASSWORD)
            u.groups.add(groups[name])
    lead = User.objects.get(username="lead")
    campaign_members_add(campaign=camp, users=[lead])
    sources = [
        ImagerySource.objects.get_or_create(
            slug=slug, defaults={"name": slug.title(), "kind": "synthetic"}
        )[0]
        for slug in ("google", "mapbox")
    ]
    blocks = list(
        Block.objects.filter(campaign=camp).order_by("row", "col").values_list("pk", "row", "col")
    )
    if not Assignment.objects.filter(block__campaign=camp).exists():
        t0 = time.perf_counter()
        annotator = User.objects.get(username="annotator")
        statuses = [
            AssignmentStatus.TODO, AssignmentStatus.IN_PROGRESS,
            AssignmentStatus.SUBMITTED, AssignmentStatus.ACCEPTED,
        ]  # fmt: skip
        Assignment.objects.bulk_create(
            [
                Assignment(block_id=pk, user=annotator, status=statuses[i % 4])
                for i, (pk, _, _) in enumerate(blocks[::50])
            ],
            batch_size=BATCH,
        )
        timings["assignments_s"] = round(time.perf_counter() - t0, 1)
    seg = ModelVersion.objects.filter(
        campaign=camp, kind=ModelKind.SEGMENTER, is_current=True
    ).first()
    if seg is None:
        t0 = time.perf_counter()
        seg = ModelVersion.objects.create(
            campaign=camp, kind=ModelKind.SEGMENTER, name="seg-bench",
            bundle_path="models/seg-bench", is_current=True,
        )  # fmt: skip
        # One INSERT ... SELECT per source, computed by the database: a smooth made-up
        # cropland field (0..1) so the map has something to show.
        from django.db import connection
        from django.utils import timezone

        for k, source in enumerate(sources):
            with connection.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {BlockPrediction._meta.db_table} (block_id, source_id,"
                    " model_version_id, mask_path, cropland_fraction, cropland_area_ha,"
                    " created_at) SELECT b.id, %s, %s, 'bench/none.tif',"
                    f' (1 + ((b."row" * 7 + b."col" * 3 + {k * 11}) %% 100) / 100.0'
                    f' * ((b."row" + b."col") %% 3 - 1)) / 2.0, 0.0, %s'
                    f' FROM {Block._meta.db_table} b WHERE b.campaign_id = %s'
                    ' ORDER BY b."row", b."col"',
                    [source.pk, seg.pk, timezone.now(), camp.pk],
                )
        timings["predictions_s"] = round(time.perf_counter() - t0, 1)
    analyze()
    return {
        "campaign": camp.slug,
        "blocks": len(blocks),
        "predictions": BlockPrediction.objects.filter(model_version=seg).count(),
        "assignments": Assignment.objects.filter(block__campaign=camp).count(),
        **timings,
    }


def analyze() -> None:
    """Refresh PostgreSQL's planner statistics after the fixture's bulk writes, as autovacuum
    does in a deployment within a minute of them. Without it (autovacuum off, as on the test
    server) the planner sees the tables as empty and picks nested loops over all 780,540
    predictions: the selection's read of one province took 1.8 s instead of 0.2 s. SQLite is
    left as a deployment leaves it (nothing runs its ANALYZE)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE")


# ---- the measurements -------------------------------------------------------------------------


def _ms(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000, out


def _stats(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    p95 = v[min(len(v) - 1, max(0, round(0.95 * len(v)) - 1))]
    return {"n": len(v), "p50": round(statistics.median(v), 2), "p95": round(p95, 2),
            "max": round(v[-1], 2)}  # fmt: skip


def _old_blocks_geojson(campaign: Any, rows: range, cols: range) -> dict[str, Any]:
    """The blocks.geojson serialisation before issue 15 (model instances, GEOS coords)."""
    from mapping.models import Block

    qs = (
        Block.objects.filter(campaign=campaign).select_related("province", "county")
        .filter(row__gte=rows.start, row__lt=rows.stop, col__gte=cols.start, col__lt=cols.stop)
    )  # fmt: skip
    blocks = list(qs.order_by("row", "col")[:5001])
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": b.pk,
                "geometry": {"type": "Polygon", "coordinates": b.geometry.coords},
                "properties": {
                    "code": b.code,
                    "province": b.province.name_zh if b.province else None,
                    "county": b.county.name_zh if b.county else None,
                    "land_fraction": round(b.land_fraction, 3),
                },
            }  # fmt: skip
            for b in blocks[:5000]
        ],
    }


def _low_zoom_sums(c: Any, camp: Any) -> dict[str, Any]:
    from annotation import tile_sums
    from annotation import tiles as tiles_module
    from annotation.models import OverviewCellSums
    from learning.models import BlockPrediction, ModelKind, ModelVersion
    from mapping.geo.grid import lonlat_to_tile_fraction
    from mapping.models import Block, ImagerySource

    fx, fy = lonlat_to_tile_fraction(112.0, 30.0, 3)
    url = f"/api/campaigns/{SLUG}/tiles/3/{int(fx)}/{int(fy)}.pbf"

    def fresh_process() -> None:
        tiles_module._BASES.clear()
        tile_sums.cell_sums_forget()

    OverviewCellSums.objects.filter(campaign=camp).delete()
    fresh_process()
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    cpu0 = time.process_time()
    full_ms, r = _ms(lambda: c.get(url))
    full_cpu = (time.process_time() - cpu0) * 1000
    assert r.status_code == 200
    fresh_process()
    kept_ms, r = _ms(lambda: c.get(url))
    assert r.status_code == 200
    # New predictions, one at a time, of a segmenter other than the current one (the current
    # one has predicted every block: the rows above the last id are read all the same).
    side, _ = ModelVersion.objects.get_or_create(
        campaign=camp, kind=ModelKind.SEGMENTER, name="seg-bench-follow",
        defaults={"bundle_path": "models/seg-bench-follow", "is_current": False},
    )  # fmt: skip
    source = ImagerySource.objects.order_by("slug").first()
    done = BlockPrediction.objects.filter(model_version=side).values_list("block_id", flat=True)
    todo = Block.objects.filter(campaign=camp).exclude(pk__in=list(done)).values_list("pk")
    follow = []
    for (block_id,) in list(todo[:5]):
        BlockPrediction.objects.create(
            block_id=block_id, source=source, model_version=side, mask_path="bench/none.tif",
            cropland_fraction=0.5,
        )  # fmt: skip
        ms, r = _ms(lambda: c.get(url))
        assert r.status_code == 200
        follow.append(ms)
    return {
        "full_sum_ms": round(full_ms, 1), "full_sum_cpu_ms": round(full_cpu, 1),
        "kept_in_database_ms": round(kept_ms, 1), "after_a_new_prediction": _stats(follow),
        "load": load,
    }  # fmt: skip


def measure(quick: bool) -> dict[str, Any]:
    import random

    from django.db import connection
    from django.test import Client

    from mapping.geo.grid import BlockId, grid_for, lonlat_to_tile_fraction, tile_bounds_lonlat
    from mapping.models import AdminUnit, Block, Campaign

    result: dict[str, Any] = {"database": connection.vendor}
    result["fixture"] = fixture(quick)
    camp = Campaign.objects.get(slug=SLUG)
    from django.contrib.auth.models import User

    c = Client()
    c.force_login(User.objects.get(username="lead"))
    repeats = 3 if quick else 5

    # The campaign page (HTML), and the province list query it used to run.
    c.get(f"/campaigns/{SLUG}/")  # warm: templates, caches
    page = [_ms(lambda: c.get(f"/campaigns/{SLUG}/"))[0] for _ in range(repeats)]
    old_ms: float | str = "skipped"
    if not os.environ.get("BENCH_SKIP_OLD_PAGE"):
        from django.db import transaction

        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":  # it took 29 s on a quiet machine
                    connection.cursor().execute("SET LOCAL statement_timeout = 90000")
                old_ms = round(
                    _ms(
                        lambda: list(
                            AdminUnit.objects.filter(province_blocks__campaign=camp)
                            .distinct()
                            .order_by("adcode")
                        )
                    )[0],
                    1,
                )
        except Exception as e:  # the timeout: say so instead of a number
            old_ms = f"> 90 s ({type(e).__name__})"
    result["page"] = {**_stats(page), "goal_ms": 1500, "old_province_query_ms": old_ms}

    # The legend's numbers, which the page fetches after it renders (d4b1aef): counted, and
    # revalidated with the ETag when nothing changed.
    counts_url = f"/api/campaigns/{SLUG}/overview-counts/"
    counted = [_ms(lambda: c.get(counts_url))[0] for _ in range(repeats)]
    etag = c.get(counts_url)["ETag"]
    revalidated = [
        _ms(lambda: c.get(counts_url, HTTP_IF_NONE_MATCH=etag))[0] for _ in range(repeats)
    ]
    result["legend_counts"] = {**_stats(counted), "revalidated_304": _stats(revalidated)}
    if os.environ.get("BENCH_TILES_PAGE_ONLY"):  # the page and its legend, not the tiles
        result["load"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
        return result

    # A lead's low zooms (annotation.tile_sums): the sums built from every prediction (nothing
    # kept: once per segmenter), then taken from the database by a process that starts (the
    # zoom loop below begins so), and followed after a new prediction.
    result["low_zoom_sums"] = _low_zoom_sums(c, camp)

    # Tiles: a spread of tiles holding blocks at every zoom 3..14 (random blocks, seed 15).
    rng = random.Random(15)
    centres = list(Block.objects.filter(campaign=camp).values_list("row", "col"))
    rng.shuffle(centres)
    grid = grid_for(camp.block_size_deg)
    per_zoom = 8 if quick else 20
    tiles: dict[str, Any] = {}
    for z in range(3, 15):
        chosen: list[tuple[int, int]] = []
        for r, col in centres:
            w, s, _, _ = grid.bounds(BlockId(row=r, col=col))
            fx, fy = lonlat_to_tile_fraction(w + 0.025, s + 0.025, z)
            if (int(fx), int(fy)) not in chosen:
                chosen.append((int(fx), int(fy)))
            if len(chosen) >= per_zoom:
                break
        cold, cpu, warm, sizes, old = [], [], [], [], []
        truncated = 0
        for x, y in chosen:
            url = f"/api/campaigns/{SLUG}/tiles/{z}/{x}/{y}.pbf"
            cpu0 = time.process_time()
            ms, r = _ms(lambda url=url: c.get(url))
            # This process's CPU (all of it on SpatiaLite; PostgreSQL's own is not counted):
            # on a loaded machine the wall time is mostly waiting for a core.
            cpu.append((time.process_time() - cpu0) * 1000)
            assert r.status_code == 200, r.content[:200]
            cold.append(ms)
            sizes.append(len(r.content))
            ms, r2 = _ms(lambda url=url, r=r: c.get(url, HTTP_IF_NONE_MATCH=r["ETag"]))
            assert r2.status_code == 304
            warm.append(ms)
        n_old = 0 if os.environ.get("BENCH_SKIP_OLD_GEOJSON") else (2 if quick else 4)
        for x, y in chosen[:n_old]:
            w, s, e, n = tile_bounds_lonlat(x, y, z)
            bbox = f"{max(w, -180):.6f},{max(s, -90):.6f},{min(e, 180):.6f},{min(n, 90):.6f}"
            url = f"/api/campaigns/{SLUG}/overview.geojson?limit=20000&bbox={bbox}"
            ms, r = _ms(lambda url=url: c.get(url))
            assert r.status_code == 200, r.content[:200]
            truncated += bool(json.loads(r.content)["truncated"])
            old.append(ms)
        tiles[str(z)] = {
            "tile": _stats(cold),
            "tile_cpu": _stats(cpu),
            "revalidate_304": _stats(warm),
            "bytes_p50": int(statistics.median(sizes)),
            "bytes_max": max(sizes),
            "old_geojson": {**_stats(old), "truncated": truncated} if old else "skipped",
            "ratio_old_over_tile_p50": (
                round(statistics.median(old) / statistics.median(cold), 1) if old else None
            ),
        }
    result["tiles"] = tiles
    result["tile_p95_max_ms"] = max(t["tile"]["p95"] for t in tiles.values())
    result["tile_cpu_p95_max_ms"] = max(t["tile_cpu"]["p95"] for t in tiles.values())
    result["load"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    result["tile_goal_ms"] = 50

    # blocks.geojson for county-sized boxes (0.5 x 0.5 degrees, ~100 blocks) around blocks.
    new, old = [], []
    for r, col in centres[: (5 if quick else 12)]:
        lon, lat = -180 + col * 0.05, -90 + r * 0.05
        box = (lon - 0.25, lat - 0.25, lon + 0.25, lat + 0.25)
        url = f"/api/campaigns/{SLUG}/blocks.geojson?bbox={','.join(f'{v:.4f}' for v in box)}"
        c.get(url)
        new += [_ms(lambda url=url: c.get(url))[0] for _ in range(3)]
        rows, cols = grid.blocks_in_bounds(*box)
        old += [_ms(lambda rows=rows, cols=cols: _old_blocks_geojson(camp, rows, cols))[0]
                for _ in range(3)]  # fmt: skip
    result["blocks_geojson_county"] = {
        **_stats(new), "goal_median_ms": 50, "old_serialisation": _stats(old),
        "ratio_old_over_new_p50": round(statistics.median(old) / statistics.median(new), 1),
    }  # fmt: skip
    return result


def _env(quick: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    if not env.get("DATABASE_URL"):
        env["CROPLAYER_VAR_DIR"] = str(
            ROOT / "var" / ("bench-tiles-quick" if quick else "bench-tiles")
        )
    return env


def run(quick: bool) -> dict[str, Any]:
    env = _env(quick)
    if not env.get("DATABASE_URL"):
        Path(env["CROPLAYER_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "bench.bench_tiles", "--measure"] + (["--quick"] if quick else [])
    out = subprocess.run(args, cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    quick = "--quick" in sys.argv
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")  # the test client
    _ensure_postgres_database()
    _setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    if "--fixture" in sys.argv:
        print(json.dumps(fixture(quick)))
    else:
        print(json.dumps(measure(quick)))
