"""A national campaign full of results (issue 15 item 2): every block of the shipped
boundaries with a prediction, features (a ``BlockScore``) and a verdict on both sources, then
the round's evaluation (stop rules for every province, areas by SQL aggregates), the selection
of the next round's blocks, the stop status, the dashboard, and the GeoPackage export of a
province's final map with its peak memory, timed in-process against the old paths in the same
run where the old path is still runnable (on one province: at national scale it takes minutes).

Goals: stop status for all provinces <= 2 s, the dashboard <= 2 s, selection <= 10 s,
per-province areas by SQL aggregates, the province export streamed (peak memory independent
of the province's size: two provinces of different sizes, each exported in its own subprocess,
``ru_maxrss`` and tracemalloc's peak).

Database: the same as ``bench_tiles`` (``DATABASE_URL`` for PostGIS, else SpatiaLite in
``var/bench-tiles/``); its fixture (grid, assignments, predictions) is built first, then this
one adds, idempotently and in batches (``bulk_create``): round 1 owning the predictions (with
areas and confidences), a score with the 16 features per prediction, a verdict per block and
source, the official statistics, and for the export provinces a mask GeoTIFF per block and an
integration decision. ``--fixture`` alone builds it. No imagery.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.bench_tiles import (
    PASSWORD,
    ROOT,
    SLUG,
    _ensure_postgres_database,
    _ms,
    _setup,
    _stats,
    analyze,
)
from bench.bench_tiles import fixture as tiles_fixture

EXPORT_PROVINCES = (820000, 810000)  # Macao and Hong Kong: two sizes (a few, ~60 blocks)
ROUND_NUMBER = 1


def _round(camp: Any) -> Any:
    from learning.models import ModelKind, ModelVersion, Round, RoundState
    from mapping.models import AdminUnit, Block

    rnd = Round.objects.filter(campaign=camp, number=ROUND_NUMBER).first()
    if rnd is None:
        seg = ModelVersion.objects.get(campaign=camp, kind=ModelKind.SEGMENTER, is_current=True)
        rnd = Round.objects.create(
            campaign=camp, number=ROUND_NUMBER, state=RoundState.DONE,
            config={"make_current": False, "select_per_province": 50},
            checkpoint={"segmenter": seg.pk},
        )  # fmt: skip
        ids = set(
            Block.objects.filter(campaign=camp, province__isnull=False)
            .values_list("province_id", flat=True)
            .distinct()
        )
        rnd.provinces.set(AdminUnit.objects.filter(pk__in=ids, level="province"))
    return rnd


def fixture(quick: bool) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from annotation.models import Verdict, VerdictLabel
    from learning.core.features.block import FEATURE_NAMES
    from learning.models import BlockPrediction, BlockScore, ModelKind, ModelVersion
    from mapping.models import Campaign, OfficialStatistic
    from mapping.services.statistics import DEFAULT_STATISTICS, statistics_import

    out = tiles_fixture(quick)
    timings: dict[str, float] = {}
    camp = Campaign.objects.get(slug=SLUG)
    seg = ModelVersion.objects.get(campaign=camp, kind=ModelKind.SEGMENTER, is_current=True)
    rnd = _round(camp)
    preds = BlockPrediction.objects.filter(model_version=seg)
    if preds.filter(round__isnull=True).exists():
        t0 = time.perf_counter()
        # Areas and confidences from the made-up fraction (a 0.05° block is ~2,500 ha).
        with connection.cursor() as cur:
            cur.execute(
                f"UPDATE {BlockPrediction._meta.db_table} SET round_id = %s,"
                " cropland_area_ha = cropland_fraction * 2500.0,"
                " mean_confidence = 0.55 + 0.4 * cropland_fraction WHERE model_version_id = %s",
                [rnd.pk, seg.pk],
            )
        timings["prediction_update_s"] = round(time.perf_counter() - t0, 1)
    n_preds = preds.count()
    if BlockScore.objects.filter(prediction__model_version=seg).count() != n_preds:
        # One INSERT ... SELECT over the predictions, computed by the database: the 16
        # features, verdict probabilities and p_incorrect made up from the prediction's id.
        t0 = time.perf_counter()
        BlockScore.objects.filter(prediction__model_version=seg).delete()
        obj = "jsonb_build_object" if connection.vendor == "postgresql" else "json_object"
        feats = ", ".join(
            f"'{name}', p.cropland_fraction" if name == "area_fraction"
            else f"'{name}', ((p.id * {i + 3}) %% 97) / 97.0"
            for i, name in enumerate(FEATURE_NAMES)
        )
        p_inc = "((p.id * 37) %% 101) / 100.0"
        probs = (f"{obj}('tp', 1 - {p_inc}, 'fp', {p_inc} / 2, 'noise', {p_inc} / 4,"
                 f" 'artifact', {p_inc} / 4)")  # fmt: skip
        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {BlockScore._meta.db_table} (prediction_id, round_id, features,"
                " coverage_type, verdict_probs, p_incorrect)"
                f" SELECT p.id, %s, {obj}({feats}), 'full', {probs}, {p_inc}"
                f" FROM {BlockPrediction._meta.db_table} p WHERE p.model_version_id = %s",
                [rnd.pk, seg.pk],
            )
        timings["scores_s"] = round(time.perf_counter() - t0, 1)
    if VerdictLabel.objects.filter(block__campaign=camp).count() != n_preds:
        t0 = time.perf_counter()
        VerdictLabel.objects.filter(block__campaign=camp).delete()
        annotator = User.objects.get(username="annotator")
        cases = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(Verdict.values))
        now = timezone.now()
        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {VerdictLabel._meta.db_table} (block_id, source_id, user_id,"
                " verdict, created_at, updated_at, model_version, round_number)"
                f" SELECT p.block_id, p.source_id, %s,"
                f" CASE ((p.block_id * 7 + p.source_id) %% 5 %% 4) {cases} END, %s, %s, %s, 1"
                f" FROM {BlockPrediction._meta.db_table} p WHERE p.model_version_id = %s",
                [annotator.pk, now, now, seg.name, seg.pk],
            )
        timings["verdicts_s"] = round(time.perf_counter() - t0, 1)
    if not OfficialStatistic.objects.filter(campaign=camp).exists():
        statistics_import(campaign=camp, path=DEFAULT_STATISTICS)
    if not quick:
        timings.update(_export_fixture(camp, seg))
    analyze()
    return {
        **out,
        "scores": BlockScore.objects.filter(prediction__model_version=seg).count(),
        "verdicts": VerdictLabel.objects.filter(block__campaign=camp).count(),
        **timings,
    }


def _export_fixture(camp: Any, seg: Any) -> dict[str, float]:
    """For each export province: a mask GeoTIFF per block and source (a made-up field pattern
    at the campaign's zoom) and an integration decision per block."""
    import numpy as np
    import rasterio
    from django.conf import settings

    from learning.models import BlockPrediction
    from learning.product.core.decision import needed_sources
    from learning.product.models import BlockIntegration
    from mapping.geo.grid import block_raster
    from mapping.geo.raster import affine_of
    from mapping.models import Block

    timings: dict[str, float] = {}
    folder = Path(settings.DATA_DIR) / "bench-masks"
    for adcode in EXPORT_PROVINCES:
        blocks = Block.objects.filter(campaign=camp, province__adcode=adcode)
        if BlockIntegration.objects.filter(block__in=blocks).exists():
            continue
        t0 = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        decisions = ("only_mapbox", "only_google", "merge_both")
        patterns: dict[tuple[int, int, int], Any] = {}
        for i, (pk, geom) in enumerate(blocks.order_by("pk").values_list("pk", "geometry")):
            raster = block_raster(geom.extent, camp.zoom)
            decision = decisions[i % 3]
            by_source: dict[str, int] = {}
            for k, p in enumerate(
                BlockPrediction.objects.filter(block_id=pk, model_version=seg)
                .select_related("source")
                .order_by("source__slug")
            ):
                by_source[p.source.slug] = p.pk
                if p.source.slug not in needed_sources(decision):
                    continue
                shape = (raster.height, raster.width, k)
                if shape not in patterns:  # fields: a checkerboard with holes, per source
                    yy, xx = np.mgrid[0 : raster.height, 0 : raster.width]
                    period = 180 + 60 * k
                    mask = ((xx // period + yy // period) % 2 == 0).astype(np.uint8)
                    mask[(yy // 320 + xx // 320 + k) % 5 == 0] = 0
                    patterns[shape] = mask
                rel = f"bench-masks/{pk}_{p.source_id}.tif"
                with rasterio.open(
                    Path(settings.DATA_DIR) / rel, "w", driver="GTiff", width=raster.width,
                    height=raster.height, count=1, dtype="uint8", crs="EPSG:4326",
                    transform=affine_of(raster), compress="deflate",
                ) as dst:  # fmt: skip
                    dst.write(patterns[shape], 1)
                BlockPrediction.objects.filter(pk=p.pk).update(mask_path=rel)
            BlockIntegration.objects.create(
                block_id=pk, decision=decision, probability=0.9,
                mapbox_prediction_id=by_source.get("mapbox"),
                google_prediction_id=by_source.get("google"),
            )  # fmt: skip
        timings[f"export_fixture_{adcode}_s"] = round(time.perf_counter() - t0, 1)
    return timings


# ---- the old paths (before this benchmark), for the ratios ------------------------------------


def _old_province_areas(rnd: Any, seg: Any, province: Any) -> dict[str, float]:
    """The evaluation's per-province areas before: a Python loop over every prediction."""
    from collections import defaultdict

    from learning.models import BlockPrediction
    from learning.services.round.evaluate import _source_area
    from mapping.services.area_reference import area_reference

    ref = area_reference(campaign=rnd.campaign, province=province)
    mapped = BlockPrediction.objects.filter(round=rnd, model_version=seg, block__province=province)
    if ref.block_ids is not None:
        mapped = mapped.filter(block_id__in=ref.block_ids)
    areas: dict[str, float] = defaultdict(float)
    for slug, area in mapped.values_list("source__slug", "cropland_area_ha"):
        key = _source_area(slug)
        if key:
            areas[key] += area
    return dict(areas)


def _old_candidates(rnd: Any, province_id: int, labelled: set[int]) -> dict[int, Any]:
    """The selection's candidate reading before: model instances and GEOS centroids per score
    (per block: centroid, p_incorrect, confidences, IoU features, fractions, sorted)."""
    from collections import defaultdict

    from learning.models import BlockScore

    by_block: dict[int, list[Any]] = defaultdict(list)
    for s in BlockScore.objects.filter(
        prediction__round=rnd, prediction__block__province_id=province_id
    ).select_related("prediction", "prediction__block"):
        if s.prediction.block_id not in labelled:
            by_block[s.prediction.block_id].append(s)
    out = {}
    for block_id, scores in by_block.items():
        c = scores[0].prediction.block.geometry.centroid
        ious = [s.features.get("iou_sources") for s in scores if s.features]
        out[block_id] = (
            round(c.x, 9), round(c.y, 9),
            sorted(s.p_incorrect for s in scores if s.p_incorrect is not None),
            sorted(s.prediction.mean_confidence for s in scores
                   if s.prediction.mean_confidence is not None),
            sorted(v for v in ious if v is not None),
            sorted(s.prediction.cropland_fraction for s in scores),
        )  # fmt: skip
    return out


def _new_candidates(rnd: Any, province_id: int, labelled: set[int]) -> dict[int, Any]:
    from learning.services.round.select import _selection_scores

    out = {}
    for _, by_block in _selection_scores(rnd=rnd, province_ids=[province_id], labelled=labelled):
        for block_id, (lon, lat, scores) in by_block.items():
            out[block_id] = (round(lon, 9), round(lat, 9)) + tuple(
                sorted(s[i] for s in scores if s[i] is not None) for i in range(4)
            )
    return out


# ---- the measurements -------------------------------------------------------------------------


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _old_selection(rnd: Any) -> list[tuple[int, int]]:
    """The selection before the SQL pre-rank (74b1f56): every unlabelled scored block read
    with its scores, then the spread walk per province; picks as (block, province) by rank."""
    from learning.models import ProvinceDecision, ProvinceRoundResult
    from learning.selection import select_spread
    from learning.services.config import round_config_parse
    from learning.services.round.select import _candidates, _labelled, _selection_scores

    cfg = round_config_parse(rnd.config)
    continuing = list(
        ProvinceRoundResult.objects.filter(
            round=rnd, decision=ProvinceDecision.CONTINUE
        ).values_list("province_id", flat=True)
    )
    picks = []
    for province_id, by_block in _selection_scores(
        rnd=rnd, province_ids=continuing, labelled=_labelled(rnd)
    ):
        cands, _ = _candidates(by_block)
        weights = cfg.weights.model_dump()
        for pick in select_spread(
            cands, n=cfg.select_per_province, cell_deg=cfg.spread_cell_deg, weights=weights
        ):
            picks.append((pick.score, pick.block_id, province_id))
    picks.sort(key=lambda p: (-p[0], p[1]))
    return [(b, prov) for _, b, prov in picks]


def _timed_selection(rnd: Any) -> dict[str, Any]:
    """The selection as a round runs it (from the SELECTING state), with this process's CPU,
    the 1-minute load beside it, and whether it picked what the old full walk picks."""
    from learning.models import BlockSelection, Round, RoundState
    from learning.services.round.select import round_select_run

    Round.objects.filter(pk=rnd.pk).update(state=RoundState.SELECTING, finished_at=None)
    cpu0 = time.process_time()
    load = _load()
    ms, _ = _ms(lambda: round_select_run(round_id=rnd.pk))
    return {
        "ms": round(ms, 1), "cpu_ms": round((time.process_time() - cpu0) * 1000, 1),
        "load": load, "goal_ms": 10_000,
        "selected": BlockSelection.objects.filter(round=rnd).count(),
    }  # fmt: skip


def measure_selection() -> dict[str, Any]:
    """Only the selection, on the national fixture (``--selection``): three runs of the new
    path, one of the old full walk (timed too), and whether their picks are the same. The
    round's evaluation runs first when it has not (the selection needs its decisions)."""
    from django.db import connection

    from learning.models import BlockSelection, ProvinceRoundResult, Round, RoundState
    from learning.services.round.evaluate import round_evaluate_run
    from mapping.models import Campaign

    camp = Campaign.objects.get(slug=SLUG)
    rnd = _round(camp)
    result: dict[str, Any] = {"database": connection.vendor}
    if not ProvinceRoundResult.objects.filter(round=rnd).exists():
        Round.objects.filter(pk=rnd.pk).update(state=RoundState.EVALUATING, finished_at=None)
        round_evaluate_run(round_id=rnd.pk)
    runs = [_timed_selection(rnd) for _ in range(3)]
    result["selection"] = runs
    new = list(
        BlockSelection.objects.filter(round=rnd).order_by("rank").values_list(
            "block_id", "province_id"
        )
    )
    cpu0 = time.process_time()
    load = _load()
    ms, old = _ms(lambda: _old_selection(rnd))
    result["old_full_walk"] = {
        "ms": round(ms, 1), "cpu_ms": round((time.process_time() - cpu0) * 1000, 1),
        "load": load,
    }  # fmt: skip
    result["same_picks_as_old"] = new == old
    result["picks"] = len(new)
    return result


def measure(quick: bool) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from learning.dashboard import dashboard_data, province_rows
    from learning.models import BlockSelection, ModelKind, ModelVersion, Round, RoundState
    from learning.selectors import stop_status
    from learning.services.round.evaluate import round_evaluate_run
    from mapping.models import AdminUnit, Campaign

    result: dict[str, Any] = {"database": connection.vendor, "load_before": _load()}
    t0 = time.perf_counter()
    result["fixture"] = fixture(quick)
    result["fixture"]["wall_s"] = round(time.perf_counter() - t0, 1)
    camp = Campaign.objects.get(slug=SLUG)
    seg = ModelVersion.objects.get(campaign=camp, kind=ModelKind.SEGMENTER, is_current=True)
    rnd = _round(camp)
    provinces = list(rnd.provinces.order_by("adcode"))

    # The round's evaluation of every province (areas, correctness, stop rules), then selection.
    Round.objects.filter(pk=rnd.pk).update(state=RoundState.EVALUATING, finished_at=None)
    cpu0 = time.process_time()
    ms, _ = _ms(lambda: round_evaluate_run(round_id=rnd.pk))
    result["evaluate_all_provinces"] = {
        "provinces": len(provinces), "ms": round(ms, 1),
        "cpu_ms": round((time.process_time() - cpu0) * 1000, 1),
    }  # fmt: skip
    assert Round.objects.get(pk=rnd.pk).state == RoundState.SELECTING
    result["selection"] = _timed_selection(rnd)
    picked = list(
        BlockSelection.objects.filter(round=rnd).order_by("rank").values_list(
            "block_id", "province_id"
        )
    )
    result["selection"]["same_picks_as_old_full_walk"] = picked == _old_selection(rnd)

    # Per-province areas: the aggregate the evaluation now runs against the old loop.
    from learning.services.round.evaluate import _province_areas
    from mapping.services.area_reference import area_reference

    # The old paths on one province of ~10,000 blocks (the largest hold ~40,000: minutes).
    big = min(
        provinces, key=lambda p: abs(p.province_blocks.filter(campaign=camp).count() - 10_000)
    )
    new = [_ms(lambda: _province_areas(rnd=rnd, seg=seg, province=big,
                                       ref=area_reference(campaign=camp, province=big)))[0]
           for _ in range(3)]  # fmt: skip
    old = [_ms(lambda: _old_province_areas(rnd, seg, big))[0] for _ in range(3)]
    result["province_areas"] = {
        "province": big.adcode, "new": _stats(new), "old_loop": _stats(old),
        "ratio_old_over_new_p50": round(_stats(old)["p50"] / _stats(new)["p50"], 1),
    }  # fmt: skip
    from annotation.models import Assignment, Sample

    labelled = set(Sample.objects.filter(block__campaign=camp).values_list("block_id", flat=True))
    labelled |= set(
        Assignment.objects.filter(block__campaign=camp).values_list("block_id", flat=True)
    )
    old_sel, old_c = _ms(lambda: _old_candidates(rnd, big.pk, labelled))
    new_sel, new_c = _ms(lambda: _new_candidates(rnd, big.pk, labelled))
    result["selection"]["one_province"] = {
        "province": big.adcode, "blocks": len(new_c), "old_read_ms": round(old_sel, 1),
        "new_read_ms": round(new_sel, 1), "ratio_old_over_new": round(old_sel / new_sel, 1),
        "same_candidates": old_c == new_c,
    }  # fmt: skip

    # Stop status (service and API), the dashboard (page and JSON).
    lead = User.objects.get(username="lead")
    c = Client()
    assert c.login(username="lead", password=PASSWORD)
    repeats = 3 if quick else 5
    stop = [_ms(lambda: stop_status(campaign=camp))[0] for _ in range(repeats)]
    url = reverse("api-stop-status", kwargs={"slug": SLUG})
    c.get(url)
    stop_api = [_ms(lambda: c.get(url))[0] for _ in range(repeats)]
    result["stop_status"] = {"service": _stats(stop), "api": _stats(stop_api), "goal_ms": 2000,
                             "provinces": len(province_rows(campaign=camp))}  # fmt: skip
    page = reverse("learning-dashboard", kwargs={"slug": SLUG})
    api = reverse("api-learning-dashboard", kwargs={"slug": SLUG})
    for u in (page, api):
        r = c.get(u)
        assert r.status_code == 200, (u, r.status_code)
    result["dashboard"] = {
        "page": _stats([_ms(lambda: c.get(page))[0] for _ in range(repeats)]),
        "api": _stats([_ms(lambda: c.get(api))[0] for _ in range(repeats)]),
        "data": _stats([_ms(lambda: dashboard_data(campaign=camp))[0] for _ in range(repeats)]),
        "goal_ms": 2000,
    }
    del lead

    # The export of a province's final map, each in a subprocess (its own peak memory).
    from learning.models import ProvinceDecision, ProvinceStatus

    exports = {}
    for adcode in () if quick else EXPORT_PROVINCES:
        unit = AdminUnit.objects.get(level="province", adcode=adcode)
        ProvinceStatus.objects.update_or_create(
            campaign=camp, province=unit, defaults={"decision": ProvinceDecision.CONVERGED}
        )
        args = [sys.executable, "-m", "bench.bench_national", "--export", str(adcode)]
        out = subprocess.run(args, cwd=ROOT, env=dict(os.environ), check=True,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
        exports[str(adcode)] = json.loads(out.stdout.strip().splitlines()[-1])
    result["export"] = exports
    sizes = sorted(exports.values(), key=lambda e: e["blocks"])
    result["export_peak_ratio_big_over_small"] = None if len(sizes) < 2 else {
        "blocks": round(sizes[-1]["blocks"] / max(1, sizes[0]["blocks"]), 2),
        "tracemalloc_peak": round(sizes[-1]["tracemalloc_peak_mb"]
                                  / max(0.01, sizes[0]["tracemalloc_peak_mb"]), 2),
    }  # fmt: skip
    result["load_after"] = _load()
    return result


def export_one(adcode: int) -> dict[str, Any]:
    """Export one province (in this process): wall, CPU, peak memory, what it wrote."""
    from django.contrib.auth.models import User

    from learning.product.models import ExportKind, ProductExport
    from learning.product.services.exports import product_export_run
    from mapping.models import AdminUnit, Campaign, JobStatus

    camp = Campaign.objects.get(slug=SLUG)
    unit = AdminUnit.objects.get(level="province", adcode=adcode)
    export = ProductExport.objects.create(
        campaign=camp, province=unit, kind=ExportKind.PROVINCE,
        requested_by=User.objects.get(username="lead"),
    )  # fmt: skip
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0, cpu0 = time.perf_counter(), time.process_time()
    done = product_export_run(export_id=export.pk)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert done.status == JobStatus.DONE, done.failure_reason
    gpkg = {k: v["bytes"] for k, v in done.files.items() if k.endswith(".gpkg")}
    return {
        "adcode": adcode,
        "blocks": done.summary["blocks"],
        "polygons": done.summary["polygons"],
        "gpkg_bytes": sum(gpkg.values()),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "ru_maxrss_mb_before": round(rss0 / 1024, 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _env(quick: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    if not env.get("DATABASE_URL"):
        env["CROPLAYER_VAR_DIR"] = str(
            ROOT / "var" / ("bench-tiles-quick" if quick else "bench-tiles")
        )
    else:
        env.setdefault("CROPLAYER_VAR_DIR", str(ROOT / "var" / "bench-national-pg"))
    return env


def run(quick: bool) -> dict[str, Any]:
    env = _env(quick)
    Path(env["CROPLAYER_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "bench.bench_national", "--measure"]
    out = subprocess.run(args + (["--quick"] if quick else []), cwd=ROOT, env=env, check=True,
                         stdout=subprocess.PIPE, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    quick = "--quick" in sys.argv
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
    _ensure_postgres_database()
    _setup()
    from django.core.management import call_command

    if "--export" in sys.argv:
        print(json.dumps(export_one(int(sys.argv[sys.argv.index("--export") + 1]))))
        sys.exit(0)
    call_command("migrate", "--noinput", verbosity=0)
    if "--fixture" in sys.argv:
        print(json.dumps(fixture(quick)))
    elif "--selection" in sys.argv:
        print(json.dumps(measure_selection()))
    else:
        print(json.dumps(measure(quick)))
