"""Learning rounds end to end: a real Celery worker runs every stage on a tiny campaign."""

from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management import call_command

from annotation.models import CampaignWorkflow, OverviewCellSums, Sample, SampleSplit
from annotation.services import assignment_self_claim
from learning.core.bundle import bundle_open
from learning.core.iqa.quality import quality_features
from learning.core.segmentation.data import rasterize_polygons
from learning.core.segmentation.metrics import iou_counts
from learning.models import (
    BlockPrediction,
    BlockScore,
    BlockSelection,
    ModelKind,
    ModelVersion,
    ProvinceRoundResult,
    ProvinceStatus,
    Round,
    RoundState,
)
from learning.services import round_start
from tests.learning.test_rounds_fixtures import TINY_CONFIG, tiny_campaign_create


def wait_for_round(rnd: Round, *, states: tuple[str, ...], timeout: float = 240) -> Round:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rnd.refresh_from_db()
        if rnd.state in states:
            return rnd
        time.sleep(0.3)
    raise AssertionError(f"round stuck in {rnd.state} after {timeout} s; log:\n{rnd.log}")


def _events(layer, channel: str) -> list[dict]:
    out = []
    while True:
        try:
            msg = async_to_sync(_receive)(layer, channel)
        except TimeoutError:
            return out
        out.append(msg)


async def _receive(layer, channel: str) -> dict:
    import asyncio

    return await asyncio.wait_for(layer.receive(channel), timeout=1.0)


