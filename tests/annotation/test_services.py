"""Sample write services: versions, stale writes, audit before/after, op_id idempotency."""

from __future__ import annotations

import uuid

import pytest
import shapely

from annotation.geometry import GeometryRejected
from annotation.models import (
    AuditAction,
    AuditEntry,
    ClientOperation,
    Sample,
    SampleKind,
    SamplePolygon,
)
from annotation.services import (
    OperationIdReused,
    PolygonNotFound,
    StaleVersion,
    polygon_create,
    polygon_delete,
    polygon_update,
    sample_mark_negative,
)
from tests.annotation.conftest import square
from tests.factories import current_prediction_make

pytestmark = pytest.mark.django_db

INSIDE = square(112.51, 30.31, 112.52, 30.32)


def counts():
    return (
        Sample.objects.count(),
        SamplePolygon.objects.count(),
        AuditEntry.objects.count(),
        ClientOperation.objects.count(),
        list(Sample.objects.values_list("version", flat=True)),
    )


def create(user, block, source, *, version, geometry=INSIDE, op_id=None, **kw):
    return polygon_create(
        user=user,
        block=block,
        source=source,
        geometry=geometry,
        expected_version=version,
        op_id=op_id or uuid.uuid4(),
        **kw,
    )


def test_first_polygon_creates_the_sample_and_audits(users, block, source):
    current_prediction_make(blocks=[block], sources=[source], name="m2f-r3", round_number=3)
    r = create(
        users["annotator"], block, source, version=0, subtype="paddy", model_version="m2f-r3",
        round_number=3,
    )  # fmt: skip
    assert r.version == 1 and r.kind == "positive" and not r.replayed
    sample = Sample.objects.get(block=block, source=source)
    assert sample.version == 1 and sample.kind == SampleKind.POSITIVE
    assert sample.created_by == users["annotator"]
    p = SamplePolygon.objects.get()
    assert p.subtype == "paddy" and p.created_by == users["annotator"]
    assert (p.model_version, p.round_number) == ("m2f-r3", 3)
    assert r.polygon["id"] == p.pk and r.polygon["properties"]["source"] == "mapbox"
    (entry,) = AuditEntry.objects.all()
    assert entry.action == AuditAction.POLYGON_CREATE and entry.object_id == p.pk
    assert entry.user == users["annotator"] and entry.username == "annotator"
    assert entry.before is None and entry.after == r.polygon and entry.version == 1


def test_each_write_bumps_the_version_with_before_and_after(users, block, source):
    a = create(users["annotator"], block, source, version=0)
    pid = a.polygon["id"]
    moved = square(112.53, 30.33, 112.54, 30.345)
    u = polygon_update(
        user=users["lead"],
        block=block,
        source=source,
        polygon_id=pid,
        geometry=moved,
        subtype="terraces",
        expected_version=1,
        op_id=uuid.uuid4(),
    )
    assert u.version == 2
    p = SamplePolygon.objects.get(pk=pid)
    assert p.subtype == "terraces" and p.created_by == users["annotator"]
    assert p.updated_by == users["lead"] and p.updated_at is not None
    assert shapely.equals(shapely.from_wkb(bytes(p.geometry.wkb)), shapely.geometry.shape(moved))
    entry = AuditEntry.objects.get(action=AuditAction.POLYGON_UPDATE)
    assert entry.before == a.polygon
    assert entry.after["properties"]["subtype"] == "terraces" and entry.after == u.polygon
    assert entry.before["geometry"] != entry.after["geometry"]

    d = polygon_delete(
        user=users["admin"],
        block=block,
        source=source,
        polygon_id=pid,
        expected_version=2,
        op_id=uuid.uuid4(),
    )
    assert d.version == 3 and d.polygon is None and not SamplePolygon.objects.exists()
    entry = AuditEntry.objects.get(action=AuditAction.POLYGON_DELETE)
    assert entry.before == u.polygon and entry.after is None and entry.object_id == pid
    assert Sample.objects.get().kind == SampleKind.POSITIVE  # only "mark negative" says so


def test_mark_negative_keeps_the_polygons_in_the_audit_and_drawing_undoes_it(users, block, source):
    create(users["annotator"], block, source, version=0)
    create(
        users["annotator"], block, source, version=1, geometry=square(112.52, 30.32, 112.53, 30.33)
    )
    r = sample_mark_negative(
        user=users["annotator"], block=block, source=source, expected_version=2, op_id=uuid.uuid4()
    )
    assert (r.version, r.kind) == (3, "negative")
    assert not SamplePolygon.objects.exists()
    entry = AuditEntry.objects.get(action=AuditAction.SAMPLE_MARK_NEGATIVE)
    assert entry.before["kind"] == "positive" and len(entry.before["polygons"]) == 2
    assert entry.after == {"kind": "negative", "polygons": []}
    # Drawing on a negative block makes it positive again, and the log says so.
    r = create(users["annotator"], block, source, version=3)
    assert (r.version, r.kind) == (4, "positive")
    flip = AuditEntry.objects.get(action=AuditAction.SAMPLE_MARK_POSITIVE)
    assert (flip.before, flip.after) == ({"kind": "negative"}, {"kind": "positive"})


def test_negative_on_a_block_without_sample(users, block, source):
    r = sample_mark_negative(
        user=users["lead"], block=block, source=source, expected_version=0, op_id=uuid.uuid4()
    )
    assert (r.version, r.kind) == (1, "negative")
    assert AuditEntry.objects.get().before == {"kind": None, "polygons": []}


