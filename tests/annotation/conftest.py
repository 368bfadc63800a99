"""Fixtures for the annotation tests: two blocks of a campaign and two imagery sources, the
overview's 4 x 5 block campaign, a ``VAR_DIR`` of the test's own, and what sample imports leave
behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.gis.geos import Polygon

from annotation.models import Assignment, AssignmentStatus, Sample, SamplePolygon
from annotation.services import assignment_create, verdict_label_set
from mapping.geo.grid import BlockId, grid_for
from mapping.models import Block, Campaign, ImagerySource
from mapping.services.members import campaign_members_add
from tests.factories import current_prediction_make, province_make, user_make

BOUNDS = (112.5, 30.3, 112.55, 30.35)
ROLES = ["annotator", "lead", "admin", "outsider", "anonymous"]  # who asks, in every API test


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


@pytest.fixture
def field(users):
    """Campaign "map": 4 x 5 blocks on the real grid (rows and columns match the geometry), the
    west half in Hubei, the east half in Hunan; seed order row by row. The annotator has blocks
    0-3 (0 to do, 1 in progress, 2 submitted, 3 accepted), bob block 4 and block 0 as second."""
    grid = grid_for(0.05)
    hubei = province_make(420000, "湖北省", (112.0, 30.0, 112.25, 30.2), name_en="Hubei")
    hunan = province_make(430000, "湖南省", (112.25, 30.0, 112.5, 30.2), name_en="Hunan")
    c = Campaign.objects.create(slug="map", name="Map", region="Hubei", year=2020)
    campaign_members_add(campaign=c, users=[users["lead"]])
    first = grid.block_at(112.01, 30.01)
    blocks = []
    for r in range(4):
        for k in range(5):
            bid = BlockId(row=first.row + r, col=first.col + k)
            blocks.append(
                Block.objects.create(
                    campaign=c,
                    row=bid.row,
                    col=bid.col,
                    geometry=Polygon.from_bbox(grid.bounds(bid)),
                    province=hubei if k < 3 else hunan,
                    seed_order=r * 5 + k,
                )
            )
    bob = user_make("bob", role="annotator")
    lead = users["lead"]
    assignment_create(
        lead=lead, campaign=c, block_ids=[b.pk for b in blocks[:4]], assignees=[users["annotator"]]
    )
    assignment_create(
        lead=lead, campaign=c, block_ids=[blocks[4].pk, blocks[0].pk], assignees=[bob]
    )
    for i, status in ((1, "in_progress"), (2, "submitted"), (3, "accepted")):
        Assignment.objects.filter(block=blocks[i]).update(status=status)
    mapbox = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    google = ImagerySource.objects.create(slug="google", name="Google", kind="synthetic")
    current_prediction_make(blocks=blocks, sources=[mapbox, google])  # what verdicts judge
    verdict_label_set(user=users["annotator"], block=blocks[1], source=mapbox, verdict="fp")
    verdict_label_set(user=users["lead"], block=blocks[1], source=mapbox, verdict="tp")  # newer
    verdict_label_set(user=users["annotator"], block=blocks[2], source=google, verdict="noise")
    verdict_label_set(user=bob, block=blocks[4], source=mapbox, verdict="artifact")
    return c, blocks