def test_round_runs_every_stage_in_a_worker(celery_worker_proc, users):
    tiny = tiny_campaign_create(user=users["lead"])
    CampaignWorkflow.objects.create(campaign=tiny.campaign, self_assign=True)
    # One image file is corrupt: the round logs it and fetches the image again.
    bad = tiny.blocks[1].images.get(source__slug="google")
    bad.path = bad.path.replace(".tif", ".corrupt.tif")
    bad.save()
    (Path(settings.DATA_DIR) / bad.path).write_bytes(b"not a tiff")
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    rnd = round_start(campaign=tiny.campaign, provinces=None, user=users["admin"],
                      config=TINY_CONFIG)
    async_to_sync(layer.group_add)(rnd.group, channel)
    rnd = wait_for_round(rnd, states=("done", "failed", "cancelled"))
    assert rnd.state == RoundState.DONE, rnd.failure_reason + "\n" + rnd.log

    # Models: all three trained, registered with complete bundles, and made current.
    seg = ModelVersion.objects.get(campaign=tiny.campaign, kind=ModelKind.SEGMENTER)
    iqa = ModelVersion.objects.get(campaign=tiny.campaign, kind=ModelKind.IQA)
    corr = ModelVersion.objects.get(campaign=tiny.campaign, kind=ModelKind.CORRECTNESS)
    for mv in (seg, iqa, corr):
        assert mv.is_current and mv.round_id == rnd.pk
        bundle_open(Path(settings.DATA_DIR) / mv.bundle_path)  # verifies every checksum
    train_ids = set(Sample.objects.filter(block__campaign=tiny.campaign, split=SampleSplit.TRAIN)
                    .values_list("pk", flat=True))
    assert set(seg.training_samples) == train_ids and len(train_ids) == 4
    # The overview map's low-zoom sums for the new segmenter were counted at the round's end
    # (annotation.tile_sums.overview_sums_prepare), so no lead's tile has to.
    assert OverviewCellSums.objects.filter(campaign=tiny.campaign, segmenter_id=seg.pk).exists()
    assert "overview map sums counted in" in rnd.log
    assert len(seg.metrics["epoch_losses"]) == 2

    # Predictions: every block on both sources, mask GeoTIFF + polygons consistent.
    preds = list(BlockPrediction.objects.filter(round=rnd).select_related("block", "source"))
    # Every block on both sources, including the two google images the round fetched itself
    # and the corrupt one it fetched again.
    assert len(preds) == 16
    assert f"{tiny.blocks[1].code} / google: image unreadable, skipped" in rnd.log
    bad.refresh_from_db()
    assert bad.status == "ok" and not bad.path.endswith(".corrupt.tif")
    for p in preds:
        with rasterio.open(Path(settings.DATA_DIR) / p.mask_path) as ds:
            mask = ds.read(1)
            assert ds.crs.to_epsg() == 4326 and ds.count == 2
        assert p.cropland_fraction == pytest.approx(float((mask == 1).mean()), abs=1e-6)
        if mask.any():
            assert p.geometry is not None and p.geometry.area > 0
        else:
            assert p.geometry is None

    # Scores: 16 features each, a coverage type from the classifier, p_incorrect from XGBoost.
    scores = list(BlockScore.objects.filter(prediction__round=rnd))
    assert len(scores) == 16
    for s in scores:
        assert len(s.features) == 17  # 16 model features + edge density
        assert s.coverage_type in ("planting", "cloudy", "non_planting", "snow_ice", "nodata")
        assert 0.0 <= s.p_incorrect <= 1.0
        assert s.p_incorrect == pytest.approx(1 - s.verdict_probs["tp"], abs=1e-5)
    # Each image's quality statistics were computed once, in the predict stage, and stored on
    # its row for the image it holds; the features were taken from them (and match the image).
    for p in preds:
        image = p.block.images.get(source=p.source)
        assert image.quality["path"] == image.path and image.quality["checksum"] == image.checksum
        with rasterio.open(Path(settings.DATA_DIR) / image.path) as ds:
            pixels = np.moveaxis(ds.read([1, 2, 3]), 0, -1)
        assert image.quality["sharpness"] == pytest.approx(quality_features(pixels).sharpness)
        assert p.score.features["sharpness"] == pytest.approx(image.quality["sharpness"])
        assert p.score.features["lightness_median"] == pytest.approx(image.quality["lightness"])

    # Per province: IoU recomputed here from the mask files and the held-out polygons.
    results = {r.province.adcode: r for r in ProvinceRoundResult.objects.filter(round=rnd)}
    assert set(results) == {420000, 430000}
    for prov in tiny.provinces:
        r = results[prov.adcode]
        val = Sample.objects.get(block__province=prov, split=SampleSplit.VALIDATION)
        pred = BlockPrediction.objects.get(round=rnd, block=val.block, source=val.source)
        with rasterio.open(Path(settings.DATA_DIR) / pred.mask_path) as ds:
            mask, transform = ds.read(1).astype(np.uint8), ds.transform
        polys = [shapely.from_wkb(bytes(p.geometry.wkb)) for p in val.polygons.all()]
        c = iou_counts(mask, rasterize_polygons(polys, transform=transform, shape=mask.shape))
        expected = c.iou if c.tp + c.fp + c.fn else 1.0
        assert r.iou_samples == 1 and r.iou == pytest.approx(expected)
        areas = {s: sum(p.cropland_area_ha for p in preds
                        if p.block.province_id == prov.pk and p.source.slug == s)
                 for s in ("mapbox", "google")}
        assert r.area_mapbox_ha == pytest.approx(areas["mapbox"])
        assert r.area_google_ha == pytest.approx(areas["google"])
        assert r.official_ha == pytest.approx(10_000.0)
        assert r.correctness_samples == 8
        assert set(r.reasons) == {"iou", "correctness", "area"}
        status = ProvinceStatus.objects.get(campaign=tiny.campaign, province=prov)
        assert status.decision == r.decision and status.last_result_id == r.pk

    # Selection: unlabelled blocks only, at most one per 0.05 degree cell, ranked.
    sel = list(BlockSelection.objects.filter(round=rnd).order_by("rank"))
    continuing = [r for r in results.values() if r.decision == "continue"]
    assert len(sel) == len(continuing)  # one unlabelled block per province (block 3)
    assert [s.rank for s in sel] == list(range(1, len(sel) + 1))
    labelled = set(Sample.objects.values_list("block_id", flat=True))
    assert not {s.block_id for s in sel} & labelled
    if sel:
        # The annotators' queue serves the round's rank 1 first (not the seed order).
        claimed = assignment_self_claim(user=users["annotator"], campaign=tiny.campaign)
        assert claimed is not None and claimed.block_id == sel[0].block_id

    # ``stop_status --json`` prints the same numbers as the round's results.
    out = StringIO()
    call_command("stop_status", campaign=tiny.campaign.slug, json=True, stdout=out)
    data = json.loads(out.getvalue())
    assert data["thresholds"] == {"iou_min": 0.85, "correctness_min": 0.85,
                                  "area_ratio_min": 0.8, "max_supplementary_rounds": 3}
    assert [row["adcode"] for row in data["provinces"]] == [420000, 430000]
    for row in data["provinces"]:
        r = results[row["adcode"]]
        assert (row["iou"], row["iou_samples"]) == (r.iou, 1)
        assert (row["correctness"], row["correctness_samples"]) == (r.correctness,
                                                                    r.correctness_samples)
        assert row["area_mapbox_pct"] == pytest.approx(100 * r.area_mapbox_ha / 10_000, abs=0.01)
        assert row["area_google_pct"] == pytest.approx(100 * r.area_google_ha / 10_000, abs=0.01)
        assert row["official_status"] == "VERIFIED" and row["official_unverified"] is False
        assert row["decision"] == r.decision and row["round"] == 1
        assert row["supplementary_rounds"] == 0 and row["max_supplementary_rounds"] == 3
        assert set(row["criteria"]) == {"iou", "correctness", "area"}
        assert row["reason"] == ProvinceStatus.objects.get(province__adcode=row["adcode"]).reason

    # Progress reached the round's Channels group, ending with the final state.
    events = _events(layer, channel)
    assert events, "no progress event reached the round's group"
    assert events[-1]["state"] == "done" and events[-1]["final"] is True
    assert {"training", "predicting", "scoring"} & {e["state"] for e in events}
    assert set(rnd.timings) >= {"training", "predicting", "scoring", "evaluating"}



