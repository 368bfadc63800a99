"""The overview legend's numbers: served by their own endpoint (with the tiles' validator), so
the overview page itself never counts the newest verdict per block and source (seconds for a
national campaign)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import VerdictLabel
from annotation.services import verdict_label_set
from mapping.models import ImagerySource
from tests.annotation.conftest import ROLES

pytestmark = pytest.mark.django_db

URL = "/api/campaigns/map/overview-counts/"


def test_a_lead_gets_the_whole_campaigns_numbers(users, field, login):
    r = login("lead").get(URL)
    assert r.status_code == 200, r.content
    assert r.json() == {
        "total": 20,
        "statuses": {"unassigned": 15, "todo": 2, "in_progress": 1, "submitted": 1, "accepted": 1},
        # the newest verdict wins: block 1 on mapbox was fp, then tp
        "verdicts": {
            "mapbox": {"tp": 1, "artifact": 1, "none": 18},
            "google": {"noise": 1, "none": 19},
        },
        "provinces": {"420000": 12, "430000": 8},
    }


def test_an_annotator_gets_only_their_blocks_and_verdicts(users, field, login):
    r = login("annotator").get(URL)
    assert r.status_code == 200, r.content
    assert r.json() == {
        "total": 4,
        "statuses": {"unassigned": 0, "todo": 1, "in_progress": 1, "submitted": 1, "accepted": 1},
        # their own fp on block 1, not the lead's newer tp
        "verdicts": {"mapbox": {"fp": 1, "none": 3}, "google": {"noise": 1, "none": 3}},
        "provinces": {"420000": 3, "430000": 1},
    }


@pytest.mark.parametrize("role", ROLES)
def test_who_may_get_the_numbers(users, field, role, login):
    r = login(role).get(URL)
    assert r.status_code == {"anonymous": 403, "outsider": 404}.get(role, 200)


def test_unknown_campaign_is_404(users, field, login):
    assert login("lead").get("/api/campaigns/nope/overview-counts/").status_code == 404


def test_validators_304_until_a_verdict_changes_the_numbers(users, field, login):
    _, blocks = field
    c = login("lead")
    first = c.get(URL)
    etag = first["ETag"]
    assert c.get(URL, HTTP_IF_NONE_MATCH=etag).status_code == 304
    verdict_label_set(
        user=users["lead"],
        block=blocks[7],
        source=ImagerySource.objects.get(slug="google"),
        verdict="tp",
    )
    again = c.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 200 and again["ETag"] != etag
    assert again.json()["verdicts"]["google"] == {"noise": 1, "tp": 1, "none": 18}


def test_the_overview_page_does_not_count_verdicts(users, field, login):
    """The page renders without the legend's national verdict count (the slowest query of a
    national campaign's page): it only links the endpoint that serves the numbers."""
    table = VerdictLabel._meta.db_table
    for role in ("lead", "annotator"):
        c = login(role)
        with CaptureQueriesContext(connection) as queries:
            r = c.get("/campaigns/map/")
        assert r.status_code == 200
        assert [q["sql"] for q in queries if table in q["sql"]] == []
        html = r.content.decode()
        assert f'"counts_url": "{URL}"' in html
        assert "20 blocks" in html  # the header still gives the campaign's size