def test_stale_write_raises_with_current_state_and_writes_nothing(users, block, source):
    first = create(users["annotator"], block, source, version=0)
    before = counts()
    with pytest.raises(StaleVersion) as e:
        create(users["lead"], block, source, version=0)  # the lead also read version 0
    assert e.value.current_version == 1 and e.value.polygons == [first.polygon]
    with pytest.raises(StaleVersion):
        create(users["lead"], block, source, version=7)
    with pytest.raises(StaleVersion):
        polygon_delete(
            user=users["lead"],
            block=block,
            source=source,
            polygon_id=first.polygon["id"],
            expected_version=0,
            op_id=uuid.uuid4(),
        )
    assert counts() == before


def test_sample_written_by_the_demo_starts_at_version_1(users, block, source):
    Sample.objects.create(block=block, source=source, kind=SampleKind.POSITIVE)
    with pytest.raises(StaleVersion) as e:
        create(users["annotator"], block, source, version=0)
    assert e.value.current_version == 1
    assert create(users["annotator"], block, source, version=1).version == 2


def test_retried_operation_returns_the_first_result_without_writing(users, block, source):
    op = uuid.uuid4()
    first = create(users["annotator"], block, source, version=0, op_id=op)
    after_first = counts()
    # The browser retries with the same body and the If-Match it had: stale now, but a replay.
    again = create(users["annotator"], block, source, version=0, op_id=op)
    assert again.replayed and again.as_json() == first.as_json()
    assert counts() == after_first
    # Also after later writes by others.
    create(users["lead"], block, source, version=1)
    assert create(users["annotator"], block, source, version=0, op_id=op).version == 1
    assert SamplePolygon.objects.count() == 2


def test_reused_operation_id_is_refused(users, block, source):
    op = uuid.uuid4()
    create(users["annotator"], block, source, version=0, op_id=op)
    before = counts()
    with pytest.raises(OperationIdReused):  # same id, different drawing
        create(users["annotator"], block, source, version=1, op_id=op, subtype="paddy")
    with pytest.raises(OperationIdReused):  # same id and body, another user
        create(users["lead"], block, source, version=0, op_id=op)
    with pytest.raises(OperationIdReused):  # same id, another operation
        sample_mark_negative(
            user=users["annotator"], block=block, source=source, expected_version=1, op_id=op
        )
    assert counts() == before


@pytest.mark.parametrize(
    "geometry",
    [
        square(112.51, 30.31, float("nan"), 30.32),
        {
            "type": "Polygon",
            "coordinates": [
                [
                    [112.51, 30.31],
                    [112.52, 30.32],
                    [112.52, 30.31],
                    [112.51, 30.32],
                    [112.51, 30.31],
                ]
            ],
        },  # fmt: skip
        square(112.6, 30.4, 112.7, 30.5),
        {"type": "Point", "coordinates": [112.51, 30.31]},
    ],
)
def test_rejected_geometry_writes_nothing(users, block, source, geometry):
    create(users["annotator"], block, source, version=0)
    before = counts()
    with pytest.raises(GeometryRejected):
        create(users["annotator"], block, source, version=1, geometry=geometry)
    with pytest.raises(GeometryRejected):
        polygon_update(
            user=users["annotator"],
            block=block,
            source=source,
            polygon_id=SamplePolygon.objects.get().pk,
            geometry=geometry,
            expected_version=1,
            op_id=uuid.uuid4(),
        )
    assert counts() == before


def test_polygon_of_another_block_or_source_is_not_found(users, blocks, sources):
    east = square(112.56, 30.31, 112.57, 30.32)
    other = create(users["annotator"], blocks[1], sources["mapbox"], version=0, geometry=east)
    create(users["annotator"], blocks[0], sources["google"], version=0)
    before = counts()
    for block, source in ((blocks[0], sources["mapbox"]), (blocks[1], sources["google"])):
        with pytest.raises(PolygonNotFound):
            polygon_delete(
                user=users["annotator"],
                block=block,
                source=source,
                polygon_id=other.polygon["id"],
                expected_version=0,  # neither has a sample yet
                op_id=uuid.uuid4(),
            )
    assert counts() == before


def test_stored_geometry_is_clipped_valid_and_inside_the_block(users, block, source):
    r = create(
        users["annotator"], block, source, version=0, geometry=square(112.54, 30.34, 113, 31)
    )
    stored = SamplePolygon.objects.get().geometry
    assert stored.valid and block.geometry.covers(stored)
    assert stored.extent == pytest.approx((112.54, 30.34, 112.55, 30.35))
    assert r.polygon["geometry"]["coordinates"][0][0] in ([112.54, 30.34], [112.55, 30.34])


@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_on_one_version_let_exactly_one_through(users, block, source):
    """Two people save against the same version at the same moment: one wins, one gets stale."""
    import threading

    from django.db import connection

    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers with a file lock; the race needs PostGIS")
    create(users["annotator"], block, source, version=0)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def save(user):
        try:
            barrier.wait(timeout=10)
            create(user, block, source, version=1)
            outcomes.append("ok")
        except StaleVersion as e:
            outcomes.append(f"stale at {e.current_version}")
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(users[n],)) for n in ("annotator", "lead")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["ok", "stale at 2"]
    assert Sample.objects.get().version == 2 and SamplePolygon.objects.count() == 2
