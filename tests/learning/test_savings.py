"""Annotation savings: random labels needed to match active learning, on hand-checkable curves."""

from __future__ import annotations

import pytest

from learning.core.savings import (
    CurvePoint,
    Method,
    SaturatingCurve,
    annotation_savings,
    fit_saturating,
    labels_to_reach,
)

# Points exactly on iou(n) = 0.9 n / (n + 100): 100 -> 0.45, 300 -> 0.675, 900 -> 0.81.
RANDOM = [(100, 0.45), (300, 0.675), (900, 0.81)]


def test_fit_recovers_a_saturating_curve_from_exact_points():
    curve = fit_saturating([CurvePoint(n, y) for n, y in RANDOM])
    assert curve is not None
    assert curve.a == pytest.approx(0.9, rel=1e-3)
    assert curve.k == pytest.approx(100, rel=1e-2)


def test_fit_needs_two_distinct_label_counts():
    assert fit_saturating([CurvePoint(50, 0.4)]) is None
    assert fit_saturating([CurvePoint(50, 0.4), CurvePoint(50, 0.5), CurvePoint(0, 0.0)]) is None


def test_saturating_curve_inverse():
    c = SaturatingCurve(a=0.9, k=100)
    assert c.iou(300) == pytest.approx(0.675)
    assert c.labels_for(0.675) == pytest.approx(300)
    assert c.labels_for(0.9) is None  # the ceiling is never reached
    assert c.labels_for(0.0) == 0.0


def test_interpolation_uses_the_running_maximum_of_a_noisy_curve():
    pts = [CurvePoint(10, 0.5), CurvePoint(20, 0.4), CurvePoint(30, 0.7)]
    # 0.6 lies between the best so far (10, 0.5) and (30, 0.7): 10 + 0.5 * 20 = 20.
    assert labels_to_reach(pts, 0.6) == pytest.approx(20)
    assert labels_to_reach(pts, 0.5) == 10
    assert labels_to_reach(pts, 0.45) is None  # below the first measured point
    assert labels_to_reach(pts, 0.71) is None  # above the best measured point


def test_savings_measured_fitted_and_unreachable():
    active = [(20, 0.30), (50, 0.45), (100, 0.675), (500, 0.81), (600, 0.85), (700, 0.95)]
    result = annotation_savings(active, RANDOM)
    by_labels = {r.labels_active: r for r in result.rounds}

    r = by_labels[100]  # random needs 300 labels for 0.675: three times as many
    assert r.method is Method.MEASURED
    assert r.labels_random == pytest.approx(300)
    assert r.ratio == pytest.approx(3.0)
    assert r.saved == pytest.approx(2 / 3)

    assert by_labels[50].labels_random == pytest.approx(100)
    assert by_labels[50].ratio == pytest.approx(2.0)
    assert by_labels[500].labels_random == pytest.approx(900)

    r = by_labels[20]  # below the first measured point (100, 0.45): at most 100, no fit
    assert r.method is Method.BELOW_MEASURED
    assert r.labels_random is None and r.ratio is None and r.saved is None
    assert r.labels_random_at_most == 100

    r = by_labels[600]  # above the measured range: 100 * 0.85 / 0.05 = 1700
    assert r.method is Method.FITTED
    assert r.labels_random == pytest.approx(1700, rel=3e-2)

    r = by_labels[700]  # above the ceiling 0.9: random selection never gets there
    assert r.method is Method.UNREACHABLE
    assert r.labels_random is None and r.ratio is None and r.saved is None

    assert result.final is by_labels[700]
    d = result.to_dict()
    assert d["final"]["method"] == "unreachable"
    assert d["curve"]["a"] == pytest.approx(0.9, rel=1e-3)


def test_below_the_random_curve_no_fit_is_read_off_only_an_upper_bound():
    """A real replay's numbers (stop 20): the selection arm fell below the random arm's first
    point, and the fitted curve read "0.7 labels" off for 32 selected tiles."""
    random_arm = [(16, 0.642), (32, 0.744), (48, 0.674), (64, 0.674), (80, 0.633)]
    result = annotation_savings([(16, 0.642), (32, 0.533), (48, 0.615)], random_arm)
    first, below, also_below = result.rounds
    assert first.method is Method.MEASURED and first.labels_random == 16
    for r in (below, also_below):
        assert r.method is Method.BELOW_MEASURED
        assert r.labels_random is None and r.ratio is None and r.saved is None
        assert r.labels_random_at_most == 16
    assert result.to_dict()["rounds"][1]["method"] == "below_measured"


