"""Websocket consumer that streams a learning round's progress to leads and admins."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework.exceptions import NotFound

from learning.dashboard import round_get_for_watcher, round_progress
from learning.models import Round


@database_sync_to_async
def _snapshot(user: Any, round_id: int) -> tuple[str, dict[str, Any]]:
    rnd = round_get_for_watcher(user=user, round_id=round_id)
    return rnd.group, round_progress(rnd=rnd)


@database_sync_to_async
def _refresh(round_id: int) -> dict[str, Any] | None:
    try:
        return round_progress(rnd=Round.objects.get(pk=round_id))  # access: gated in connect()
    except Round.DoesNotExist:
        return None


class RoundProgressConsumer(AsyncJsonWebsocketConsumer):
    """``ws/rounds/<round_id>/``: a snapshot on connect, then one per event of the round's group.

    Each event from the worker triggers a fresh read of the round row, so the browser always
    gets the same complete snapshot (stage, percent, elapsed, ETA, log tail) whatever subset of
    fields the worker put in its event, and a missed event costs nothing.
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.round_id = int(self.scope["url_route"]["kwargs"]["round_id"])
        try:
            group, snapshot = await _snapshot(user, self.round_id)
        except NotFound:
            # Missing and forbidden look the same: no hint that the round exists.
            await self.close(code=4404)
            return
        self.group = group
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "snapshot", **snapshot})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _relay(self, event: dict[str, Any]) -> None:
        snapshot = await _refresh(self.round_id)
        extra = {k: v for k, v in event.items() if k != "type"}
        await self.send_json({"event": "progress", **extra, **(snapshot or {})})

    # The worker names its events ``job.progress`` (like fetch runs) or ``round.progress``.
    async def job_progress(self, event: dict[str, Any]) -> None:
        await self._relay(event)

    async def round_progress(self, event: dict[str, Any]) -> None:
        await self._relay(event)
