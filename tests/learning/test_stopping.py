"""Stopping rules: table-driven cases incl. missing statistics, empty provinces, boundaries."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from learning.core.stopping import (
    Decision,
    OfficialStatus,
    Outcome,
    ProvinceMeasurements,
    StoppingRules,
    province_stop_check,
)

GOOD: dict[str, Any] = dict(
    province="Henan", iou=0.9, iou_samples=20, correctness=0.9, correctness_samples=40,
    area_mapbox_ha=7_000_000, area_google_ha=7_200_000, official_area_ha=7_514_000,
    official_status=OfficialStatus.VERIFIED, supplementary_rounds=0,
)


def _check(rules: StoppingRules | None = None, **changes: Any) -> Any:
    return province_stop_check(ProvinceMeasurements(**{**GOOD, **changes}), rules)


def _outcomes(result: Any) -> dict[str, str]:
    return {c.name: c.outcome.value for c in result.criteria}


@pytest.mark.parametrize(
    ("changes", "decision", "outcomes", "reason_part"),
    [
        ({}, "converged", ("passed", "passed", "passed"), "0.900 >= 0.85 on 20 blocks"),
        ({"iou": 0.812, "iou_samples": 14}, "continue", ("failed", "passed", "passed"),
         "IoU 0.812 < 0.85 on 14 blocks"),
        # exactly at the thresholds passes
        ({"iou": 0.85, "correctness": 0.85, "area_google_ha": 0.8 * 7_514_000,
          "area_mapbox_ha": 1.0}, "converged", ("passed", "passed", "passed"), "80.0% of"),
        ({"iou": 0.8499}, "continue", ("failed", "passed", "passed"), "0.850 < 0.85"),
        ({"correctness": 0.7, "correctness_samples": 33}, "continue",
         ("passed", "failed", "passed"), "correctness 0.700 < 0.85 on 33 blocks"),
        # either source is enough for the area criterion
        ({"area_mapbox_ha": 1_000, "area_google_ha": 6_100_000}, "converged",
         ("passed", "passed", "passed"), "Google 6,100,000 ha"),
        ({"area_mapbox_ha": 1_000, "area_google_ha": 5_000_000}, "continue",
         ("passed", "passed", "failed"), "66.5% of official 7,514,000 ha (VERIFIED) < 80%"),
        # missing statistics
        ({"official_area_ha": None, "official_status": None}, "continue",
         ("passed", "passed", "unknown"), "no official area"),
        ({"official_status": None}, "continue", ("passed", "passed", "unknown"),
         "no official figure's status"),
        ({"area_mapbox_ha": None, "area_google_ha": None}, "continue",
         ("passed", "passed", "unknown"), "no cropland area from either source"),
        # unverified figures are used, and say so
        ({"official_status": OfficialStatus.UNVERIFIED}, "converged",
         ("passed", "passed", "passed"), "(UNVERIFIED)"),
        ({"official_status": OfficialStatus.OTHER_SOURCE, "area_google_ha": 100.0,
          "area_mapbox_ha": 100.0}, "continue", ("passed", "passed", "failed"),
         "(OTHER_SOURCE)"),
        # empty province: nothing sampled yet
        ({"iou": None, "iou_samples": 0, "correctness": None, "correctness_samples": 0},
         "continue", ("unknown", "unknown", "passed"), "no validation samples"),
        ({"iou": None, "iou_samples": 5}, "continue", ("unknown", "passed", "passed"),
         "not measured on 5 blocks"),
        # supplementary rounds
        ({"iou": 0.5, "supplementary_rounds": 2}, "continue", ("failed", "passed", "passed"),
         "2 of 3 supplementary"),
        ({"iou": 0.5, "supplementary_rounds": 3}, "exhausted", ("failed", "passed", "passed"),
         "after 3 supplementary round(s)"),
        ({"iou": None, "iou_samples": 0, "supplementary_rounds": 4}, "exhausted",
         ("unknown", "passed", "passed"), "exclude the province"),
        ({"supplementary_rounds": 3}, "converged", ("passed", "passed", "passed"), "passed"),
    ],
)
def test_rules_table(changes: dict[str, Any], decision: str, outcomes: tuple[str, str, str],
                     reason_part: str) -> None:
    result = _check(**changes)
    assert result.decision.value == decision
    assert _outcomes(result) == dict(zip(("iou", "correctness", "area"), outcomes, strict=True))
    text = " | ".join([result.reason, *(c.reason for c in result.criteria)])
    assert reason_part in text


@pytest.mark.parametrize(
    ("rules", "changes", "criterion", "outcome", "reason_part"),
    [
        (StoppingRules(min_iou_samples=15), {"iou_samples": 14}, "iou", "unknown",
         "on only 14 blocks (< 15 required)"),
        (StoppingRules(min_iou_samples=15), {"iou_samples": 15}, "iou", "passed", "15 blocks"),
        (StoppingRules(min_correctness_samples=50), {}, "correctness", "unknown",
         "only 40 blocks"),
        (StoppingRules(accepted_statuses=frozenset({OfficialStatus.VERIFIED})),
         {"official_status": OfficialStatus.WEAKLY_VERIFIED}, "area", "unknown",
         "(WEAKLY_VERIFIED) is not an accepted figure"),
        (StoppingRules(iou_min=0.95), {}, "iou", "failed", "0.900 < 0.95"),
        (StoppingRules(area_ratio_min=1.0), {}, "area", "failed", "< 100%"),
    ],
)
def test_custom_rules(rules: StoppingRules, changes: dict[str, Any], criterion: str,
                      outcome: str, reason_part: str) -> None:
    result = _check(rules, **changes)
    c = next(c for c in result.criteria if c.name == criterion)
    assert c.outcome.value == outcome
    assert reason_part in c.reason


def test_max_rounds_zero_exhausts_at_once() -> None:
    assert _check(StoppingRules(max_supplementary_rounds=0), iou=0.1).decision is \
        Decision.EXHAUSTED


def test_unknown_never_counts_as_passed() -> None:
    r = _check(official_area_ha=None, official_status=None)
    assert r.decision is Decision.CONTINUE
    assert r.criteria[2].outcome is Outcome.UNKNOWN


def test_to_dict_is_json_ready() -> None:
    d = _check(iou=0.8).to_dict()
    assert d["decision"] == "continue" and d["criteria"][0]["outcome"] == "failed"  # type: ignore[index]


@pytest.mark.parametrize(
    "bad",
    [{"iou": 1.2}, {"iou": float("nan")}, {"iou_samples": -1}, {"official_area_ha": 0},
     {"official_status": "MADE_UP"}, {"colour": "red"}],
)
def test_bad_measurements_raise(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ProvinceMeasurements(**{**GOOD, **bad})


def test_rules_are_strict_and_frozen() -> None:
    with pytest.raises(ValidationError):
        StoppingRules.model_validate({"iou_min": 0.9, "iou_minimum": 0.9})
    with pytest.raises(ValidationError):
        StoppingRules(accepted_statuses=frozenset())
    rules = StoppingRules()
    with pytest.raises(ValidationError):
        rules.iou_min = 0.5  # type: ignore[misc]
    assert StoppingRules.model_validate_json(rules.model_dump_json()) == rules


def test_partial_campaign_without_a_footprint_figure_is_not_comparable():
    """Issue 13: a campaign over 9.5 % of a province must not fail the area on a ratio that
    could never pass; it says "not comparable" with the coverage share, and is never excluded
    for it (more rounds cannot make the figure appear)."""
    r = _check(official_scope="none", coverage_share=0.095, area_mapbox_ha=250_000,
               supplementary_rounds=7)
    area = {c.name: c for c in r.criteria}["area"]
    assert area.outcome is Outcome.NOT_COMPARABLE
    assert "9.5%" in area.reason and "not comparable" in area.reason
    assert area.value == pytest.approx(0.095)
    assert r.decision is Decision.CONTINUE  # not exhausted after 7 supplementary rounds
    assert "cannot converge until an official figure" in r.reason
    # Another criterion open as well: the usual limit applies.
    r = _check(official_scope="none", coverage_share=0.095, iou=0.5, supplementary_rounds=7)
    assert r.decision is Decision.EXHAUSTED


def test_summed_county_figures_are_named_and_decide_like_the_province_figure():
    r = _check(official_scope="counties", official_area_ha=8_000_000,
               official_status=OfficialStatus.DEMO)
    area = {c.name: c for c in r.criteria}["area"]
    assert area.outcome is Outcome.PASSED and r.decision is Decision.CONVERGED
    assert "of the covered counties (DEMO)" in area.reason
    r = _check(official_scope="counties", official_area_ha=80_000_000)
    assert {c.name: c for c in r.criteria}["area"].outcome is Outcome.FAILED
