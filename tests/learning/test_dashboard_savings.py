"""Annotation savings on the dashboard: the order simulation on real block images and polygons."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from django.contrib.gis.geos import Polygon
from django.core.cache import cache
from django.urls import reverse

from annotation.models import Sample, SamplePolygon
from learning.dashboard import savings_simulation
from mapping.geo.grid import BlockRaster
from mapping.geo.raster import write_block_image
from mapping.models import Block, BlockImage, Campaign, ImagerySource
from mapping.services.members import campaign_members_add

GREEN, BROWN = (40, 160, 50), (150, 110, 70)


def _labelled_block(camp, src, data_dir, col: int, kind: str, split: str, user) -> Sample:
    """A 64 x 64 px block image; 'mixed' has green cropland (a polygon) on its left half."""
    west, south = 112 + col * 0.05, 30.0
    block = Block.objects.create(campaign=camp, row=0, col=col,
                                 geometry=Polygon.from_bbox((west, south, west + 0.05,
                                                             south + 0.05)))
    rgb = np.empty((3, 64, 64), np.uint8)
    rgb[:] = np.array(BROWN, np.uint8)[:, None, None]
    if kind == "mixed":
        rgb[:, :, :32] = np.array(GREEN, np.uint8)[:, None, None]
    rel = f"img/{col}.tif"
    (data_dir / "img").mkdir(exist_ok=True)
    write_block_image(data_dir / rel, rgb, None,
                      BlockRaster(west, south, west + 0.05, south + 0.05, 64, 64))
    BlockImage.objects.create(block=block, source=src, status="ok", path=rel)
    sample = Sample.objects.create(block=block, source=src, split=split, created_by=user,
                                   kind="positive" if kind == "mixed" else "negative")
    if kind == "mixed":
        SamplePolygon.objects.create(
            sample=sample, created_by=user,
            geometry=Polygon.from_bbox((west, south, west + 0.025, south + 0.05)))
    return sample


@pytest.fixture
def labelled(db, users, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    cache.clear()
    camp = Campaign.objects.create(slug="sav", name="Sav", region="t", year=2020, zoom=12)
    campaign_members_add(campaign=camp, users=[users["lead"]])
    src = ImagerySource.objects.create(slug="mapbox", name="M", kind="synthetic")
    # Labelling order: the informative (mixed) block first, then three negatives.
    for col, kind in enumerate(["mixed", "bare", "bare", "bare"]):
        _labelled_block(camp, src, tmp_path, col, kind, "train", users["lead"])
    _labelled_block(camp, src, tmp_path, 9, "mixed", "validation", users["lead"])
    return camp


def test_the_labelling_order_beats_random_orders(labelled):
    sim = savings_simulation(campaign=labelled)
    assert sim["error"] == ""
    assert (sim["train_blocks"], sim["validation_blocks"], sim["repeats"]) == (4, 1, 5)
    active = {p["labels"]: p["iou"] for p in sim["active_curve"]}
    random = {p["labels"]: p["iou"] for p in sim["random_curve"]}
    assert sorted(active) == [1, 2, 3, 4]
    # One mixed block separates green from brown: near-perfect IoU on the held-out block.
    assert active[1] == pytest.approx(1.0)
    # Random orders start with a negative block 3 times in 4 and then predict no cropland.
    assert random[1] < active[1]
    assert random[4] == pytest.approx(active[4])  # all four blocks: the same training set
    # Each random order scores 1 once it holds the mixed block, else 0; the mean over the 5
    # orders (seed 0) is 2/5, 3/5, 4/5, 5/5, so random selection needs all 4 blocks for the
    # IoU that the labelling order reached with its first: 4 times as many labels.
    assert [round(random[n], 6) for n in (1, 2, 3, 4)] == [0.4, 0.6, 0.8, 1.0]
    first = sim["rounds"][0]
    assert (first["labels_active"], first["labels_random"], first["method"]) == (1, 4, "measured")
    assert first["ratio"] == pytest.approx(4.0) and first["saved"] == pytest.approx(0.75)


def test_simulation_is_cached_until_a_sample_changes(labelled):
    first = savings_simulation(campaign=labelled)
    assert savings_simulation(campaign=labelled) is not None
    # An edit bumps the sample's version: the next call computes again (and sees the change).
    s = Sample.objects.filter(split="validation").get()
    s.split = "train"
    s.version += 1
    s.save()
    again = savings_simulation(campaign=labelled)
    assert again["validation_blocks"] == 0 and "validation" in again["error"]
    assert first["validation_blocks"] == 1


def test_dashboard_page_shows_the_saving(labelled, users, client):
    client.force_login(users["lead"])
    html = client.get(reverse("learning-dashboard", args=[labelled.slug])).content.decode()
    assert "5 of 5 blocks labelled" in html
    assert 'id="savings-table"' in html and 'id="chart-savings"' in html
    assert "logistic regression" in html  # says honestly what the simulation is
    # The first block already gave the final IoU; random orders needed all four.
    assert "with 1 blocks" in html and "× 4.00" in html


def _replay_file(var_dir, *, engine: str = "unet", seeds: list[int] | None = None) -> dict:
    """A saved replay as ``python -m learning replay`` writes it (the fields the report uses)."""
    result = {
        "schema": 1, "engine": {"name": engine, "preset": "default", "config": {}},
        "data": {"datasets": ["gid15", "loveda"]}, "created_at": "2026-12-07T03:00:00+00:00",
        "n_pool": 190, "n_validation": 40, "train_options": {"time_budget_s": 60.0},
        "all_cropland": {"iou": 0.31},
        "arms": {
            "selection": [{"round": 0, "labels": 8, "iou": 0.50},
                          {"round": 1, "labels": 16, "iou": 0.66},
                          {"round": 2, "labels": 24, "iou": 0.70}],
            "random": [{"round": 0, "labels": 8, "iou": 0.50},
                       {"round": 1, "labels": 16, "iou": 0.58},
                       {"round": 2, "labels": 24, "iou": 0.64}],
        },
        "target_iou": 0.64,
        "labels_to_reach_random_final": {"selection": {"labels": 16.0},
                                         "random": {"labels": 24.0}},
    }
    if seeds is not None:
        result["seeds"] = seeds
    (var_dir / "replay").mkdir(parents=True, exist_ok=True)
    (var_dir / "replay" / "latest.json").write_text(json.dumps(result))
    return result


def test_report_rests_on_the_real_segmenter_replay_when_one_is_saved(labelled, users, client,
                                                                      settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    client.force_login(users["lead"])
    url = reverse("learning-dashboard", args=[labelled.slug])
    # No replay yet: the proxy is the report, labelled as the fast fallback.
    html = client.get(url).content.decode()
    assert 'data-basis="proxy"' in html and 'id="replay-missing"' in html
    assert "Fast fallback: a logistic-regression proxy" in html
    assert 'id="savings-proxy"' not in html  # shown openly, not folded away
    _replay_file(settings.VAR_DIR)
    html = client.get(url).content.decode()
    assert 'data-basis="replay"' in html and 'id="replay-table"' in html
    assert "Rests on the unet segmenter (default preset)" in html
    assert "Random selection reached IoU 0.640 with 24.0 tiles" in html
    assert "× 1.50" in html  # 24 random tiles / 16 selected
    assert "scores 0.310 on the same validation tiles" in html  # the constant guess beside it
    # The proxy is still there, folded and named as the fallback.
    assert '<details id="savings-proxy"><summary>Fast fallback' in html
    data = client.get(reverse("learning-dashboard", args=[labelled.slug])).context["data"]
    assert data["savings"]["basis"] == "replay"
    assert data["savings"]["replay"]["engine"] == "unet"
    assert 'id="replay-seeds"' not in html  # one seed: nothing to say
    _replay_file(settings.VAR_DIR, seeds=[0, 1, 2])
    html = client.get(url).content.decode()
    assert "Means of 3 seeds, each with its own starting tiles and validation fold." in html


def test_an_unreadable_replay_file_falls_back_to_the_proxy(labelled, users, client, settings,
                                                           tmp_path):
    settings.VAR_DIR = tmp_path
    (tmp_path / "replay").mkdir()
    (tmp_path / "replay" / "latest.json").write_text("{not json")
    client.force_login(users["lead"])
    resp = client.get(reverse("learning-dashboard", args=[labelled.slug]))
    html = resp.content.decode()
    assert resp.status_code == 200
    assert 'data-basis="proxy"' in html and 'data-k="replay_error"' in html
    assert "latest.json" in html


def test_the_saving_reads_in_chinese_after_an_english_reader_filled_the_cache(labelled, users,
                                                                             client):
    """The simulation is cached for every reader: its note and each row's method are put in the
    reader's language when the page is made, not stored in the first reader's."""
    client.force_login(users["lead"])
    url = reverse("learning-dashboard", args=[labelled.slug])
    en = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Simulation on the labelled blocks" in en and "<td>measured</td>" in en
    zh = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "Simulation on the labelled blocks" not in zh
    assert "基于已标注图块的模拟" in zh
    assert '<html lang="zh-hans">' in zh
    shown = re.sub(r"<script.*?</script>", "", zh, flags=re.S)  # the page's JSON keeps the keys
    assert "<td>实测</td>" in shown and "measured" not in shown
