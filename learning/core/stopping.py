"""Stopping rules per province: pixel IoU, block correctness and area vs the official figure.

:func:`province_stop_check` is pure: measurements and a :class:`StoppingRules` in, a
:class:`StopDecision` out. Each criterion is ``passed``, ``failed`` or ``unknown`` with a reason
that quotes the numbers. A value exactly at its threshold passes (``>=``).

- IoU: unknown when there are no validation samples (or fewer than ``min_iou_samples``).
- Correctness: the same with ``min_correctness_samples``.
- Area: the larger of the Mapbox and Google cropland areas over the official (TNLS) figure; unknown
  when the official figure, its status, or both source areas are missing, or when the figure's
  status is not in ``accepted_statuses``. The reason always names the figure's status.

Decision: ``converged`` when every criterion passed; otherwise ``exhausted`` once
``supplementary_rounds >= max_supplementary_rounds`` (the province is then excluded, as the
paper did for Chongqing and Taiwan), else ``continue``. An unknown criterion never counts as
passed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OfficialStatus(enum.StrEnum):
    """How far an official cropland figure could be traced (shared/data stats README)."""

    VERIFIED = "VERIFIED"
    VERIFIED_ROUNDED = "VERIFIED_ROUNDED"
    WEAKLY_VERIFIED = "WEAKLY_VERIFIED"
    UNVERIFIED = "UNVERIFIED"
    OTHER_SOURCE = "OTHER_SOURCE"


class Outcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNKNOWN = "unknown"


class Decision(enum.StrEnum):
    CONTINUE = "continue"
    CONVERGED = "converged"
    EXHAUSTED = "exhausted"


class StoppingRules(BaseModel):
    """A stopping rule set; validated on load, unknown keys rejected, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iou_min: float = Field(default=0.85, ge=0, le=1)
    correctness_min: float = Field(default=0.85, ge=0, le=1)
    area_ratio_min: float = Field(default=0.80, ge=0)
    max_supplementary_rounds: int = Field(default=3, ge=0)
    min_iou_samples: int | None = Field(default=None, ge=1)
    min_correctness_samples: int | None = Field(default=None, ge=1)
    accepted_statuses: frozenset[OfficialStatus] = frozenset(OfficialStatus)

    @field_validator("accepted_statuses")
    @classmethod
    def _some_status(cls, v: frozenset[OfficialStatus]) -> frozenset[OfficialStatus]:
        if not v:
            raise ValueError("accepted_statuses must name at least one status")
        return v


class ProvinceMeasurements(BaseModel):
    """What is known about one province after a round."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    province: str
    iou: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    iou_samples: int = Field(default=0, ge=0)
    correctness: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    correctness_samples: int = Field(default=0, ge=0)
    area_mapbox_ha: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    area_google_ha: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    official_area_ha: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    official_status: OfficialStatus | None = None
    supplementary_rounds: int = Field(default=0, ge=0)


@dataclass(frozen=True)
class CriterionResult:
    name: str
    outcome: Outcome
    reason: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class StopDecision:
    province: str
    decision: Decision
    criteria: tuple[CriterionResult, ...]
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "province": self.province,
            "decision": self.decision.value,
            "reason": self.reason,
            "criteria": [
                {"name": c.name, "outcome": c.outcome.value, "reason": c.reason,
                 "value": c.value, "threshold": c.threshold}
                for c in self.criteria
            ],
        }


def _blocks(n: int) -> str:
    return f"{n} block" if n == 1 else f"{n} blocks"


def _rate(name: str, label: str, value: float | None, n: int, threshold: float,
          min_n: int | None) -> CriterionResult:
    if n == 0 or value is None:
        why = "no validation samples" if n == 0 else f"not measured on {_blocks(n)}"
        return CriterionResult(name, Outcome.UNKNOWN, f"{label} unknown: {why}", None, threshold)
    if min_n is not None and n < min_n:
        return CriterionResult(
            name, Outcome.UNKNOWN,
            f"{label} {value:.3f} on only {_blocks(n)} (< {min_n} required)", value, threshold)
    if value >= threshold:
        return CriterionResult(name, Outcome.PASSED,
                               f"{label} {value:.3f} >= {threshold:g} on {_blocks(n)}", value,
                               threshold)
    return CriterionResult(name, Outcome.FAILED,
                           f"{label} {value:.3f} < {threshold:g} on {_blocks(n)}", value,
                           threshold)


def _area(m: ProvinceMeasurements, rules: StoppingRules) -> CriterionResult:
    t = rules.area_ratio_min
    if m.official_area_ha is None or m.official_status is None:
        what = "official area" if m.official_area_ha is None else "official figure's status"
        return CriterionResult("area", Outcome.UNKNOWN, f"area unknown: no {what}", None, t)
    status = m.official_status.value
    official = f"official {m.official_area_ha:,.0f} ha ({status})"
    if m.official_status not in rules.accepted_statuses:
        return CriterionResult("area", Outcome.UNKNOWN,
                               f"area unknown: {official} is not an accepted figure", None, t)
    areas = {s: a for s, a in (("Mapbox", m.area_mapbox_ha), ("Google", m.area_google_ha))
             if a is not None}
    if not areas:
        return CriterionResult("area", Outcome.UNKNOWN,
                               f"area unknown: no cropland area from either source; {official}",
                               None, t)
    best_source = max(areas, key=lambda s: areas[s])
    ratio = areas[best_source] / m.official_area_ha
    detail = ", ".join(f"{s} {a:,.0f} ha" for s, a in areas.items())
    if ratio >= t:
        return CriterionResult("area", Outcome.PASSED,
                               f"area {ratio:.1%} of {official} >= {t:.0%} ({detail})", ratio, t)
    return CriterionResult("area", Outcome.FAILED,
                           f"area {ratio:.1%} of {official} < {t:.0%} ({detail})", ratio, t)


def province_stop_check(measurements: ProvinceMeasurements,
                        rules: StoppingRules | None = None) -> StopDecision:
    """Apply the three-level stopping rules to one province."""
    rules = rules or StoppingRules()
    m = measurements
    criteria = (
        _rate("iou", "IoU", m.iou, m.iou_samples, rules.iou_min, rules.min_iou_samples),
        _rate("correctness", "correctness", m.correctness, m.correctness_samples,
              rules.correctness_min, rules.min_correctness_samples),
        _area(m, rules),
    )
    open_ = [c for c in criteria if c.outcome is not Outcome.PASSED]
    if not open_:
        decision, reason = Decision.CONVERGED, "all criteria passed"
    else:
        names = ", ".join(f"{c.name} {c.outcome.value}" for c in open_)
        used = m.supplementary_rounds
        if used >= rules.max_supplementary_rounds:
            decision = Decision.EXHAUSTED
            reason = (f"{names} after {used} supplementary round(s) "
                      f"(limit {rules.max_supplementary_rounds}): exclude the province")
        else:
            decision = Decision.CONTINUE
            reason = (f"{names}; {used} of {rules.max_supplementary_rounds} supplementary "
                      "round(s) used")
    return StopDecision(province=m.province, decision=decision, criteria=criteria, reason=reason)


def provinces_stop_check(items: list[ProvinceMeasurements],
                         rules: StoppingRules | None = None) -> list[StopDecision]:
    """:func:`province_stop_check` for several provinces."""
    return [province_stop_check(m, rules) for m in items]
