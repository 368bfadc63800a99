"""Websocket consumer that relays a background job's progress to the browser."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from croplayer_site.roles import ADMIN, ANNOTATOR, LEAD, has_role

# The kinds of job this consumer relays, each with the roles that may watch one (on top of
# seeing its campaign): what the page listing the job shows to whom. Anything else is refused,
# also a kind whose group exists: a round's progress goes to ``job.round-<id>`` too, but
# rounds are watched on ``ws/rounds/<id>/`` (learning.consumers), which has the round's gate.
JOB_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # the campaign page lists its fetch runs to everyone who sees the campaign
    "fetch": ("mapping.FetchRun", (ANNOTATOR, LEAD, ADMIN)),
    # exports and product comparisons are lead pages
    "export": ("product.ProductExport", (LEAD, ADMIN)),
    "compare": ("product.ProductComparison", (LEAD, ADMIN)),
}


def job_visible(*, user: Any, job: str) -> bool:
    """Whether ``user`` may watch ``job`` (``<kind>-<id>``): deny by default.

    Only a known kind (``JOB_KINDS``), only a row that exists (a job not created yet has
    nothing to tell, and a subscription made in advance would receive whatever a future row
    with that id broadcasts), only a user with the kind's role who sees the row's campaign
    (``campaigns_visible_to``: not a lead of another campaign, not someone without a role).
    """
    from django.apps import apps

    from mapping.selectors import campaigns_visible_to

    kind, _, pk = job.partition("-")
    if kind not in JOB_KINDS or not (pk.isascii() and pk.isdigit()) or len(pk) > 18:
        return False
    if pk != str(int(pk)):
        return False  # "fetch-007": the worker sends to "job.fetch-7", not this group
    model_name, roles = JOB_KINDS[kind]
    if not has_role(user, *roles):
        return False
    model = apps.get_model(model_name)  # by label: the product app sits above mapping
    return bool(
        model.objects.filter(pk=int(pk), campaign__in=campaigns_visible_to(user=user)).exists()
    )


class JobProgressConsumer(AsyncJsonWebsocketConsumer):
    """``ws/jobs/<job>/``: join the job's group; the worker sends ``job.progress`` events."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        job = self.scope["url_route"]["kwargs"]["job"]
        if not job.replace("-", "").isalnum() or len(job) > 60:
            await self.close(code=4400)
            return
        if not await database_sync_to_async(job_visible)(user=user, job=job):
            await self.close(code=4404)  # missing or not theirs: the same answer
            return
        self.group = f"job.{job}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_progress(self, event: dict[str, Any]) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"})
