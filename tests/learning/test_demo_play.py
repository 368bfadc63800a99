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
    from mapping.services.demo import demo_statistics_write

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
