"""POST /api/blocks/<id>/samples/<source>/polygons/ with hostile JSON: deep nesting, NaN,
bodies over the limit. 4xx JSON with the reason, nothing written."""

from __future__ import annotations

import json

import pytest

from annotation.models import (
    Assignment,
    AssignmentStatus,
    AuditEntry,
    ClientOperation,
    SamplePolygon,
)
from mapping.models import Block, ImagerySource
from tests.hostile.hostile_files import nested_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(users, campaign, login):
    block = Block.objects.get(campaign=campaign)
    ImagerySource.objects.create(slug="mapbox", name="mapbox", kind="synthetic")
    Assignment.objects.create(block=block, user=users["annotator"],
                              status=AssignmentStatus.IN_PROGRESS, priority=1)
    c = login("annotator")
    url = f"/api/blocks/{block.pk}/samples/mapbox/polygons/"

    def send(body: str, content_type: str = "application/json"):
        return c.generic("POST", url, body.encode(), content_type=content_type,
                         headers={"If-Match": '"0"', "Accept": "application/json"})
    return send


def _stored() -> tuple[int, int, int]:
    return (SamplePolygon.objects.count(), AuditEntry.objects.count(),
            ClientOperation.objects.count())


@pytest.mark.parametrize("depth", [900, 5_000, 100_000])
def test_deeply_nested_coordinates_are_400(depth, post):
    before = _stored()
    r = post(nested_json(depth))
    assert r.status_code == 400, r.content[:300]
    # Past the parser's depth the body is refused as such; below it the geometry rules speak.
    assert "nested" in r.json().get("detail", "") or "geometry" in r.json(), r.content[:300]
    assert _stored() == before


def test_nan_coordinates_are_named(post):
    ring = [[119.01, 32.01], [float("nan"), 32.01], [119.02, 32.02], [119.01, 32.01]]
    body = json.dumps({"op_id": "00000000-0000-4000-8000-000000000002", "subtype": "paddy",
                       "geometry": {"type": "Polygon", "coordinates": [ring]}})
    before = _stored()
    r = post(body)
    assert 400 <= r.status_code < 500, r.content
    text = r.content.decode()
    assert "LinearRing not closed" not in text and "Traceback" not in text
    assert _stored() == before


def test_a_form_body_over_the_limit_is_json_413(post, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = _stored()
    r = post("a=" + "x" * 5000, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413, r.content[:300]
    assert r["Content-Type"].startswith("application/json")
    assert "too large" in r.json()["detail"]
    assert _stored() == before


def test_a_json_body_over_the_limit_is_json_413(post, settings):
    """DRF reads JSON from the stream, past Django's limit: the body is refused unread."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    ring = [[119.01 + i * 1e-6, 32.01 + (i % 2) * 1e-3] for i in range(400)]
    ring.append(ring[0])
    body = json.dumps({"op_id": "00000000-0000-4000-8000-000000000003",
                       "geometry": {"type": "Polygon", "coordinates": [ring]}})
    before = _stored()
    r = post(body)
    assert r.status_code == 413, r.content[:300]
    assert r["Content-Type"].startswith("application/json")
    assert "too large" in r.json()["detail"]
    assert _stored() == before
