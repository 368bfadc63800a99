"""Websocket consumer that relays a background job's progress to the browser."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer


def job_visible(*, user: Any, job: str) -> bool:
    """Who may watch a job: anyone with a role a campaign's imagery fetch (the campaign page
    shows it to all), leads and admins an export or a product comparison of an existing row;
    never a job of a campaign the user does not see (a lead of another campaign)."""
    from croplayer_site.roles import ADMIN, LEAD, has_role, user_roles
    from mapping.models import FetchRun, ProductComparison, ProductExport
    from mapping.selectors import campaigns_visible_to

    if not user_roles(user):
        return False
    kind, _, pk = job.partition("-")
    visible = campaigns_visible_to(user=user)
    if kind == "fetch" and pk.isdigit():
        # A fetch run not (yet) in the database has nothing to tell; one of a campaign the
        # user does not see is refused.
        return not FetchRun.objects.filter(pk=int(pk)).exclude(campaign__in=visible).exists()
    models = {"export": ProductExport, "compare": ProductComparison}
    if kind not in models:
        return True
    return (
        has_role(user, LEAD, ADMIN)
        and pk.isdigit()
        and models[kind].objects.filter(pk=int(pk), campaign__in=visible).exists()
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
