"""Predict tasks are sized by time (issue 15, item 4): blocks per task from the seconds per
image the campaign's previous round measured, else the configured count."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import Polygon

from learning.models import BlockPrediction, ModelKind, ModelVersion, Round, RoundState
from learning.services.config import RoundConfig
from learning.services.round.predict import predict_batch_blocks, predict_seconds_per_image
from mapping.models import Block, Campaign, ImagerySource

pytestmark = pytest.mark.django_db


@pytest.fixture
def camp() -> Campaign:
    return Campaign.objects.create(slug="pb", name="PB", region="Hubei", year=2020, zoom=16)


def _round(camp: Campaign, number: int, **kw: object) -> Round:
    return Round.objects.create(campaign=camp, number=number, state=RoundState.DONE, **kw)


def _predicted(camp: Campaign, rnd: Round, images: int) -> None:
    src = ImagerySource.objects.get_or_create(slug="mapbox", defaults={
        "name": "Mapbox", "kind": "synthetic", "config": {}})[0]
    mv = ModelVersion.objects.create(campaign=camp, kind=ModelKind.SEGMENTER, name=f"s{rnd.pk}",
                                     bundle_path="x")
    for i in range(images):
        blk = Block.objects.create(campaign=camp, row=rnd.number, col=i,
                                   geometry=Polygon.from_bbox((i, 0, i + 0.05, 0.05)))
        BlockPrediction.objects.create(block=blk, source=src, model_version=mv, round=rnd,
                                       mask_path="m.tif")


def test_first_round_uses_the_count(camp: Campaign) -> None:
    rnd = _round(camp, 1)
    assert predict_seconds_per_image(rnd=rnd) is None
    assert predict_batch_blocks(rnd=rnd, cfg=RoundConfig(batch_blocks=5), n_sources=2) == 5


def test_later_round_sized_by_the_measured_seconds(camp: Campaign) -> None:
    r1 = _round(camp, 1, timings={RoundState.PREDICTING: 40.0})
    _predicted(camp, r1, 10)  # 4 s an image
    r2 = _round(camp, 2)
    assert predict_seconds_per_image(rnd=r2) == pytest.approx(4.0)
    # 120 s a task / (4 s x 2 sources) = 15 blocks a task, whatever batch_blocks says.
    cfg = RoundConfig(batch_blocks=5, batch_seconds=120)
    assert predict_batch_blocks(rnd=r2, cfg=cfg, n_sources=2) == 15
    assert predict_batch_blocks(rnd=r2, cfg=RoundConfig(batch_seconds=1), n_sources=2) == 1
    off = RoundConfig(batch_blocks=5, batch_seconds=None)
    assert predict_batch_blocks(rnd=r2, cfg=off, n_sources=2) == 5


def test_a_round_with_another_engine_is_not_the_measure(camp: Campaign) -> None:
    r1 = _round(camp, 1, timings={RoundState.PREDICTING: 40.0},
                config={"segmenter_engine": "mask2former"})
    _predicted(camp, r1, 10)
    r2 = _round(camp, 2, config={"segmenter_engine": "unet"})
    assert predict_seconds_per_image(rnd=r2) is None


def test_windows_per_forward_is_the_engines_own_unless_set() -> None:
    from learning.services.config import RoundConfigError, round_config_parse

    assert RoundConfig().predict_batch_windows is None
    assert round_config_parse({"predict_batch_windows": 48}).predict_batch_windows == 48
    with pytest.raises(RoundConfigError):
        round_config_parse({"predict_batch_windows": 0})
