"""Mapping's job kind (fetch runs) and the campaign rule every app's kinds watch by."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Model

from croplayer_site.jobs import JobKind
from croplayer_site.roles import ADMIN, ANNOTATOR, LEAD, has_role
from mapping.access import campaigns_visible_to
from mapping.models import FetchRun
from mapping.selectors import fetch_run_counts


def campaign_job_visible(*roles: str) -> Callable[..., bool]:
    """``JobKind.visible`` for a row with a ``campaign``: a user with one of ``roles`` who sees
    the campaign (``campaigns_visible_to``: not a lead of another campaign, not someone without
    a role)."""

    def visible(*, user: Any, row: Model) -> bool:
        return has_role(user, *roles) and (
            campaigns_visible_to(user=user).filter(pk=row.campaign_id).exists()  # type: ignore[attr-defined]
        )

    return visible


def fetch_event(row: Any) -> dict[str, Any]:
    """A fetch run's progress keys: its total and the counts of its images."""
    return {"total": row.total, **fetch_run_counts(run=row)}


# The campaign page lists its fetch runs to everyone who sees the campaign. Its batches run in
# parallel, so each reports its own event (no JobProgress), and it is not reconciled yet.
FETCH = JobKind(
    name="fetch",
    model=FetchRun,
    visible=campaign_job_visible(ANNOTATOR, LEAD, ADMIN),
    event=fetch_event,
)
