"""Fixtures for the annotation tests: two blocks of a campaign and two imagery sources."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import Polygon

from annotation.models import Assignment, AssignmentStatus
from mapping.models import Block, Campaign, ImagerySource
from mapping.services.members import campaign_members_add

BOUNDS = (112.5, 30.3, 112.55, 30.35)


def square(x0: float, y0: float, x1: float, y1: float) -> dict:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The four users of ``users`` are made in every test; the default hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def blocks(db, users):
    """The block under test (``blocks[0]``, BOUNDS) and its eastern neighbour, both assigned to
    the annotator and in progress (annotators write only on blocks assigned to them); the lead
    is a member of the campaign."""
    c = Campaign.objects.create(slug="demo", name="Demo", region="Hubei", year=2020)
    campaign_members_add(campaign=c, users=[users["lead"]])
    made = [
        Block.objects.create(
            campaign=c,
            row=2386 + 0,
            col=5850 + i,
            geometry=Polygon.from_bbox((112.5 + 0.05 * i, 30.3, 112.55 + 0.05 * i, 30.35)),
        )
        for i in range(2)
    ]
    for b in made:
        Assignment.objects.create(
            block=b, user=users["annotator"], status=AssignmentStatus.IN_PROGRESS, priority=1
        )
    return made


@pytest.fixture
def block(blocks):
    return blocks[0]


@pytest.fixture
def sources(db):
    return {
        slug: ImagerySource.objects.create(slug=slug, name=slug, kind="synthetic")
        for slug in ("mapbox", "google")
    }


@pytest.fixture
def source(sources):
    return sources["mapbox"]


@pytest.fixture
def queue(db, users, blocks):
    """A second campaign, "queue" (the lead a member): six blocks nobody is assigned to, seed
    order 6..1 from west to east (so the seed order, not the id, decides), the last one without
    a seed order."""
    c = Campaign.objects.create(slug="queue", name="Queue", region="Hubei", year=2020)
    campaign_members_add(campaign=c, users=[users["lead"]])
    out = []
    for i in range(6):
        x = 112.6 + 0.05 * i
        out.append(
            Block.objects.create(
                campaign=c,
                row=2390,
                col=5850 + i,
                geometry=Polygon.from_bbox((x, 30.3, x + 0.05, 30.35)),
                seed_order=None if i == 5 else 5 - i,
            )
        )
    return out
