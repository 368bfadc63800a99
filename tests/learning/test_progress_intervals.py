"""The overall progress weighting and the validation confidence intervals (pure cores)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learning.core.intervals import bootstrap_iou_interval, wilson_interval
from learning.core.progress import DEFAULT_SHARES, STAGES, overall_fraction, stage_weights

# The demo round of issue 13: training 6 s, predicting 246 s, scoring 46 s.
DEMO_TIMINGS = {"training": 6.0, "predicting": 246.0, "scoring": 40.0, "correctness": 6.0,
                "evaluating": 3.0, "selecting": 1.0}


def test_weights_follow_the_measured_stage_seconds():
    w = stage_weights([DEMO_TIMINGS, DEMO_TIMINGS])
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["predicting"] == pytest.approx(246 / 302)
    assert w["scoring"] == pytest.approx(46 / 302)  # features and correctness model together
    # Training done, predicting not started: about 2 %, not the 20 % of five equal fifths.
    assert overall_fraction("predicting", 0.0, w) == pytest.approx(6 / 302)
    assert overall_fraction("predicting", 0.5, w) == pytest.approx((6 + 123) / 302)


def test_median_of_history_and_defaults_where_nothing_was_measured():
    slow = {**DEMO_TIMINGS, "predicting": 2460.0}
    w = stage_weights([DEMO_TIMINGS, DEMO_TIMINGS, slow])
    assert w["predicting"] == pytest.approx(246 / 302)  # one slow round does not rule
    assert stage_weights([]) == dict(DEFAULT_SHARES)
    only = stage_weights([{"training": 10.0, "predicting": 30.0}])
    rest = 1 - sum(DEFAULT_SHARES[s] for s in ("scoring", "evaluating", "selecting"))
    assert only["training"] == pytest.approx(rest * 0.25)
    assert only["scoring"] == DEFAULT_SHARES["scoring"]
    assert sum(only.values()) == pytest.approx(1.0)


def test_training_budget_overrides_history_and_ends_are_fixed():
    w = stage_weights([DEMO_TIMINGS], expected_s={"training": 302.0})
    assert w["training"] == pytest.approx(302 / (302 - 6 + 302))
    assert overall_fraction("done", 0.0, w) == 1.0
    assert overall_fraction("queued", 0.7, w) == 0.0
    assert overall_fraction("selecting", 1.0, w) == pytest.approx(1.0)
    fractions = [overall_fraction(s, f, w) for s in STAGES for f in (0.0, 0.5, 1.0)]
    assert fractions == sorted(fractions)  # never goes backwards


def test_wilson_matches_the_textbook_values():
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    # Narrower with more blocks at the same share.
    assert np.diff(wilson_interval(85, 100)) < np.diff(wilson_interval(17, 20))


def test_bootstrap_over_blocks_brackets_the_pooled_iou():
    rng = np.random.default_rng(1)
    blocks = [(int(tp), int(fp), int(fn)) for tp, fp, fn in
              zip(rng.integers(500, 1000, 12), rng.integers(0, 300, 12),
                  rng.integers(0, 300, 12), strict=True)]
    tp, fp, fn = (sum(b[i] for b in blocks) for i in range(3))
    pooled = tp / (tp + fp + fn)
    lo, hi = bootstrap_iou_interval(blocks, seed=0)
    assert lo < pooled < hi and hi - lo < 0.2
    # One block: no spread to measure; identical blocks: no spread either.
    one = bootstrap_iou_interval(blocks[:1])
    assert one[0] == pytest.approx(one[1])
    assert bootstrap_iou_interval([]) is None
    empty = bootstrap_iou_interval([(0, 0, 0), (0, 0, 0)])
    assert empty == (1.0, 1.0)
    assert not math.isnan(lo)
