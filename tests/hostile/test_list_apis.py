"""GET /api/assignments/ and /api/blocks/<id>/audit/ with limits and offsets no database
column holds: clamped or 400 with the reason, never 500."""

from __future__ import annotations

import pytest

from annotation.models import Assignment, AssignmentStatus
from croplayer_site.pagination import MAX_LIMIT, MAX_OFFSET
from mapping.models import Block

pytestmark = pytest.mark.django_db

HUGE = "9223372036854775808"  # 2^63: one more than SQLite's and PostgreSQL's bigint


@pytest.fixture
def lead(users, campaign, login):
    block = Block.objects.get(campaign=campaign)
    Assignment.objects.create(block=block, user=users["annotator"],
                              status=AssignmentStatus.IN_PROGRESS, priority=1)
    c = login("lead")
    return c, block


def _urls(block) -> list[str]:
    return ["/api/assignments/", f"/api/blocks/{block.pk}/audit/"]


@pytest.mark.parametrize("limit", [HUGE, "99999999999999999999999999", str(MAX_LIMIT + 1)])
def test_a_huge_limit_is_clamped(limit, lead):
    c, block = lead
    for url in _urls(block):
        r = c.get(url, {"limit": limit})
        assert r.status_code == 200, (url, r.content)
        body = r.json()
        assert "results" in body and len(body["results"]) <= MAX_LIMIT


@pytest.mark.parametrize("offset", [HUGE, str(MAX_OFFSET + 1)])
def test_a_huge_offset_is_refused(offset, lead):
    c, block = lead
    for url in _urls(block):
        r = c.get(url, {"limit": "10", "offset": offset})
        assert r.status_code == 400, (url, r.content)
        assert "offset" in r.json(), r.content


def test_ordinary_paging_still_works(lead):
    c, block = lead
    r = c.get("/api/assignments/", {"limit": "1", "offset": "0"})
    assert r.status_code == 200 and r.json()["count"] == 1
    assert len(r.json()["results"]) == 1


def test_schema_documents_the_maximum(lead):
    c, _ = lead
    r = c.get("/api/schema/", {"format": "json"})
    params = r.json()["paths"]["/api/assignments/"]["get"]["parameters"]
    limit = next(p for p in params if p["name"] == "limit")
    assert limit["schema"].get("maximum") == MAX_LIMIT