def test_a_round_runs_on_separate_gpu_and_cpu_workers(split_workers, users):
    """The team set-up: model work on a gpu-queue worker, features and bookkeeping on a
    cpu-queue worker; each takes only its queue's tasks and the round finishes."""
    import re

    tiny = tiny_campaign_create(user=users["lead"])
    # A smaller U-Net than the preset's, as the demo preset asks (segmenter_model per engine).
    rnd = round_start(campaign=tiny.campaign, provinces=None, user=users["admin"],
                      config=TINY_CONFIG | {"segmenter_model": {"unet": {"widths": [4, 8]}},
                                            "segmenter_engine": "unet"})
    rnd = wait_for_round(rnd, states=("done", "failed", "cancelled"))
    assert rnd.state == RoundState.DONE, rnd.failure_reason + "\n" + rnd.log
    seg = ModelVersion.objects.get(campaign=tiny.campaign, kind=ModelKind.SEGMENTER)
    assert seg.config["model"]["widths"] == [4, 8]
    received = {
        q: set(re.findall(r"Task (learning\.\w+\.\w+)\[", log.read_text(errors="replace")))
        for q, log in split_workers.items()
    }
    assert {"learning.gpu.round_train", "learning.gpu.round_predict_batch"} <= received["gpu"]
    assert {"learning.cpu.round_advance", "learning.cpu.round_features_batch",
            "learning.cpu.round_score"} <= received["cpu"]
    assert all(t.startswith("learning.gpu.") for t in received["gpu"])
    assert all(t.startswith("learning.cpu.") for t in received["cpu"])
    assert BlockPrediction.objects.filter(round=rnd).count() == 16
