"""Fixtures for the annotation tests: two blocks of a campaign and two imagery sources, a
``VAR_DIR`` of the test's own, and what sample imports leave behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.gis.geos import Polygon

from annotation.models import Assignment, AssignmentStatus, Sample, SamplePolygon
from mapping.models import Block, Campaign, ImagerySource
from mapping.services.members import campaign_members_add

BOUNDS = (112.5, 30.3, 112.55, 30.35)


def square(x0: float, y0: float, x1: float, y1: float) -> dict:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def nothing_written() -> bool:
    """No sample and no polygon stored: what a refused import leaves."""
    return not Sample.objects.exists() and not SamplePolygon.objects.exists()


def imports_left(settings) -> list[str]:
    """The files of previewed imports still waiting in ``VAR_DIR/imports``."""
    d = Path(settings.VAR_DIR) / "imports"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture
def own_var_dir(settings, tmp_path) -> Path:
    """Each test keeps its previews in its own directory."""
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


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
