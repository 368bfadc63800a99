"""The job progress websocket (``ws/jobs/<kind>-<id>/``): who may watch which job.

Deny by default: only the kinds the consumer knows, only rows that exist, only users who see
the job on its page. Issue 14 item 4: ``/ws/jobs/round-<id>/`` joined the round's broadcast
group (``job.round-<id>``) for anyone logged in, so an annotator and a lead of another
campaign received the round's progress and log.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from croplayer_site.asgi import application
from croplayer_site.jobs import job_visible
from learning.models import Round, RoundState
from learning.product.models import CroplandProduct, ProductComparison, ProductExport
from learning.services import round_broadcast
from mapping.models import Campaign, FetchRun, ImagerySource
from mapping.services.members import campaign_members_add
from tests.factories import user_make

pytestmark = pytest.mark.django_db(transaction=True)

WHO = ("annotator", "outsider", "other_lead", "lead", "admin")


@pytest.fixture
def jobs(users):
    """Campaign "a" led by the lead, with one job of each kind and a running round; campaign
    "b" led by other_lead."""
    other_lead = user_make("other_lead", role="lead")
    a = Campaign.objects.create(slug="a", name="A", region="t", year=2021)
    b = Campaign.objects.create(slug="b", name="B", region="t", year=2020)
    campaign_members_add(campaign=a, users=[users["lead"]])
    campaign_members_add(campaign=b, users=[other_lead])
    source = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    product = CroplandProduct.objects.create(
        campaign=a, name="esa", path="products/esa.tif", checksum="x",
        cropland_classes={"values": [40]}, crs="EPSG:4326", width=10, height=10,
        dtype="uint8", resolution_x=0.01, resolution_y=0.01, bounds=[112, 30, 113, 31],
    )
    rnd = Round.objects.create(
        campaign=a, number=1, state=RoundState.TRAINING, stage_done=2, stage_total=10,
        started_at=timezone.now() - dt.timedelta(seconds=30),
        log="2026-01-01 00:00:00 round 1 queued for Hubei\n",
    )
    return {
        "users": {**users, "other_lead": other_lead},
        "fetch": FetchRun.objects.create(campaign=a, source=source),
        "export": ProductExport.objects.create(campaign=a, kind="national_af"),
        "compare": ProductComparison.objects.create(campaign=a, product=product),
        "round": rnd,
    }


def test_who_may_watch_which_job(jobs):
    users = jobs["users"]
    allowed = {
        # the campaign page lists fetch runs to everyone who sees the campaign
        "fetch": {"annotator", "lead", "admin"},
        # exports and comparisons are lead pages, of the lead's own campaigns
        "export": {"lead", "admin"},
        "compare": {"lead", "admin"},
        # not a job kind of this consumer: rounds are watched on ws/rounds/<id>/
        "round": set(),
    }
    for kind, who_may in allowed.items():
        job = f"{kind}-{jobs[kind].pk}"
        seen = {who for who in WHO if job_visible(user=users[who], job=job)}
        assert seen == who_may, job


def test_nothing_that_is_not_an_existing_job_of_a_known_kind(jobs):
    """Not even for an admin: a job that does not exist (yet), an unknown kind, an id spelled
    so that it names another group than the worker sends to."""
    fetch = jobs["fetch"].pk
    for job in (
        f"fetch-{fetch + 1000}",  # not created yet
        f"export-{jobs['export'].pk + 1000}",
        f"compare-{jobs['compare'].pk + 1000}",
        f"round-{jobs['round'].pk}",
        f"campaign-{jobs['fetch'].campaign_id}",
        f"fetch-0{fetch}",
        "fetch-",
        "fetch",
        f"fetch-{fetch}-1",
        "fetch-²",
        "fetch-" + "9" * 19,
        "test-xproc",
    ):
        for who in WHO:
            assert not job_visible(user=jobs["users"][who], job=job), (who, job)


def _headers(session: str) -> list[tuple[bytes, bytes]]:
    return [(b"origin", b"http://localhost"), (b"host", b"localhost"),
            (b"cookie", session.encode())]


def test_round_progress_reaches_only_its_watchers(jobs, session_cookie):
    """Through the ASGI app (routing, session, origin check) and the configured channel layer:
    the round's broadcast reaches its lead and an admin on ``ws/rounds/<id>/``; on
    ``ws/jobs/round-<id>/`` everyone is refused, so the annotator, the outsider and the lead of
    another campaign get nothing of it."""
    users, rnd = jobs["users"], jobs["round"]
    headers = {who: _headers(session_cookie(users[who])) for who in WHO}

    async def scenario():
        refused = {}
        for who in WHO:
            comm = WebsocketCommunicator(application, f"/ws/jobs/round-{rnd.pk}/", headers[who])
            try:
                refused[who] = await comm.connect(timeout=10)
            finally:
                await comm.disconnect()
        watchers = {}
        try:
            for who in ("lead", "admin"):
                comm = WebsocketCommunicator(application, f"/ws/rounds/{rnd.pk}/", headers[who])
                watchers[who] = comm
                connected, _ = await comm.connect(timeout=10)
                assert connected, who
                assert (await comm.receive_json_from(timeout=10))["event"] == "snapshot"
            await asyncio.get_running_loop().run_in_executor(None, _broadcast, rnd.pk)
            got = {who: await comm.receive_json_from(timeout=15) for who, comm in watchers.items()}
        finally:
            for comm in watchers.values():
                await comm.disconnect()
        return refused, got

    refused, got = async_to_sync(scenario)()
    assert refused == dict.fromkeys(WHO, (False, 4404))
    for who in ("lead", "admin"):
        assert got[who]["event"] == "progress" and got[who]["round"] == rnd.pk, who


def _broadcast(round_id: int) -> None:
    """What the worker does (in a thread of its own: close its connection after)."""
    from django.db import connection

    try:
        round_broadcast(rnd=Round.objects.get(pk=round_id))
    finally:
        connection.close()


def test_job_websocket_admits_exactly_who_sees_the_job(jobs, session_cookie):
    """The consumer applies ``job_visible``: an export of campaign "a" through the ASGI app."""
    job = f"export-{jobs['export'].pk}"

    async def connect(headers):
        comm = WebsocketCommunicator(application, f"/ws/jobs/{job}/", headers)
        try:
            return await comm.connect(timeout=10)
        finally:
            await comm.disconnect()

    got = {
        who: async_to_sync(connect)(_headers(session_cookie(jobs["users"][who])))
        for who in WHO
    }
    assert got == {
        "annotator": (False, 4404),
        "outsider": (False, 4404),
        "other_lead": (False, 4404),
        "lead": (True, None),
        "admin": (True, None),
    }
