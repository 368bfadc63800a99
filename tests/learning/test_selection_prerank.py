"""The selection's pre-rank in SQL (``learning.services.selection_prerank``): the round reads
only the blocks its spread walk can reach, and picks exactly what the walk over every scored
block picks (worst first, one per spread cell, ``select_per_province`` per province), ties and
labelled blocks included."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth.models import User
from django.contrib.gis.geos import MultiPolygon, Polygon

from annotation.models import Assignment
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
from learning.selection import select_spread
from learning.services.config import round_config_parse
from learning.services.round.select import (
    _candidates,
    _labelled,
    _selection_scores,
    round_select_run,
)
from learning.services.selection_prerank import selection_prerank
from mapping.geo.grid import BlockId, grid_for
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, ImagerySource

SIDE = 16  # blocks a side per province: 0.8 degrees, 16 spread cells of 0.2 degrees


def _national(config: dict) -> tuple[Round, dict[int, int]]:
    """Two provinces of SIDE x SIDE blocks, two sources, signals from a few values (many exact
    ties), some blocks with one source or no IoU, every 7th block assigned."""
    camp = Campaign.objects.create(slug="prerank", name="Pre", region="China", year=2020)
    user = User.objects.create_user("pre-annotator")
    sources = [
        ImagerySource.objects.get_or_create(slug=s, defaults={"name": s, "kind": "synthetic"})[0]
        for s in ("google", "mapbox")
    ]
    rnd = Round.objects.create(
        campaign=camp, number=1, state=RoundState.SELECTING, config=config
    )
    seg = ModelVersion.objects.create(
        campaign=camp, kind=ModelKind.SEGMENTER, name="seg", bundle_path="models/none", round=rnd
    )
    grid = grid_for(0.05)
    province_of: dict[int, int] = {}
    counter = itertools.count()
    for k, (adcode, row0) in enumerate(((420000, 2400), (430000, 2300))):
        prov = AdminUnit.objects.create(
            level=AdminLevel.PROVINCE, adcode=adcode, name_zh=f"省{k}", name_en=f"P{k}",
            geometry=MultiPolygon(Polygon.from_bbox((100, 20, 120, 40))),
        )  # fmt: skip
        ProvinceRoundResult.objects.create(
            round=rnd, province=prov, decision=ProvinceDecision.CONTINUE
        )
        for r, c in itertools.product(range(SIDE), range(SIDE)):
            bid = BlockId(row0 + r, 5800 + c)
            blk = Block.objects.create(
                campaign=camp, row=bid.row, col=bid.col, province=prov,
                geometry=Polygon.from_bbox(grid.bounds(bid)),
            )  # fmt: skip
            province_of[blk.pk] = prov.pk
            i = next(counter)
            if i % 7 == 3:
                Assignment.objects.create(block=blk, user=user)
            for j, src in enumerate(sources[: 1 if i % 11 == 0 else 2]):
                frac = (0.2, 0.5, 0.7)[(i + j) % 3]
                p = BlockPrediction.objects.create(
                    block=blk, source=src, model_version=seg, round=rnd, mask_path="none.tif",
                    cropland_fraction=frac, mean_confidence=(0.6, 0.8, None)[(i * 5 + j) % 3],
                )  # fmt: skip
                iou = (0.25, 0.5, None, "absent")[(i * 3 + j) % 4]
                feats = {"area_fraction": frac} | ({} if iou == "absent" else {"iou_sources": iou})
                BlockScore.objects.create(
                    prediction=p, round=rnd, features=feats,
                    p_incorrect=(0.1, 0.3, 0.5, None)[(i * 7 + j) % 4],
                )  # fmt: skip
    return rnd, province_of


def _walk_over_every_block(rnd: Round) -> list[tuple[int, int]]:
    """The selection as it was: every unlabelled scored block read, then the spread walk."""
    cfg = round_config_parse(rnd.config)
    provinces = sorted(
        ProvinceRoundResult.objects.filter(round=rnd).values_list("province_id", flat=True)
    )
    picks = []
    for province_id, by_block in _selection_scores(
        rnd=rnd, province_ids=provinces, labelled=_labelled(rnd)
    ):
        cands, _ = _candidates(by_block)
        for pick in select_spread(
            cands, n=cfg.select_per_province, cell_deg=cfg.spread_cell_deg,
            weights=cfg.weights.model_dump(),
        ):  # fmt: skip
            picks.append((pick.score, pick.block_id, province_id))
    picks.sort(key=lambda p: (-p[0], p[1]))
    return [(b, prov) for _, b, prov in picks]


CONFIGS = [
    {"select_per_province": 5},
    {"select_per_province": 12, "spread_cell_deg": 0.1},
    {"select_per_province": 40},  # more picks than the 16 cells: fewer, all cells
    {"select_per_province": 9, "spread_cell_deg": 0},  # no spreading
    {"select_per_province": 6, "weights": {"p_incorrect": 1, "low_confidence": 0,
                                          "disagreement": 0}},  # fmt: skip
    {"select_per_province": 4, "weights": {"p_incorrect": 0, "low_confidence": 0,
                                          "disagreement": 0}},  # fmt: skip
]


@pytest.mark.django_db
@pytest.mark.parametrize("config", CONFIGS)
def test_selection_picks_what_the_walk_over_every_block_picks(config):
    rnd, _ = _national({**config, "make_current": False})
    expected = _walk_over_every_block(rnd)
    assert expected  # the case selects something
    round_select_run(round_id=rnd.pk)
    got = list(
        BlockSelection.objects.filter(round=rnd).order_by("rank").values_list(
            "block_id", "province_id"
        )
    )
    assert got == expected


@pytest.mark.django_db
def test_the_prerank_returns_the_reachable_blocks_not_every_block():
    """Five picks a province: the blocks returned are a small share of the 2 x 256, and hold
    every block whose priority reaches the fifth pick's (so the walk over them is the same)."""
    config = {"select_per_province": 5, "make_current": False}
    rnd, province_of = _national(config)
    cfg = round_config_parse(rnd.config)
    ranked = selection_prerank(
        round_id=rnd.pk, province_ids=sorted(set(province_of.values())), n=5,
        cell_deg=cfg.spread_cell_deg, per_degree=20, weights=cfg.weights.model_dump(),
    )  # fmt: skip
    returned = sum(len(by_block) for by_block in ranked.values())
    unlabelled = Block.objects.filter(campaign=rnd.campaign, assignments__isnull=True).count()
    assert 10 <= returned < unlabelled / 4
    picked = {b for b, _ in _walk_over_every_block(rnd)}
    assert picked <= {b for by_block in ranked.values() for b in by_block}
    labelled = _labelled(rnd)
    assert labelled and not labelled & {b for by_block in ranked.values() for b in by_block}


