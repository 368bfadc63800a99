"""The one websocket consumer of background jobs: it authorises through the job registry.

``ws/jobs/<kind>-<id>/`` serves the kinds registered for the ``jobs`` route; a route that
serves one kind (``ws/rounds/<id>/``) names it in ``as_asgi(name=..., pk_kwarg=...)``. Anything
``job_get_for_watcher`` refuses (an unknown kind, a kind of another route, a missing row, a row
the user may not see) closes with 4404: missing and forbidden look the same.

Kinds with a snapshot (rounds) get one on connect and a fresh one with every event, so the
browser always shows a complete panel whatever subset of fields the worker sent, and a missed
event costs nothing. Other kinds get the worker's event unchanged (without its ``type``).
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from croplayer_site.jobs import JOBS_ROUTE, job_get_for_watcher, job_kind, job_parse


@database_sync_to_async
def _watch(*, user: Any, name: str, pk: int, route: str) -> dict[str, Any] | None:
    """The snapshot to send on connect (``{}`` for kinds without one); ``None``: refused."""
    try:
        row = job_get_for_watcher(user=user, name=name, pk=pk, route=route)
    except Http404:
        return None
    snapshot = job_kind(name).snapshot
    return snapshot(row) if snapshot is not None else {}


@database_sync_to_async
def _refresh(*, name: str, pk: int) -> dict[str, Any]:
    kind = job_kind(name)
    row = kind.model._default_manager.filter(pk=pk).first()
    return kind.snapshot(row) if row is not None and kind.snapshot is not None else {}


class JobConsumer(AsyncJsonWebsocketConsumer):
    """Join the job's group ``job.<kind>-<id>``; relay its ``job.progress`` events."""

    def __init__(
        self, *, route: str = JOBS_ROUTE, name: str | None = None, pk_kwarg: str = "pk"
    ) -> None:
        super().__init__()
        self.route = route
        self.name = name  # set for a route whose URL carries only the id (``pk_kwarg``)
        self.pk_kwarg = pk_kwarg

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        kwargs = self.scope["url_route"]["kwargs"]
        if self.name is None:
            job = str(kwargs["job"])
            if not job.replace("-", "").isalnum() or len(job) > 60:
                await self.close(code=4400)
                return
            parsed = job_parse(job)
        else:
            parsed = (self.name, int(kwargs[self.pk_kwarg]))
        snapshot = None
        if parsed is not None:
            snapshot = await _watch(user=user, name=parsed[0], pk=parsed[1], route=self.route)
        if snapshot is None:
            await self.close(code=4404)
            return
        self.job_name, self.job_pk = parsed
        self.with_snapshot = job_kind(self.job_name).snapshot is not None
        self.group = job_kind(self.job_name).group(self.job_pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        if self.with_snapshot:
            await self.send_json({"event": "snapshot", **snapshot})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_progress(self, event: dict[str, Any]) -> None:
        extra = {k: v for k, v in event.items() if k != "type"}
        if not self.with_snapshot:
            await self.send_json(extra)
            return
        snapshot = await _refresh(name=self.job_name, pk=self.job_pk)
        await self.send_json({"event": "progress", **extra, **snapshot})
