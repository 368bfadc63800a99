"""Learning's job kind: a round, watched on ``ws/rounds/<id>/`` only (never ``ws/jobs/``),
with a snapshot of its progress panel on connect and with every event."""

from __future__ import annotations

from typing import Any

from croplayer_site.jobs import JobKind
from croplayer_site.roles import ADMIN, LEAD
from learning.dashboard import round_progress
from learning.models import Round
from mapping.jobs import campaign_job_visible

ROUNDS_ROUTE = "rounds"


def _snapshot(row: Any) -> dict[str, Any]:
    return round_progress(rnd=row)


# Leads (of its campaign) and admins, as ``learning.dashboard.round_get_for_watcher``.
ROUND = JobKind(
    name="round",
    model=Round,
    visible=campaign_job_visible(LEAD, ADMIN),
    routes=frozenset({ROUNDS_ROUTE}),
    state_field="state",
    snapshot=_snapshot,
)
