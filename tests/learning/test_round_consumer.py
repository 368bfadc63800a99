"""The round progress websocket: who may watch, the snapshot on connect, and progress that
another process sends through the configured channel layer (SQLite file or Redis)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import select
import subprocess
import sys
import textwrap

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from croplayer_site.asgi import application
from croplayer_site.consumers import JobConsumer
from learning.core.progress import DEFAULT_SHARES
from learning.models import Round, RoundState
from mapping.models import Campaign
from mapping.services.members import campaign_members_add
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


class OtherProcess:
    """A Django process (a stand-in for the worker) that sends to a group when told to.

    It starts, sets Django up and waits before the websocket connects, so that the send itself
    takes milliseconds, not the seconds a Python process needs to start.
    """

    def __init__(self, group: str) -> None:
        code = textwrap.dedent(f"""
            import json, os, sys
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
            import django
            django.setup()
            from asgiref.sync import async_to_sync
            from channels.layers import get_channel_layer
            layer = get_channel_layer()
            print("ready", flush=True)
            for line in sys.stdin:
                async_to_sync(layer.group_send)({group!r}, json.loads(line))
                print("sent", flush=True)
        """)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        try:
            assert self._line(timeout=60) == "ready"
        except BaseException:
            self.proc.kill()
            raise

    def _line(self, *, timeout: float) -> str:
        """The process's next line; it is killed if none comes in time (no hung test)."""
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            self.proc.kill()
            raise TimeoutError(f"no answer from the sending process in {timeout} s")
        return self.proc.stdout.readline().strip()

    def send(self, payload: dict) -> None:
        self.proc.stdin.write(json.dumps(payload) + "\n")
        self.proc.stdin.flush()
        assert self._line(timeout=30) == "sent"

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _advance(round_id: int) -> None:
    """What the worker does between broadcasts (in a thread: close its connection after)."""
    from django.db import connection

    try:
        Round.objects.filter(pk=round_id).update(stage_done=5)
    finally:
        connection.close()


@pytest.fixture
def rnd(db, users):
    camp = Campaign.objects.create(slug="ws", name="WS", region="t", year=2020, zoom=12)
    campaign_members_add(campaign=camp, users=[users["lead"]])
    return Round.objects.create(
        campaign=camp, number=1, state=RoundState.TRAINING, stage_done=2, stage_total=10,
        started_at=timezone.now() - dt.timedelta(seconds=60),
        log="2026-01-01 00:00:00 round 1 queued for Hubei\n"
            "2026-01-01 00:00:01 training the segmenter\n",
    )


def _communicator(user, round_id: int) -> WebsocketCommunicator:
    consumer = JobConsumer.as_asgi(route="rounds", name="round", pk_kwarg="round_id")
    comm = WebsocketCommunicator(consumer, f"/ws/rounds/{round_id}/")
    comm.scope["user"] = user
    comm.scope["url_route"] = {"kwargs": {"round_id": round_id}}
    return comm


async def _connect_once(comm: WebsocketCommunicator) -> tuple[bool, int | None]:
    """Connect, then hang up as a browser would (also after a refusal): the consumer ends
    instead of being left for the event loop's shutdown to cancel."""
    try:
        return await comm.connect(timeout=10)
    finally:
        await comm.disconnect()


@pytest.mark.parametrize("who", ["lead", "admin"])
def test_snapshot_then_progress_sent_by_another_process(users, rnd, who):
    other = OtherProcess(rnd.group)

    async def scenario():
        comm = _communicator(users[who], rnd.pk)
        try:
            connected, _ = await comm.connect(timeout=10)
            assert connected
            snapshot = await comm.receive_json_from(timeout=10)
            # The worker moves the round on, then tells the group (as round_broadcast does).
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, _advance, rnd.pk)
            await loop.run_in_executor(None, other.send, {
                "type": "job.progress", "job": f"round-{rnd.pk}", "stage_done": 5})
            progress = await comm.receive_json_from(timeout=15)
        finally:
            await comm.disconnect()
        return snapshot, progress

    try:
        snapshot, progress = async_to_sync(scenario)()
    finally:
        other.close()
    assert snapshot["event"] == "snapshot"
    assert (snapshot["round"], snapshot["state"], snapshot["active"]) == (rnd.pk, "training", True)
    assert (snapshot["stage_done"], snapshot["stage_total"]) == (2, 10)
    assert snapshot["stage_percent"] == pytest.approx(20.0)
    # 0.2 of training, weighted by its default share (the campaign has no timed round yet)
    training = 100 * DEFAULT_SHARES["training"]
    assert snapshot["overall_percent"] == pytest.approx(0.2 * training)
    assert snapshot["elapsed_s"] == pytest.approx(60, abs=10)
    assert snapshot["log_tail"][-1].endswith("training the segmenter")
    assert progress["event"] == "progress"
    assert progress["stage_done"] == 5
    assert progress["overall_percent"] == pytest.approx(0.5 * training)


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_others_cannot_watch(users, rnd, who):
    async def scenario():
        return await _connect_once(_communicator(users[who], rnd.pk))

    assert async_to_sync(scenario)() == (False, 4404)


def test_a_lead_of_another_campaign_cannot_watch(users, rnd):
    """Refused like a missing round; the campaign's own lead is let in."""
    from django.contrib.auth.models import User

    from croplayer_site.roles import roles_ensure

    other_lead = User.objects.create(username="other_lead")
    other_lead.groups.add(roles_ensure()["lead"])
    elsewhere = Campaign.objects.create(slug="elsewhere", name="E", region="t", year=2020)
    campaign_members_add(campaign=elsewhere, users=[other_lead])

    async def connect(user):
        return await _connect_once(_communicator(user, rnd.pk))

    assert async_to_sync(connect)(other_lead) == (False, 4404)
    assert async_to_sync(connect)(users["lead"])[0] is True


def test_anonymous_and_missing_round(users, rnd):
    async def anonymous():
        return await _connect_once(_communicator(AnonymousUser(), rnd.pk))

    async def missing():
        return await _connect_once(_communicator(users["lead"], rnd.pk + 1000))

    assert async_to_sync(anonymous)() == (False, 4401)
    assert async_to_sync(missing)() == (False, 4404)


def test_route_is_served_by_the_asgi_app(rnd):
    async def scenario():
        comm = WebsocketCommunicator(
            application, f"/ws/rounds/{rnd.pk}/",
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
        )
        return await _connect_once(comm)

    # Routed to the round consumer, which refuses a visitor without a session.
    assert async_to_sync(scenario)() == (False, 4401)


def test_a_watcher_idle_longer_than_the_layers_poll_still_gets_progress(users, rnd):
    """Rounds are quiet for minutes while a model trains; the socket must stay usable."""

    other = OtherProcess(rnd.group)

    async def scenario():
        comm = _communicator(users["lead"], rnd.pk)
        try:
            connected, _ = await comm.connect(timeout=10)
            assert connected
            await comm.receive_json_from(timeout=10)  # the snapshot
            await asyncio.sleep(7)
            await asyncio.get_running_loop().run_in_executor(
                None, other.send, {"type": "job.progress"})
            return await comm.receive_json_from(timeout=15)
        finally:
            await comm.disconnect()

    try:
        assert async_to_sync(scenario)()["event"] == "progress"
    finally:
        other.close()
