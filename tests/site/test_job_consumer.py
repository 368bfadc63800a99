"""croplayer_site.consumers.JobConsumer with fake kinds: it admits through the registry only,
and relays events plain or with a fresh snapshot (the kinds' real gates are pinned in
tests/mapping/test_job_consumer.py and tests/learning/test_round_consumer.py)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from croplayer_site.consumers import JobConsumer
from croplayer_site.jobs import JobKind, job_kind_register, job_kind_unregister
from learning.product.models import ProductExport
from mapping.models import Campaign

pytestmark = pytest.mark.django_db(transaction=True)


def _kind(name: str, **kw) -> JobKind:
    return JobKind(
        name=name,
        model=ProductExport,
        visible=lambda *, user, row: user.username == "lead",
        **kw,
    )


@pytest.fixture
def kinds():
    plain = job_kind_register(_kind("fakeplain"))
    snap = job_kind_register(
        _kind("fakesnap", routes=frozenset({"fakeroute"}), snapshot=lambda row: {"done": row.done})
    )
    yield plain, snap
    job_kind_unregister(plain.name)
    job_kind_unregister(snap.name)


@pytest.fixture
def row(db):
    camp = Campaign.objects.create(slug="c", name="C", region="t", year=2020)
    return ProductExport.objects.create(campaign=camp, kind="national_af", total=4)


def _communicator(user, kwargs: dict, **initkwargs) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(JobConsumer.as_asgi(**initkwargs), "/ws/x/")
    comm.scope["user"] = user
    comm.scope["url_route"] = {"kwargs": kwargs}
    return comm


async def _connect_once(comm: WebsocketCommunicator):
    try:
        return await comm.connect(timeout=10)
    finally:
        await comm.disconnect()


def test_admits_through_the_registry_only(kinds, row, users):
    lead, annotator = users["lead"], users["annotator"]
    got = {
        "known": _communicator(lead, {"job": f"fakeplain-{row.pk}"}),
        "not visible": _communicator(annotator, {"job": f"fakeplain-{row.pk}"}),
        "unknown kind": _communicator(lead, {"job": f"nosuchkind-{row.pk}"}),
        "missing row": _communicator(lead, {"job": f"fakeplain-{row.pk + 99}"}),
        "other route": _communicator(lead, {"job": f"fakesnap-{row.pk}"}),
        "leading zero": _communicator(lead, {"job": f"fakeplain-0{row.pk}"}),
        "bad name": _communicator(lead, {"job": "fake plain"}),
        "route kind": _communicator(
            lead, {"n": row.pk}, route="fakeroute", name="fakesnap", pk_kwarg="n"
        ),
        "route, other kind": _communicator(
            lead, {"n": row.pk}, route="fakeroute", name="fakeplain", pk_kwarg="n"
        ),
    }
    codes = {what: async_to_sync(_connect_once)(comm) for what, comm in got.items()}
    assert codes == {
        "known": (True, None),
        "not visible": (False, 4404),
        "unknown kind": (False, 4404),
        "missing row": (False, 4404),
        "other route": (False, 4404),
        "leading zero": (False, 4404),
        "bad name": (False, 4400),
        "route kind": (True, None),
        "route, other kind": (False, 4404),
    }


def test_relays_plain_events_and_snapshots(kinds, row, users):
    lead = users["lead"]

    async def scenario():
        plain = _communicator(lead, {"job": f"fakeplain-{row.pk}"})
        snap = _communicator(lead, {"n": row.pk}, route="fakeroute", name="fakesnap", pk_kwarg="n")
        try:
            assert (await plain.connect(timeout=10))[0]
            assert (await snap.connect(timeout=10))[0]
            first = await snap.receive_json_from(timeout=10)
            await ProductExport.objects.filter(pk=row.pk).aupdate(done=3)  # read afresh per event
            layer = get_channel_layer()
            event = {"type": "job.progress", "ok": 1}
            await layer.group_send(f"job.fakeplain-{row.pk}", event)
            await layer.group_send(f"job.fakesnap-{row.pk}", event)
            return (
                first,
                await plain.receive_json_from(timeout=10),
                await snap.receive_json_from(timeout=10),
            )
        finally:
            await plain.disconnect()
            await snap.disconnect()

    first, plain, snap = async_to_sync(scenario)()
    assert first == {"event": "snapshot", "done": 0}
    assert plain == {"ok": 1}
    assert snap == {"event": "progress", "ok": 1, "done": 3}
