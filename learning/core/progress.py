"""A round's overall progress, weighting each stage by how long it really takes.

Predicting took about 80 % of a demo round (training 6 s, predicting 246 s, scoring 46 s), so
counting the five stages as fifths told the user "40 %" when four fifths of the wait were
still ahead. :func:`stage_weights` turns the stage timings of earlier rounds (seconds per
stage, as rounds record them) into shares that sum to 1, falling back to
``DEFAULT_SHARES`` for a stage never measured; :func:`overall_fraction` places a round's
current stage and its done/total fraction on that scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median

STAGES: tuple[str, ...] = ("training", "predicting", "scoring", "evaluating", "selecting")
# Shares measured on the demo round of issue 13 (training 6 s, predicting 246 s, scoring 46 s,
# evaluating and selecting a few seconds): used until a campaign has timed rounds of its own.
DEFAULT_SHARES: Mapping[str, float] = {
    "training": 0.05,
    "predicting": 0.75,
    "scoring": 0.15,
    "evaluating": 0.03,
    "selecting": 0.02,
}
# Timing keys that belong to a stage (scoring records its features and its correctness model
# apart).
STAGE_TIMING_KEYS: Mapping[str, tuple[str, ...]] = {
    "training": ("training",),
    "predicting": ("predicting",),
    "scoring": ("scoring", "correctness"),
    "evaluating": ("evaluating",),
    "selecting": ("selecting",),
}


def stage_seconds(timings: Mapping[str, object]) -> dict[str, float]:
    """Seconds per stage from one round's ``timings`` (unknown keys and junk ignored)."""
    out: dict[str, float] = {}
    for stage, keys in STAGE_TIMING_KEYS.items():
        values = [timings.get(k) for k in keys]
        nums = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
                and v >= 0]
        if nums:
            out[stage] = sum(nums)
    return out


def stage_weights(history: Sequence[Mapping[str, object]],
                  *, expected_s: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each stage's share of a round, from the median seconds of finished rounds' timings.

    ``expected_s`` overrides a stage's seconds when the round itself says how long it will
    take (a training time budget). A stage with no measurement keeps its default share of the
    whole; measured stages share the rest in proportion to their seconds.
    """
    measured: dict[str, float] = {}
    for stage in STAGES:
        values = [s[stage] for s in (stage_seconds(t) for t in history) if stage in s]
        if values:
            measured[stage] = median(values)
    for stage, seconds in (expected_s or {}).items():
        if stage in STAGES and seconds >= 0:
            measured[stage] = float(seconds)
    total_s = sum(measured.values())
    if not measured or total_s <= 0:
        return dict(DEFAULT_SHARES)
    unmeasured = [s for s in STAGES if s not in measured]
    rest = 1.0 - sum(DEFAULT_SHARES[s] for s in unmeasured)
    weights = {s: rest * measured[s] / total_s for s in measured}
    weights.update({s: DEFAULT_SHARES[s] for s in unmeasured})
    return {s: weights[s] for s in STAGES}


def overall_fraction(state: str, stage_fraction: float, weights: Mapping[str, float]) -> float:
    """0..1 of the whole round: the stages before ``state`` plus the done part of ``state``.

    ``done`` is 1; ``queued`` (and any other state outside the stages) is 0.
    """
    if state == "done":
        return 1.0
    if state not in STAGES:
        return 0.0
    i = STAGES.index(state)
    before = sum(weights[s] for s in STAGES[:i])
    f = min(1.0, max(0.0, stage_fraction))
    return min(1.0, before + weights[state] * f)
