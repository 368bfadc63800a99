"""Channels: the configured layer carries messages from another process to a websocket."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from croplayer_site.asgi import application
from mapping.consumers import JobProgressConsumer
from mapping.services.members import campaign_members_add
from tests.conftest import ROOT


def _send_from_other_process(group: str, payload: dict) -> None:
    code = textwrap.dedent(f"""
        import django, os
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
        django.setup()
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer
        async_to_sync(get_channel_layer().group_send)({group!r}, {payload!r})
    """)
    subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), check=True, timeout=60
    )


def test_layer_reaches_this_process_from_another():
    layer = get_channel_layer()

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add("job.test-xproc", channel)
        await asyncio.get_running_loop().run_in_executor(
            None,
            _send_from_other_process,
            "job.test-xproc",
            {"type": "job.progress", "done": 3},
        )
        msg = await asyncio.wait_for(layer.receive(channel), timeout=10)
        await layer.group_discard("job.test-xproc", channel)
        return msg

    assert async_to_sync(scenario)() == {"type": "job.progress", "done": 3}


@pytest.mark.django_db(transaction=True)
def test_websocket_gets_progress_sent_by_another_process(users):
    async def scenario():
        comm = WebsocketCommunicator(JobProgressConsumer.as_asgi(), "/ws/jobs/fetch-77/")
        comm.scope["user"] = users["lead"]
        comm.scope["url_route"] = {"kwargs": {"job": "fetch-77"}}
        connected, _ = await comm.connect()
        assert connected
        await asyncio.get_running_loop().run_in_executor(
            None,
            _send_from_other_process,
            "job.fetch-77",
            {"type": "job.progress", "job": "fetch-77", "ok": 5, "total": 9},
        )
        msg = await comm.receive_json_from(timeout=10)
        await comm.disconnect()
        return msg

    assert async_to_sync(scenario)() == {"job": "fetch-77", "ok": 5, "total": 9}


@pytest.mark.django_db(transaction=True)
def test_websocket_refuses_anonymous_and_foreign_origin():
    from django.contrib.auth.models import AnonymousUser

    async def anonymous():
        comm = WebsocketCommunicator(JobProgressConsumer.as_asgi(), "/ws/jobs/fetch-1/")
        comm.scope["user"] = AnonymousUser()
        comm.scope["url_route"] = {"kwargs": {"job": "fetch-1"}}
        connected, code = await comm.connect()
        return connected, code

    assert async_to_sync(anonymous)() == (False, 4401)

    async def foreign_origin():
        comm = WebsocketCommunicator(
            application,
            "/ws/jobs/fetch-1/",
            headers=[(b"origin", b"https://evil.example"), (b"host", b"localhost")],
        )
        connected, _ = await comm.connect()
        return connected

    assert async_to_sync(foreign_origin)() is False


@pytest.mark.django_db(transaction=True)
def test_export_progress_is_for_leads_of_an_existing_export(users):
    """An annotator, or anyone naming an export that does not exist, gets 4404."""
    from mapping.models import Campaign, ProductExport

    camp = Campaign.objects.create(slug="ws-gate", name="g", region="t", year=2020)
    campaign_members_add(campaign=camp, users=[users["lead"]])
    export = ProductExport.objects.create(campaign=camp, kind="national_af")

    async def connect(user, job):
        comm = WebsocketCommunicator(JobProgressConsumer.as_asgi(), f"/ws/jobs/{job}/")
        comm.scope["user"] = user
        comm.scope["url_route"] = {"kwargs": {"job": job}}
        connected, code = await comm.connect()
        if connected:
            await comm.disconnect()
        return connected, code

    job = f"export-{export.pk}"
    assert async_to_sync(connect)(users["lead"], job)[0] is True
    assert async_to_sync(connect)(users["admin"], job)[0] is True
    assert async_to_sync(connect)(users["annotator"], job) == (False, 4404)
    assert async_to_sync(connect)(users["lead"], f"export-{export.pk + 99}") == (False, 4404)
    assert async_to_sync(connect)(users["outsider"], "fetch-1") == (False, 4404)
    assert async_to_sync(connect)(users["annotator"], "fetch-1")[0] is True
