"""Stopping rules per province: pixel IoU, block correctness and area vs the official figure.

:func:`province_stop_check` is pure: measurements and a :class:`StoppingRules` in, a
:class:`StopDecision` out. Each criterion is ``passed``, ``failed`` or ``unknown`` with a reason
that quotes the numbers. A value exactly at its threshold passes (``>=``).

- IoU: unknown when there are no validation samples (or fewer than ``min_iou_samples``).
- Correctness: the same with ``min_correctness_samples``.
- Area: the larger of the Mapbox and Google cropland areas over the official (TNLS) figure; unknown
  when the official figure, its status, or both source areas are missing, or when the figure's
  status is not in ``accepted_statuses``. The reason always names the figure's status. The
  figure must count the same land as the mapped area: the province's when the campaign covers
  it, else the sum of the covered counties' (``official_scope``). A campaign that covers part
  of a province with no figure for that part is ``not_comparable`` (with the share of the
  province it covers) instead of failing on a ratio that could never pass.

Decision: ``converged`` when every criterion passed; otherwise ``exhausted`` once
``supplementary_rounds >= max_supplementary_rounds`` (the province is then excluded, as the
paper did for Chongqing and Taiwan), else ``continue``. An unknown criterion never counts as
passed. A province whose only open criteria are not comparable continues without using up
supplementary rounds: more labelling cannot make a missing figure appear.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mapping.phrase import Phrase, gettext_noop


class OfficialStatus(enum.StrEnum):
    """How far an official cropland figure could be traced (shared/data stats README)."""

    VERIFIED = "VERIFIED"
    VERIFIED_ROUNDED = "VERIFIED_ROUNDED"
    WEAKLY_VERIFIED = "WEAKLY_VERIFIED"
    UNVERIFIED = "UNVERIFIED"
    OTHER_SOURCE = "OTHER_SOURCE"
    DEMO = "DEMO"  # the demo's own figures, derived from its synthetic ground truth


class Outcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_COMPARABLE = "not_comparable"


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
    # What the official figure counts: the whole "province", the "counties" the campaign covers
    # (summed), or "none" when there is no figure for the part of the province covered.
    official_scope: Literal["province", "counties", "none"] = "province"
    coverage_share: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    supplementary_rounds: int = Field(default=0, ge=0)


@dataclass(frozen=True)
class CriterionResult:
    name: str
    outcome: Outcome
    reason: str
    value: float | None = None
    threshold: float | None = None
    # The reason with its parts apart, to be shown in the reader's language (``reason`` is it
    # in English).
    phrase: Phrase | None = None


@dataclass(frozen=True)
class StopDecision:
    province: str
    decision: Decision
    criteria: tuple[CriterionResult, ...]
    reason: str
    phrase: Phrase | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "province": self.province,
            "decision": self.decision.value,
            "reason": self.reason,
            "phrase": self.phrase.to_dict() if self.phrase else None,
            "criteria": [
                {"name": c.name, "outcome": c.outcome.value, "reason": c.reason,
                 "value": c.value, "threshold": c.threshold,
                 "phrase": c.phrase.to_dict() if c.phrase else None}
                for c in self.criteria
            ],
        }


# How the criteria and their outcomes are named in reasons (translated where shown).
CRITERION_NAMES = {
    "iou": gettext_noop("IoU"),
    "correctness": gettext_noop("correctness"),
    "area": gettext_noop("area"),
}
OUTCOME_NAMES = {
    Outcome.PASSED: gettext_noop("passed"),
    Outcome.FAILED: gettext_noop("failed"),
    Outcome.UNKNOWN: gettext_noop("unknown"),
    Outcome.NOT_COMPARABLE: gettext_noop("not comparable"),
}


def _criterion(name: str, outcome: Outcome, phrase: Phrase, value: float | None,
               threshold: float | None) -> CriterionResult:
    return CriterionResult(name, outcome, str(phrase), value, threshold, phrase)


def _blocks(n: int) -> Phrase:
    return Phrase(gettext_noop("%(n)s block") if n == 1 else gettext_noop("%(n)s blocks"),
                  {"n": n})


def _rate(name: str, value: float | None, n: int, threshold: float,
          min_n: int | None) -> CriterionResult:
    label = Phrase(CRITERION_NAMES[name])
    if n == 0 or value is None:
        why = (Phrase(gettext_noop("no validation samples")) if n == 0
               else Phrase(gettext_noop("not measured on %(blocks)s"), {"blocks": _blocks(n)}))
        return _criterion(name, Outcome.UNKNOWN,
                          Phrase(gettext_noop("%(label)s unknown: %(why)s"),
                                 {"label": label, "why": why}), None, threshold)
    parts = {"label": label, "value": f"{value:.3f}", "threshold": f"{threshold:g}",
             "blocks": _blocks(n)}
    if min_n is not None and n < min_n:
        return _criterion(
            name, Outcome.UNKNOWN,
            Phrase(gettext_noop("%(label)s %(value)s on only %(blocks)s (< %(min)s required)"),
                   {**parts, "min": min_n}), value, threshold)
    if value >= threshold:
        return _criterion(
            name, Outcome.PASSED,
            Phrase(gettext_noop("%(label)s %(value)s >= %(threshold)s on %(blocks)s"), parts),
            value, threshold)
    return _criterion(
        name, Outcome.FAILED,
        Phrase(gettext_noop("%(label)s %(value)s < %(threshold)s on %(blocks)s"), parts),
        value, threshold)


def _area(m: ProvinceMeasurements, rules: StoppingRules) -> CriterionResult:
    t = rules.area_ratio_min
    if m.official_scope == "none":
        share = "?" if m.coverage_share is None else f"{m.coverage_share:.1%}"
        return _criterion(
            "area", Outcome.NOT_COMPARABLE,
            Phrase(gettext_noop("area not comparable: the campaign covers %(share)s of the "
                                "province and no official figure exists for that part (import "
                                "county figures)"), {"share": share}),
            m.coverage_share, t)
    if m.official_area_ha is None:
        return _criterion("area", Outcome.UNKNOWN,
                          Phrase(gettext_noop("area unknown: no official area")), None, t)
    if m.official_status is None:
        return _criterion("area", Outcome.UNKNOWN,
                          Phrase(gettext_noop("area unknown: no official figure's status")),
                          None, t)
    official = Phrase(
        gettext_noop("official %(ha)s ha of the covered counties (%(status)s)")
        if m.official_scope == "counties" else gettext_noop("official %(ha)s ha (%(status)s)"),
        {"ha": f"{m.official_area_ha:,.0f}", "status": m.official_status.value})
    if m.official_status not in rules.accepted_statuses:
        return _criterion(
            "area", Outcome.UNKNOWN,
            Phrase(gettext_noop("area unknown: %(official)s is not an accepted figure"),
                   {"official": official}), None, t)
    areas = {s: a for s, a in (("Mapbox", m.area_mapbox_ha), ("Google", m.area_google_ha))
             if a is not None}
    if not areas:
        return _criterion(
            "area", Outcome.UNKNOWN,
            Phrase(gettext_noop("area unknown: no cropland area from either source; %(official)s"),
                   {"official": official}), None, t)
    best_source = max(areas, key=lambda s: areas[s])
    ratio = areas[best_source] / m.official_area_ha
    parts = {"ratio": f"{ratio:.1%}", "official": official, "threshold": f"{t:.0%}",
             "detail": [f"{s} {a:,.0f} ha" for s, a in areas.items()]}
    if ratio >= t:
        return _criterion(
            "area", Outcome.PASSED,
            Phrase(gettext_noop("area %(ratio)s of %(official)s >= %(threshold)s (%(detail)s)"),
                   parts), ratio, t)
    return _criterion(
        "area", Outcome.FAILED,
        Phrase(gettext_noop("area %(ratio)s of %(official)s < %(threshold)s (%(detail)s)"),
               parts), ratio, t)


def decision_phrase(decision: Decision, open_criteria: Sequence[tuple[str, Outcome]],
                    supplementary_rounds: int, max_supplementary_rounds: int) -> Phrase:
    """Why a province got its decision: the criteria still open and the rounds used."""
    if decision is Decision.CONVERGED:
        return Phrase(gettext_noop("all criteria passed"))
    names = [
        Phrase(gettext_noop("%(criterion)s %(outcome)s"),
               {"criterion": Phrase(CRITERION_NAMES.get(n, n)),
                "outcome": Phrase(OUTCOME_NAMES[o])})
        for n, o in open_criteria
    ]
    parts = {"open": names, "used": supplementary_rounds, "max": max_supplementary_rounds}
    if decision is Decision.CONTINUE and open_criteria and all(
        o is Outcome.NOT_COMPARABLE for _, o in open_criteria
    ):
        return Phrase(gettext_noop("%(open)s: the other criteria passed; the province cannot "
                                   "converge until an official figure for the part the "
                                   "campaign covers is imported"), parts)
    if decision is Decision.EXHAUSTED:
        return Phrase(gettext_noop("%(open)s after %(used)s supplementary round(s) "
                                   "(limit %(max)s): exclude the province"), parts)
    return Phrase(gettext_noop("%(open)s; %(used)s of %(max)s supplementary round(s) used"),
                  parts)


def province_stop_check(measurements: ProvinceMeasurements,
                        rules: StoppingRules | None = None) -> StopDecision:
    """Apply the three-level stopping rules to one province."""
    rules = rules or StoppingRules()
    m = measurements
    criteria = (
        _rate("iou", m.iou, m.iou_samples, rules.iou_min, rules.min_iou_samples),
        _rate("correctness", m.correctness, m.correctness_samples,
              rules.correctness_min, rules.min_correctness_samples),
        _area(m, rules),
    )
    open_ = [(c.name, c.outcome) for c in criteria if c.outcome is not Outcome.PASSED]
    if not open_:
        decision = Decision.CONVERGED
    elif all(o is Outcome.NOT_COMPARABLE for _, o in open_):
        # More labelling cannot make a missing figure appear: never excluded for that alone.
        decision = Decision.CONTINUE
    elif m.supplementary_rounds >= rules.max_supplementary_rounds:
        decision = Decision.EXHAUSTED
    else:
        decision = Decision.CONTINUE
    phrase = decision_phrase(decision, open_, m.supplementary_rounds,
                             rules.max_supplementary_rounds)
    return StopDecision(province=m.province, decision=decision, criteria=criteria,
                        reason=str(phrase), phrase=phrase)


def provinces_stop_check(items: list[ProvinceMeasurements],
                         rules: StoppingRules | None = None) -> list[StopDecision]:
    """:func:`province_stop_check` for several provinces."""
    return [province_stop_check(m, rules) for m in items]