def test_active_learning_worse_than_random_gives_a_ratio_below_one():
    result = annotation_savings([(300, 0.45)], RANDOM)
    (r,) = result.rounds
    assert r.labels_random == pytest.approx(100)
    assert r.ratio == pytest.approx(1 / 3)
    assert r.saved == pytest.approx(-2.0)


@pytest.mark.parametrize("bad", [[(10, 1.2)], [(-1, 0.5)], [(float("nan"), 0.5)]])
def test_bad_input_is_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match="random-selection curve"):
        annotation_savings([(10, 0.5)], bad)


# --- the order simulation -------------------------------------------------------------------

GREEN, BROWN = (40, 160, 50), (150, 110, 70)


def _block(kind: str):
    """A 32 x 32 block: 'mixed' has green cropland on its left half and brown ground on the
    right; 'bare' is all brown (a negative block)."""
    import numpy as np

    from learning.core.savings import block_pixels

    rgb = np.empty((32, 32, 3), np.uint8)
    rgb[:] = BROWN
    mask = np.zeros((32, 32), np.uint8)
    if kind == "mixed":
        rgb[:, :16] = GREEN
        mask[:, :16] = 1
    return block_pixels(rgb, mask, size=16)


def test_block_pixels_shapes_and_ignore():
    import numpy as np

    from learning.core.savings import block_pixels

    rgb = np.full((40, 40, 3), 200, np.uint8)
    mask = np.ones((40, 40), np.uint8)
    valid = np.ones((40, 40), bool)
    valid[:, 20:] = False  # no imagery on the right half: never scored or learned
    b = block_pixels(rgb, mask, size=8, valid=valid)
    assert b.features.shape == (64, 7) and b.features.dtype == np.float32
    labels = b.labels.reshape(8, 8)
    assert (labels[:, :4] == 1).all() and (labels[:, 4:] == 255).all()
    with pytest.raises(ValueError, match="do not match"):
        block_pixels(rgb, mask[:10], size=8)


def test_an_informative_labelling_order_beats_random_orders():
    from learning.core.savings import selection_curves

    # Labelling order: the informative block first, then three negative ones.
    train = [_block("mixed"), _block("bare"), _block("bare"), _block("bare")]
    validation = [_block("mixed")]
    curves = selection_curves(train, validation, steps=[1, 2, 4], repeats=8, seed=1)
    active = dict(curves.active)
    random = dict(curves.random)
    # One mixed block already separates green from brown perfectly.
    assert active[1] == pytest.approx(1.0)
    # A random first block is bare 3 times in 4: the stand-in then predicts no cropland (IoU 0).
    assert 0.0 <= random[1] < 1.0
    # With all four blocks both orders see the mixed block.
    assert random[4] == pytest.approx(1.0) and active[4] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="validation"):
        selection_curves(train, [], steps=[1])


def test_the_same_labels_count_as_reaching_the_same_iou():
    # The final round trains on every label in both orders: equal IoU up to rounding.
    result = annotation_savings([(4, 0.7580001)], [(1, 0.4), (4, 0.758)])
    (r,) = result.rounds
    assert (r.labels_random, r.method, r.ratio) == (4, Method.MEASURED, 1.0)


def test_headline_is_the_first_round_at_99_percent_of_the_final_iou():
    active = [(1, 0.5), (2, 0.8), (3, 0.9), (4, 0.905)]
    random = [(1, 0.2), (2, 0.4), (3, 0.6), (4, 0.905)]
    result = annotation_savings(active, random)
    # 0.99 * 0.905 = 0.896: first reached with 3 labels; random: 3 + 0.3 / 0.305 labels.
    h = result.headline
    assert h is not None and h.labels_active == 3
    assert h.labels_random == pytest.approx(3 + 0.3 / 0.305)
    assert h.ratio == pytest.approx((3 + 0.3 / 0.305) / 3)
    assert result.final.ratio == pytest.approx(1.0)  # all labels in both orders
    assert result.to_dict()["headline"]["labels_active"] == 3
    assert annotation_savings([], random).headline is None
