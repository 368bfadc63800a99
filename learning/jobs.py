"""Learning's job kind: a round, watched on ``ws/rounds/<id>/`` only (never ``ws/jobs/``),
with a snapshot of its progress panel on connect and with every event."""

from __future__ import annotations

from typing import Any

from croplayer_site.jobs import JobKind
from croplayer_site.roles import ADMIN, LEAD
from learning.dashboard import round_progress
from learning.models import Round
from learning.services.round.progress import round_event
from learning.services.round.reconcile import rounds_reconcile_run
from mapping.jobs import campaign_job_visible

ROUNDS_ROUTE = "rounds"


def _snapshot(row: Any) -> dict[str, Any]:
    return round_progress(rnd=row)


def _event(row: Any) -> dict[str, Any]:
    """The round's own progress keys (``round_event`` without the ones every job event has)."""
    skip = ("type", "job", "status")
    return {k: v for k, v in round_event(rnd=row).items() if k not in skip}


# Leads (of its campaign) and admins, as ``learning.access.round_get_for_watcher``.
ROUND = JobKind(
    name="round",
    model=Round,
    visible=campaign_job_visible(LEAD, ADMIN),
    routes=frozenset({ROUNDS_ROUTE}),
    state_field="state",
    event=_event,
    snapshot=_snapshot,
    # Rounds keep their own state machine (learning.services.round.machine: claim, lease,
    # finish, fail; so no job_claim/job_finish/job_fail for this kind). Their staleness and
    # time limit are per round (its config) and a stale round resumes rather than fails:
    # jobs_reconcile runs round.reconcile for this kind (beat and rounds_watch call it).
    reconcile=rounds_reconcile_run,
)
