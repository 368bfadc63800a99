"""Websocket consumer that relays a background job's progress to the browser."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


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
        self.group = f"job.{job}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_progress(self, event: dict[str, Any]) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"})
