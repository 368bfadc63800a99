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
from croplayer_site.consumers import JobConsumer
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


def test_a_cancelled_receive_ends():
    """A consumer whose websocket closes cancels its pending ``receive``; the receive must end.

    With a redis-py socket timeout, every command is sent through ``asyncio.wait_for``, which on
    Python 3.11 swallows a cancellation that arrives as the send completes (CPython gh-86296):
    the receive went on polling forever, the consumer never finished, and an event loop that
    waited for it at shutdown hung CI for good. Cancelled here at every point of a receive
    (connecting, the clean-up EVAL, BZPOPMIN), on a layer of its own and a loop in a daemon
    thread, so that a receive that does not end fails this test instead of hanging the suite.
    """
    import threading

    from channels.layers import channel_layers

    layer = channel_layers.make_backend("default")
    loop = asyncio.new_event_loop()
    result: dict[str, object] = {}

    async def scenario() -> None:
        channel = await layer.new_channel()
        for attempt in range(120):
            receive = asyncio.ensure_future(layer.receive(channel))
            for _ in range(attempt % 40):  # let it get that many steps into its work
                await asyncio.sleep(0)
            receive.cancel()
            done, _ = await asyncio.wait([receive], timeout=5)
            if not done:
                result["stuck"] = attempt
                return
        result["stuck"] = None
        await layer.close_pools()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(scenario(),), daemon=True, name="cancel-receive"
    )
    thread.start()
    thread.join(120)
    assert "stuck" in result, "the scenario did not finish"
    assert result["stuck"] is None, f"cancelled receive #{result['stuck']} never ended"
    loop.close()


def _fetch_run(lead):
    from mapping.models import Campaign, FetchRun, ImagerySource

    camp = Campaign.objects.create(slug="ws-fetch", name="f", region="t", year=2020)
    campaign_members_add(campaign=camp, users=[lead])
    source = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    return FetchRun.objects.create(campaign=camp, source=source)


@pytest.mark.django_db(transaction=True)
def test_websocket_gets_progress_sent_by_another_process(users):
    run = _fetch_run(users["lead"])
    job = f"fetch-{run.pk}"

    async def scenario():
        comm = WebsocketCommunicator(JobConsumer.as_asgi(), f"/ws/jobs/{job}/")
        comm.scope["user"] = users["lead"]
        comm.scope["url_route"] = {"kwargs": {"job": job}}
        try:
            connected, _ = await comm.connect(timeout=10)
            assert connected
            await asyncio.get_running_loop().run_in_executor(
                None,
                _send_from_other_process,
                run.group,
                {"type": "job.progress", "job": job, "ok": 5, "total": 9},
            )
            return await comm.receive_json_from(timeout=10)
        finally:
            await comm.disconnect()

    assert async_to_sync(scenario)() == {"job": job, "ok": 5, "total": 9}


@pytest.mark.django_db(transaction=True)
def test_websocket_refuses_anonymous_and_foreign_origin():
    from django.contrib.auth.models import AnonymousUser

    async def anonymous():
        comm = WebsocketCommunicator(JobConsumer.as_asgi(), "/ws/jobs/fetch-1/")
        comm.scope["user"] = AnonymousUser()
        comm.scope["url_route"] = {"kwargs": {"job": "fetch-1"}}
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    assert async_to_sync(anonymous)() == (False, 4401)

    async def foreign_origin():
        comm = WebsocketCommunicator(
            application,
            "/ws/jobs/fetch-1/",
            headers=[(b"origin", b"https://evil.example"), (b"host", b"localhost")],
        )
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    assert async_to_sync(foreign_origin)() is False


@pytest.mark.django_db(transaction=True)
def test_export_progress_is_for_leads_of_an_existing_export(users):
    """An annotator, or anyone naming an export that does not exist, gets 4404."""
    from learning.product.models import ProductExport
    from mapping.models import Campaign

    camp = Campaign.objects.create(slug="ws-gate", name="g", region="t", year=2020)
    campaign_members_add(campaign=camp, users=[users["lead"]])
    export = ProductExport.objects.create(campaign=camp, kind="national_af")
    fetch = f"fetch-{_fetch_run(users['lead']).pk}"

    async def connect(user, job):
        comm = WebsocketCommunicator(JobConsumer.as_asgi(), f"/ws/jobs/{job}/")
        comm.scope["user"] = user
        comm.scope["url_route"] = {"kwargs": {"job": job}}
        connected, code = await comm.connect()
        await comm.disconnect()
        return connected, code

    job = f"export-{export.pk}"
    assert async_to_sync(connect)(users["lead"], job)[0] is True
    assert async_to_sync(connect)(users["admin"], job)[0] is True
    assert async_to_sync(connect)(users["annotator"], job) == (False, 4404)
    assert async_to_sync(connect)(users["lead"], f"export-{export.pk + 99}") == (False, 4404)
    assert async_to_sync(connect)(users["outsider"], fetch) == (False, 4404)
    assert async_to_sync(connect)(users["annotator"], fetch)[0] is True