@pytest.mark.django_db
def test_a_block_stored_off_its_grid_cell_is_still_selected_as_the_full_walk_selects():
    """The pre-rank places blocks by grid row and column; the walk by their stored bounds. A
    block whose stored bounds lie in another spread cell (an imported grid) makes its province
    read whole, so the picks stay those of the full walk: here the worst block M is stored in
    B's cell, which frees its grid cell for A."""
    camp = Campaign.objects.create(slug="prerank-off", name="Off", region="China", year=2020)
    src = ImagerySource.objects.get_or_create(
        slug="google", defaults={"name": "google", "kind": "synthetic"}
    )[0]
    only_p = {"p_incorrect": 1, "low_confidence": 0, "disagreement": 0}
    rnd = Round.objects.create(
        campaign=camp, number=1, state=RoundState.SELECTING,
        config={"select_per_province": 3, "make_current": False, "weights": only_p},
    )  # fmt: skip
    seg = ModelVersion.objects.create(
        campaign=camp, kind=ModelKind.SEGMENTER, name="seg", bundle_path="models/none", round=rnd
    )
    prov = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=420000, name_zh="湖北省", name_en="Hubei",
        geometry=MultiPolygon(Polygon.from_bbox((100, 20, 120, 40))),
    )  # fmt: skip
    ProvinceRoundResult.objects.create(round=rnd, province=prov, decision=ProvinceDecision.CONTINUE)
    grid = grid_for(0.05)
    ids = {}
    # name: (grid row, col), where its bounds are stored, p_incorrect; 4 blocks = one 0.2° cell.
    layout = {
        "M": ((2400, 5800), (2400, 5808), 0.99),
        "A": ((2401, 5801), (2401, 5801), 0.5),
        "B": ((2400, 5809), (2400, 5809), 0.9),
        "D": ((2400, 5816), (2400, 5816), 0.8),
        "E": ((2400, 5824), (2400, 5824), 0.3),
    }
    for name, ((row, col), (srow, scol), p_inc) in layout.items():
        blk = Block.objects.create(
            campaign=camp, row=row, col=col, province=prov,
            geometry=Polygon.from_bbox(grid.bounds(BlockId(srow, scol))),
        )  # fmt: skip
        ids[blk.pk] = name
        p = BlockPrediction.objects.create(
            block=blk, source=src, model_version=seg, round=rnd, mask_path="none.tif"
        )
        BlockScore.objects.create(prediction=p, round=rnd, features={}, p_incorrect=p_inc)
    round_select_run(round_id=rnd.pk)
    got = [ids[b] for b in BlockSelection.objects.filter(round=rnd).order_by("rank")
           .values_list("block_id", flat=True)]  # fmt: skip
    assert got == ["M", "D", "A"]
    assert [ids[b] for b, _ in _walk_over_every_block(rnd)] == got


@pytest.mark.django_db
def test_the_iou_column_is_the_json_number_and_null_otherwise():
    """``BlockScore.iou_sources``, kept by the database from the features the pre-rank ranks
    by: the number when it is one, NULL when absent, null or not a number (never a failed
    write)."""
    rnd, _ = _national({"select_per_province": 1, "make_current": False})
    score = BlockScore.objects.filter(round=rnd).first()
    for features, expected in (
        ({"iou_sources": 0.625}, 0.625),
        ({"iou_sources": 1}, 1.0),
        ({"iou_sources": None}, None),
        ({}, None),
        ({"iou_sources": "0.5"}, None),
        ({"iou_sources": [0.5]}, None),
    ):
        BlockScore.objects.filter(pk=score.pk).update(features=features)
        assert BlockScore.objects.values_list("iou_sources", flat=True).get(pk=score.pk) == expected
