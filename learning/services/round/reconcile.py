"""The reconciler: resume rounds whose worker went quiet, fail those past their limits."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from learning.models import ACTIVE_ROUND_STATES, Round
from learning.services.config import round_config_parse
from learning.services.round import dispatch
from learning.services.round.machine import round_fail
from learning.services.round.progress import checkpoint_set, round_log


def rounds_reconcile_run() -> dict[str, Any]:
    """Resume rounds whose worker went quiet, fail those past their time limit.

    A round whose heartbeat is older than its ``stale_after_s`` is re-driven from its state
    (batches not done are queued again, training resumes from its epoch checkpoint); after
    ``max_resumes`` resumes without finishing it fails with the reason. Returns what it did.
    """
    now = timezone.now()
    out: dict[str, Any] = {"active": 0, "resumed": [], "failed": [], "next_check_s": None}
    for rnd in Round.objects.filter(state__in=ACTIVE_ROUND_STATES):
        out["active"] += 1
        cfg = round_config_parse(rnd.config)
        check = cfg.stale_after_s / 2
        out["next_check_s"] = min(out["next_check_s"] or check, check)
        if rnd.started_at and (now - rnd.started_at).total_seconds() > cfg.max_duration_s:
            if round_fail(
                round_id=rnd.pk,
                reason=f"time limit of {cfg.max_duration_s:.0f} s exceeded while {rnd.state}",
            ):
                out["failed"].append(rnd.pk)
            continue
        last = rnd.heartbeat_at or rnd.created_at
        quiet = (now - last).total_seconds()
        if quiet <= cfg.stale_after_s:
            continue
        # Claim the resume: only one reconciler moves the heartbeat from this value.
        if not Round.objects.filter(
            pk=rnd.pk, heartbeat_at=rnd.heartbeat_at, state=rnd.state
        ).update(heartbeat_at=now, lease=""):
            continue
        resumes = int((rnd.checkpoint or {}).get("resumes", 0)) + 1
        checkpoint_set(round_id=rnd.pk, resumes=resumes)
        if resumes > cfg.max_resumes:
            round_fail(
                round_id=rnd.pk,
                reason=f"no progress for {quiet:.0f} s while {rnd.state} "
                f"and already resumed {resumes - 1} time(s): the workers keep dying "
                "(see their logs)",
            )
            out["failed"].append(rnd.pk)
            continue
        round_log(
            rnd=rnd.pk,
            message=f"no heartbeat for {quiet:.0f} s: resuming from "
            f"{rnd.state} (resume {resumes} of {cfg.max_resumes})",
        )
        dispatch.round_advance_enqueue(rnd.pk)
        out["resumed"].append(rnd.pk)
    return out
