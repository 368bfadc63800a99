"""The selection's per-block signals, as the round stores them beside each selected block:
read from the round's scores (the IoU feature from the score's JSON features) and averaged
over the block's sources."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon

from learning.models import (
    BlockPrediction,
    BlockScore,
    BlockSelection,
    ModelKind,
    ModelVersion,
    ProvinceDecision,
    ProvinceRoundResult,
    Round,
    RoundState,
)
from learning.services.round.select import _selection_scores, round_select_run
from mapping.geo.grid import BlockId, grid_for
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, ImagerySource


@pytest.mark.django_db
def test_selection_signals_come_from_the_scores_of_both_sources():
    camp = Campaign.objects.create(slug="sel-signals", name="Sel", region="Hubei", year=2020)
    prov = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省", name_en="Hubei",
        geometry=MultiPolygon(Polygon.from_bbox((108, 29, 116, 33))),
    )  # fmt: skip
    sources = [
        ImagerySource.objects.get_or_create(slug=s, defaults={"name": s, "kind": "synthetic"})[0]
        for s in ("google", "mapbox")
    ]
    rnd = Round.objects.create(
        campaign=camp, number=1, state=RoundState.SELECTING,
        config={"select_per_province": 10, "make_current": False},
    )  # fmt: skip
    seg = ModelVersion.objects.create(
        campaign=camp, kind=ModelKind.SEGMENTER, name="seg", bundle_path="models/none", round=rnd
    )
    ProvinceRoundResult.objects.create(round=rnd, province=prov, decision=ProvinceDecision.CONTINUE)
    grid = grid_for(0.05)
    # Per block and source: (mean confidence, cropland fraction, IoU feature or absent).
    cases = {
        0: [(0.9, 0.2, 0.25), (0.7, 0.4, 0.75)],  # IoU on both sources: mean 0.5
        1: [(0.6, 0.1, None), (0.8, 0.7, None)],  # JSON null: the fractions disagree by 0.6
        2: [(0.5, 0.3, "absent"), (0.5, 0.3, "absent")],  # no IoU key at all
    }
    blocks = {}
    for i, per_source in cases.items():
        bid = BlockId(2400 + i * 10, 5850)  # 0.5° apart: each in its own spread cell (0.2°)
        blk = Block.objects.create(
            campaign=camp, row=bid.row, col=bid.col, province=prov,
            geometry=Polygon.from_bbox(grid.bounds(bid)),
        )  # fmt: skip
        blocks[blk.pk] = i
        for src, (conf, frac, iou) in zip(sources, per_source, strict=True):
            p = BlockPrediction.objects.create(
                block=blk, source=src, model_version=seg, round=rnd, mask_path="none.tif",
                cropland_fraction=frac, mean_confidence=conf,
            )  # fmt: skip
            feats = {"area_fraction": frac} | ({} if iou == "absent" else {"iou_sources": iou})
            BlockScore.objects.create(
                prediction=p, round=rnd, features=feats, p_incorrect=0.1 + frac
            )
    # Each block's centre, as the spread rule places it, is its centroid.
    read = {
        block_id: (lon, lat)
        for _, by_block in _selection_scores(rnd=rnd, province_ids=[prov.pk], labelled=set())
        for block_id, (lon, lat, _) in by_block.items()
    }
    for blk in Block.objects.filter(campaign=camp):
        c = blk.geometry.centroid
        assert read[blk.pk] == (pytest.approx(c.x, abs=1e-9), pytest.approx(c.y, abs=1e-9))
    round_select_run(round_id=rnd.pk)
    got = {blocks[s.block_id]: s.scores for s in BlockSelection.objects.filter(round=rnd)}
    assert set(got) == {0, 1, 2}
    assert got[0]["disagreement"] == pytest.approx(0.5)
    assert got[0]["low_confidence"] == pytest.approx(1 - 0.8)
    assert got[0]["p_incorrect"] == pytest.approx(0.5)
    assert got[1]["disagreement"] == pytest.approx(0.6)
    assert got[1]["low_confidence"] == pytest.approx(1 - 0.7)
    assert got[2]["disagreement"] == pytest.approx(0.0)
    assert got[2]["low_confidence"] == pytest.approx(0.5)


@pytest.mark.django_db
def test_a_round_whose_provinces_all_converged_selects_nothing_and_finishes():
    """No province still to do: the selection's read matches nothing (``__in=[]`` has no SQL)
    and the round is done, not failed (the played demo converged every province in round 2)."""
    camp = Campaign.objects.create(slug="sel-done", name="Sel", region="Hubei", year=2020)
    prov = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省", name_en="Hubei",
        geometry=MultiPolygon(Polygon.from_bbox((108, 29, 116, 33))),
    )  # fmt: skip
    rnd = Round.objects.create(
        campaign=camp, number=2, state=RoundState.SELECTING,
        config={"select_per_province": 10, "make_current": False},
    )  # fmt: skip
    ModelVersion.objects.create(
        campaign=camp, kind=ModelKind.SEGMENTER, name="seg", bundle_path="models/none", round=rnd
    )
    ProvinceRoundResult.objects.create(round=rnd, province=prov,
                                       decision=ProvinceDecision.CONVERGED)
    assert list(_selection_scores(rnd=rnd, province_ids=[], labelled=set())) == []
    round_select_run(round_id=rnd.pk)
    rnd.refresh_from_db()
    assert rnd.state == RoundState.DONE and not BlockSelection.objects.filter(round=rnd).exists()
