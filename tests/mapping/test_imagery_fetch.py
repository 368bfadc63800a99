"""imagery_fetch end to end: command -> Celery worker process -> local tile server -> GeoTIFFs."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import rasterio
from django.conf import settings
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.management import CommandError, call_command

from mapping.geo.grid import BlockId, Grid, block_raster, tile_range
from mapping.models import AdminLevel, AdminUnit, Block, BlockImage, Campaign, ImagerySource
from mapping.services.grid import grid_build
from tests.mapping.tileserver import TileServer, real_imagery_tiles

ZOOM = 14


@pytest.fixture
def fetch_setup(transactional_db, shared_data, tmp_path):
    p = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE,
        adcode=320000,
        name_zh="江苏省",
        name_en="Jiangsu",
        geometry=MultiPolygon(Polygon.from_bbox((118.70, 32.00, 118.80, 32.10)), srid=4326),
    )
    camp = Campaign.objects.create(slug="fetch", name="f", region="r", year=2020, zoom=ZOOM)
    camp.provinces.add(p)
    grid_build(campaign=camp)
    blocks = list(Block.objects.filter(campaign=camp).order_by("row", "col"))
    assert len(blocks) == 4
    rng = tile_range((118.70, 32.00, 118.80, 32.10), ZOOM)
    tiles = real_imagery_tiles(
        shared_data / "real",
        x0=rng.x_min,
        y0=rng.y_min,
        nx=rng.x_max - rng.x_min + 1,
        ny=rng.y_max - rng.y_min + 1,
        zoom=ZOOM,
    )
    with TileServer(tiles) as server:
        source = ImagerySource.objects.create(
            slug="localxyz",
            name="local",
            kind="xyz",
            config={
                "url_template": server.template(),
                "zoom": ZOOM,
                "allow_loopback_http": True,
                "allowed_hosts": ["127.0.0.1"],
                "timeout_s": 2,
                "retries": 1,
                "backoff_s": 0.01,
                "cache_dir": str(tmp_path / "tile-cache"),
            },
        )
        yield camp, blocks, source, server


def _tiles_of(block: Block) -> list[tuple[int, int]]:
    g = Grid(0.05)
    return tile_range(g.bounds(BlockId(block.row, block.col)), ZOOM).tiles()


def test_fetch_through_worker_records_ok_missing_failed_and_resumes(
    fetch_setup, celery_worker_proc
):
    camp, blocks, source, server = fetch_setup
    # block 0: every tile absent -> missing; block 1: the server answers HTML -> failed.
    only = {t for t in _tiles_of(blocks[0])} - set().union(*(_tiles_of(b) for b in blocks[1:]))
    for x, y in only:
        server.modes[(ZOOM, x, y)] = "404"
    html = {t for t in _tiles_of(blocks[1])} - set().union(
        *(_tiles_of(b) for b in (blocks[0], blocks[2], blocks[3]))
    )
    for x, y in html:
        server.modes[(ZOOM, x, y)] = "html"
    out = StringIO()
    call_command(
        "imagery_fetch",
        "--campaign",
        "fetch",
        "--source",
        "localxyz",
        "--json",
        "--timeout",
        "180",
        stdout=out,
    )
    summary = json.loads(out.getvalue())[0]
    assert summary["total"] == 4 and summary["pending"] == 0
    images = {i.block_id: i for i in BlockImage.objects.filter(source=source)}
    statuses = [images[b.pk].status for b in blocks]
    assert statuses.count("ok") >= 2
    assert images[blocks[1].pk].status == "failed"
    assert "content type" in images[blocks[1].pk].reason.lower()
    assert any("failed" in k for k in summary["failures_by_reason"])

    ok = [i for i in images.values() if i.status == "ok"]
    for image in ok:
        path = Path(settings.DATA_DIR) / image.path
        with rasterio.open(path) as ds:
            block = Block.objects.get(pk=image.block_id)
            raster = block_raster(block.geometry.extent, ZOOM)
            assert ds.crs.to_epsg() == 4326 and (ds.width, ds.height) == (
                raster.width,
                raster.height,
            )
            assert ds.bounds.left == pytest.approx(raster.west) and ds.bounds.top == pytest.approx(
                raster.north
            )
            rgb = ds.read()
            assert rgb.shape[0] == 3 and rgb.std() > 10  # real imagery, not a flat fill
        assert len(image.checksum) == 64 and image.fetched_at is not None

    # Resume: a second run fetches nothing already done (only the failed block is retried).
    server.modes.clear()
    before = dict(server.requests)
    out = StringIO()
    call_command(
        "imagery_fetch",
        "--campaign",
        "fetch",
        "--source",
        "localxyz",
        "--json",
        "--timeout",
        "180",
        stdout=out,
    )
    again = json.loads(out.getvalue())[0]
    assert again["total"] == 1  # only the failed one (missing stays missing)
    assert BlockImage.objects.get(block=blocks[1], source=source).status == "ok"
    # tiles of finished blocks came from the worker's cache or were not asked for again
    ok_only = set(_tiles_of(blocks[3])) - set(_tiles_of(blocks[1]))
    assert all(
        server.requests.get(f"/tiles/{ZOOM}/{x}/{y}.png", 0)
        == before.get(f"/tiles/{ZOOM}/{x}/{y}.png", 0)
        for x, y in ok_only
    )


def test_fetch_without_worker_times_out_with_a_clear_message(fetch_setup):
    with pytest.raises(CommandError, match="is a Celery worker running"):
        call_command(
            "imagery_fetch", "--campaign", "fetch", "--source", "localxyz", "--timeout", "2"
        )


def test_bad_source_config_is_refused_before_queueing(fetch_setup):
    camp, blocks, source, server = fetch_setup
    source.config = {**source.config, "url_template": "http://evil.example.com/{z}/{x}/{y}.png"}
    source.save()
    with pytest.raises(CommandError, match="localxyz"):
        call_command("imagery_fetch", "--campaign", "fetch", "--source", "localxyz")
    assert not BlockImage.objects.filter(source=source).exists()
    assert np is not None
