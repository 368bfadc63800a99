"""The demo's played interpreters, its DEMO footprint figures, and the validation numbers'
intervals in stop_status (issue 13)."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.management import call_command

from learning.models import ProvinceRoundResult, Round, RoundState
from learning.services.demo_player import _verdict
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, OfficialStatistic


def test_verdicts_compare_the_prediction_with_the_truth():
    truth = np.zeros((60, 60), np.uint8)
    truth[10:50, 10:50] = 1
    assert _verdict(truth.copy(), truth, "planting") == "tp"
    everything = np.ones_like(truth)
    assert _verdict(everything, truth, "planting") == "fp"
    scattered = np.zeros_like(truth)
    scattered[::7, ::7] = 1
    assert _verdict(scattered, truth, "planting") == "noise"
    assert _verdict(scattered, truth, "cloudy") == "artifact"
    assert _verdict(np.zeros_like(truth), np.zeros_like(truth), "planting") == "tp"


@pytest.mark.django_db
def test_demo_figures_count_the_truth_inside_the_campaigns_blocks():
    from annotation.services.demo import demo_statistics_write

    prov = AdminUnit.objects.create(level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省",
                                    geometry=MultiPolygon(Polygon.from_bbox((112, 30, 114, 32)),
                                                          srid=4326))
    county = AdminUnit.objects.create(level=AdminLevel.COUNTY, adcode=420100, name_zh="县",
                                      parent=prov,
                                      geometry=MultiPolygon(Polygon.from_bbox((112, 30, 113, 31)),
                                                            srid=4326))
    camp = Campaign.objects.create(slug="d", name="d", year=2020, zoom=12)
    for i, w in enumerate((112.5, 112.55)):
        Block.objects.create(campaign=camp, row=i, col=0, province=prov, county=county,
                             geometry=Polygon.from_bbox((w, 30.5, w + 0.05, 30.55)))
    assert demo_statistics_write(campaign=camp) == 1
    stat = OfficialStatistic.objects.get(campaign=camp, province=county)
    assert stat.status == "DEMO" and stat.campaign_part and "not an official" in stat.source
    block_ha = 0.05 * 111_320 * np.cos(np.radians(30.525)) * 0.05 * 110_574 / 10_000
    assert 0 < float(stat.hectares) < 2 * block_ha  # cropland of two blocks, not a county


@pytest.mark.django_db
def test_stop_status_json_carries_the_intervals_and_the_area_scope(users):
    prov = AdminUnit.objects.create(level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省",
                                    name_en="Hubei",
                                    geometry=MultiPolygon(Polygon.from_bbox((112, 30, 114, 32)),
                                                          srid=4326))
    camp = Campaign.objects.create(slug="s", name="s", year=2020)
    camp.provinces.set([prov])
    rnd = Round.objects.create(campaign=camp, number=1, state=RoundState.DONE)
    ProvinceRoundResult.objects.create(
        round=rnd, province=prov, iou=0.8, iou_samples=6, correctness=0.9,
        correctness_samples=20, decision="continue",
        reasons={"iou": {"outcome": "failed", "reason": "x", "ci": [0.7, 0.86], "blocks": 6},
                 "correctness": {"outcome": "passed", "reason": "y", "ci": [0.7, 0.97]},
                 "area": {"outcome": "not_comparable", "reason": "z", "value": 0.095,
                          "reference": {"scope": "none", "coverage_share": 0.095,
                                        "counties": []}}})
    out = StringIO()
    call_command("stop_status", "--campaign", "s", "--json", stdout=out)
    row = json.loads(out.getvalue())["provinces"][0]
    assert (row["iou_ci_low"], row["iou_ci_high"]) == (0.7, 0.86)
    assert (row["correctness_ci_low"], row["correctness_ci_high"]) == (0.7, 0.97)
    assert row["area_scope"] == "none" and row["area_comparable"] is False
    assert row["coverage_share"] == pytest.approx(0.095)
    text = StringIO()
    call_command("stop_status", "--campaign", "s", stdout=text)
    assert "[0.700-0.860]" in text.getvalue()


def test_segmenter_model_overrides_are_per_engine_and_leave_the_rounds_own_fields():
    from learning.services.config import RoundConfigError, round_config_parse

    cfg = round_config_parse({"segmenter_model": {"unet": {"widths": [8, 16, 32, 64]}}})
    assert cfg.segmenter_model == {"unet": {"widths": [8, 16, 32, 64]}}
    with pytest.raises(RoundConfigError, match="init_seed"):
        round_config_parse({"segmenter_model": {"unet": {"init_seed": 3}}})
    with pytest.raises(RoundConfigError, match="segmenter_model"):
        round_config_parse({"segmenter_model": {"resnet": {}}})


def test_the_demo_preset_predicts_with_a_smaller_unet():
    from learning.core.segmentation.engine import engine_config
    from learning.services.config import round_config_parse
    from learning.views import ROUND_PRESETS

    cfg = round_config_parse(ROUND_PRESETS["demo"])
    small = engine_config("unet", preset=cfg.segmenter_preset, **cfg.segmenter_model["unet"])
    default = engine_config("unet", preset=cfg.segmenter_preset)
    assert max(small.widths) < max(default.widths)
    assert small.tta == "none"
    # One window covers every demo image (a second, overlapping window costs half as much
    # again per block, and predicting every block is most of a demo round).
    from annotation.services.demo import DEMO_ZOOM, WINDOWS
    from mapping.geo.grid import block_raster, grid_for

    grid = grid_for(0.05)
    largest = 0
    for w, s_, e, n in WINDOWS.values():
        for lon, lat in ((w + 0.01, s_ + 0.01), (e - 0.01, n - 0.01)):
            r = block_raster(grid.bounds(grid.block_at(lon, lat)), DEMO_ZOOM)
            largest = max(largest, r.width, r.height)
    assert 600 < largest <= cfg.window < 1.2 * largest


def test_the_player_traces_fields_not_pixels():
    """Neighbouring fields parted by a 1-2 pixel ridge are one outline (as people draw at
    10 m pixels), so a demo block takes tens of polygons, not hundreds; the outlines cover
    about the truth's cropland, stay under the workspace's vertex limit, and a gap wider than
    the drawn-across one stays open."""
    import shapely
    from affine import Affine

    from annotation.geometry import MAX_VERTICES
    from annotation.services.demo import DEMO_ZOOM, SEED
    from learning.services.demo_player import TRACED_MAX_VERTICES, _traced_polygons
    from mapping.geo.grid import block_raster, grid_for
    from mapping.imagery.synthetic import generate_landscape

    grid = grid_for(0.05)
    raster = block_raster(grid.bounds(grid.block_at(112.62, 30.42)), DEMO_ZOOM)
    truth = generate_landscape(raster, seed=SEED).truth
    transform = Affine(*raster.transform())
    px2 = abs(transform.a * transform.e)
    polys = _traced_polygons(truth, transform, np.random.default_rng(1))
    from rasterio.features import shapes

    fields = sum(1 for _, v in shapes(truth, mask=truth == 1, connectivity=4) if v == 1)
    assert fields > 200 and 0 < len(polys) < fields / 5
    drawn = shapely.union_all(polys).area / px2 / truth.size
    assert abs(drawn - truth.mean()) < 0.08
    assert max(shapely.get_num_coordinates(p) for p in polys) <= TRACED_MAX_VERTICES
    assert TRACED_MAX_VERTICES < MAX_VERTICES
    two = np.zeros((60, 60), np.uint8)
    two[10:50, 10:29] = two[10:50, 31:50] = 1  # a 2 px ridge: one field group
    assert len(_traced_polygons(two, Affine(1, 0, 0, 0, -1, 60), np.random.default_rng(0))) == 1
    two[:, 29:35] = 0  # a 6 px track: two fields
    two[10:50, 35:50] = 1
    assert len(_traced_polygons(two, Affine(1, 0, 0, 0, -1, 60), np.random.default_rng(0))) == 2
    # A field group with more holes (ponds, hamlets) than the vertex limit allows in one
    # outline, which no simplification removes: drawn in pieces, all of it, and it ends.
    holes = np.ones((400, 400), np.uint8)
    for dy in range(4):
        for dx in range(4):
            holes[5 + dy:395:10, 5 + dx:395:10] = 0  # 1,521 ponds of 4 x 4 pixels
    pieces = _traced_polygons(holes, Affine(1, 0, 0, 0, -1, 400), np.random.default_rng(0))
    assert len(pieces) > 1
    assert max(shapely.get_num_coordinates(p) for p in pieces) <= TRACED_MAX_VERTICES
    assert shapely.union_all(pieces).area == pytest.approx(holes.sum(), rel=0.03)


@pytest.mark.slow
def test_demo_play_labels_runs_rounds_and_exports_a_converged_province(celery_worker_proc, users):
    """Tiny campaign, tiny rounds: the player labels through the services as demo-player,
    each round starts from the app's selection, and the converged provinces' products are
    written and open.

    As in the demo, the first round cannot converge (here a rule no map passes); before the
    second the player judges round 1's predictions on both sources, so round 2 trains the
    integration model that integrating the converged provinces needs; round 2's rules any map
    passes. The tiny model's masks are poor everywhere, so the player decides "neither" on
    (nearly) every block: one decision gives a constant integration model, and the provinces
    are still integrated and exported."""
    import pyogrio
    import rasterio

    from annotation.models import CoverageLabel, IntegrationLabel, SamplePolygon
    from learning.services import demo_player
    from tests.learning.test_rounds_fixtures import TINY_CONFIG, tiny_campaign_create

    tiny = tiny_campaign_create(user=users["lead"])
    config = TINY_CONFIG | {"validation_min_blocks": 1}
    first = demo_player.demo_play(campaign=tiny.campaign, rounds=1, round_timeout=600,
                                  config=config | {"stopping": {"iou_min": 1.0,
                                                                "correctness_min": 1.0}})
    assert [r["state"] for r in first.as_dict()["rounds"]] == ["done"]
    assert first.converged == [] and first.exports == []
    report = demo_player.demo_play(campaign=tiny.campaign, rounds=2, round_timeout=600,
                                   config=config | {"stopping": {
                                       "iou_min": 0.0, "correctness_min": 0.0,
                                       "area_ratio_min": 0.0}})
    assert IntegrationLabel.objects.filter(user__username=demo_player.PLAYER).exists()
    out = report.as_dict()
    assert [r["state"] for r in out["rounds"]] == ["done"]  # converged: nothing left to play
    assert set(out["converged"]) == {"Hubei", "Hunan"}
    player = demo_player.PLAYER
    assert SamplePolygon.objects.filter(created_by__username=player).exists()
    assert CoverageLabel.objects.filter(user__username=player).exists()
    kinds = {e["kind"] for e in out["exports"]}
    assert "error" not in kinds, out["exports"]
    assert {"cog", "geopackage", "area_fraction"} <= kinds
    for e in out["exports"]:
        if e["path"].endswith(".tif"):
            with rasterio.open(e["path"]) as ds:
                assert ds.count >= 1 and ds.crs is not None
        elif e["path"].endswith(".gpkg"):
            assert len(pyogrio.list_layers(e["path"])) >= 1


def test_the_demos_subtropical_windows_rarely_show_snow():
    """The demo's coverage scenarios: the paper's national snow share (8-13 %, north China's
    winters) would make a fifth of the judged blocks artifacts and the 85 % correctness
    criterion unreachable in the demo's subtropical windows."""
    from annotation.services.demo import DEMO_SCENARIO_SHARES, SEED
    from mapping.geo.grid import BlockId
    from mapping.imagery.synthetic import block_scenario

    for look in ("mapbox", "google"):
        drawn = [block_scenario(BlockId(2400 + i // 30, 5800 + i % 30), seed=SEED, look=look,
                                shares=DEMO_SCENARIO_SHARES[look]) for i in range(900)]
        hidden = sum(s in ("snow", "cloudy", "nodata") for s in drawn) / len(drawn)
        assert drawn.count("snow") / len(drawn) < 0.03
        assert 0.02 < hidden < 0.13


@pytest.mark.django_db
def test_the_played_demo_starts_from_a_few_blocks_and_trains_as_long_as_its_labels_allow():
    """Round 1 is a cold start: a small initial set to train on beside enough held-out blocks
    of finished work, and training steps in proportion to the labelled blocks it trains on
    (held-out blocks buy none), growing with each round's labels up to the config's epochs."""
    from django.contrib.auth.models import User

    from annotation.models import Assignment, Sample, SampleSplit
    from learning.services import demo_player
    from mapping.geo.grid import grid_for
    from mapping.models import ImagerySource

    prov = AdminUnit.objects.create(level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省",
                                    geometry=MultiPolygon(Polygon.from_bbox((112, 30, 114, 32)),
                                                          srid=4326))
    camp = Campaign.objects.create(slug="cold", name="cold", year=2020, zoom=12)
    camp.provinces.set([prov])
    source = ImagerySource.objects.create(slug="mapbox", name="m", kind="synthetic",
                                          config={"look": "mapbox"})
    grid = grid_for(0.05)
    blocks = []
    for i in range(60):
        bid = grid.block_at(112.025 + 0.05 * (i % 10), 30.025 + 0.05 * (i // 10))
        blocks.append(Block.objects.create(campaign=camp, row=bid.row, col=bid.col,
                                           province=prov, seed_order=i,
                                           geometry=Polygon.from_bbox(grid.bounds(bid))))

    def label(chosen):
        for b in chosen:
            Sample.objects.create(block=b, source=source, split=SampleSplit.TRAIN)

    config = {"validation_min_blocks": 4, "validation_share": 0.25, "epochs": 12,
              "steps_per_epoch": 50}
    label(blocks[:4])  # load_demo's blocks, one of them still in the annotator's queue
    Assignment.objects.create(block=blocks[0], user=User.objects.create(username="a"),
                              status="todo")
    first = demo_player._blocks_to_label(campaign=camp, provinces=[prov],
                                         validation_min_blocks=4)
    # Two to train on, and the one that four held-out blocks of finished work lack.
    assert len(first) == demo_player.FIRST_LABELS_PER_PROVINCE + 1
    assert demo_player.FIRST_LABELS_PER_PROVINCE < demo_player.LABELS_PER_PROVINCE
    label(first)
    epochs_1, trained_1 = demo_player.train_epochs(campaign=camp, config=config)
    held_out = Sample.objects.filter(split=SampleSplit.VALIDATION).count()
    assert held_out == 4 and trained_1 == demo_player.FIRST_LABELS_PER_PROVINCE
    steps = max(demo_player.TRAIN_STEPS_MIN, demo_player.TRAIN_STEPS_PER_BLOCK * trained_1)
    assert epochs_1 * 50 >= steps > (epochs_1 - 1) * 50
    Round.objects.create(campaign=camp, number=1, state=RoundState.DONE)
    epochs = [epochs_1]
    for _ in range(8):
        chosen = demo_player._blocks_to_label(campaign=camp, provinces=[prov])
        assert len(chosen) == demo_player.LABELS_PER_PROVINCE
        label(chosen)
        epochs.append(demo_player.train_epochs(campaign=camp, config=config)[0])
    assert epochs == sorted(epochs) and epochs[1] > epochs[0] and epochs[-1] == 12
    assert Sample.objects.filter(split=SampleSplit.VALIDATION).count() > held_out  # a share
