"""The round's state machine: the transition table and the only writes of a round's state.

Every write is a conditional update from the state the caller saw, so that two workers, two
requests or a task delivered twice never move a round backwards or twice. The stages say which
state they finished (``stage_enter``, ``stage_next``), or that the round failed
(``round_fail``) or was cancelled (``round_end``); where that leads is the table's to say.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from django.utils import timezone

from learning.models import ACTIVE_ROUND_STATES, FINAL_ROUND_STATES, Round, RoundState
from learning.services.round.progress import round_broadcast, round_log


@dataclass(frozen=True)
class Edges:
    """Where a round in one state goes when that state's work succeeds, fails or is cancelled."""

    success: str
    failure: str = RoundState.FAILED
    cancel: str = RoundState.CANCELLED


TRANSITIONS: dict[str, Edges] = {
    RoundState.QUEUED: Edges(success=RoundState.TRAINING),
    RoundState.TRAINING: Edges(success=RoundState.PREDICTING),
    RoundState.PREDICTING: Edges(success=RoundState.SCORING),
    RoundState.SCORING: Edges(success=RoundState.EVALUATING),
    RoundState.EVALUATING: Edges(success=RoundState.SELECTING),
    RoundState.SELECTING: Edges(success=RoundState.DONE),
}

# The table covers every active state, and every edge leads to an active or a final state.
assert set(TRANSITIONS) == set(ACTIVE_ROUND_STATES), "a round state without transitions"
assert all(
    target in TRANSITIONS or target in FINAL_ROUND_STATES
    for edges in TRANSITIONS.values()
    for target in (edges.success, edges.failure, edges.cancel)
), "a transition to an unknown state"


class RoundStopped(Exception):
    """The round was cancelled or failed, or this task lost its lease: stop quietly."""


def round_get(round_id: int) -> Round:
    return Round.objects.select_related("campaign").get(pk=round_id)


def stage_check(round_id: int, state: str) -> Round:
    """The round, if it is still in ``state``; else RoundStopped (cancelled, failed, moved on)."""
    rnd = round_get(round_id)
    if rnd.state != state:
        raise RoundStopped(f"round is {rnd.state}, not {state}")
    return rnd


def stage_next(*, round_id: int, from_state: str, **fields: Any) -> bool:
    """``from_state``'s work succeeded: move to the state the table names (and set
    ``fields``); False if someone else already moved the round."""
    return bool(
        Round.objects.filter(pk=round_id, state=from_state).update(
            state=TRANSITIONS[from_state].success, heartbeat_at=timezone.now(), **fields
        )
    )


def stage_enter(
    *, round_id: int, from_state: str, total: int, message: str, **fields: Any
) -> bool:
    """Move on from ``from_state`` into the next stage with fresh progress counters; False if
    already moved."""
    rnd = Round.objects.get(pk=round_id)
    ck = dict(rnd.checkpoint or {})
    ck["stage_started"] = time.time()
    moved = stage_next(
        round_id=round_id,
        from_state=from_state,
        stage_done=0,
        stage_total=total,
        checkpoint=ck,
        **fields,
    )
    if moved:
        round_log(rnd=round_id, message=message)
        round_broadcast(rnd=Round.objects.get(pk=round_id))
    return moved


def round_end(*, round_id: int, outcome: Literal["failure", "cancel"], **fields: Any) -> bool:
    """End an active round the way the table says ``outcome`` ends its state (and set
    ``fields``); False when it was no longer active."""
    by_target: dict[str, list[str]] = defaultdict(list)
    for state, edges in TRANSITIONS.items():
        by_target[getattr(edges, outcome)].append(state)
    changed = 0
    for target, states in by_target.items():  # one update: every state fails (cancels) alike
        changed += Round.objects.filter(pk=round_id, state__in=states).update(
            state=target, finished_at=timezone.now(), lease="", **fields
        )
    return bool(changed)


def round_fail(*, round_id: int, reason: str) -> bool:
    """Fail an active round with a reason the admin can act on."""
    changed = round_end(round_id=round_id, outcome="failure", failure_reason=reason[:5000])
    if changed:
        round_log(rnd=round_id, message=f"failed: {reason}")
        round_broadcast(rnd=Round.objects.get(pk=round_id))
    return changed
