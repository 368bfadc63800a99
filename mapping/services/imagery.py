"""Imagery: validate source configs, start fetch runs, fetch block images (in workers)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from croplayer_site.jobs import job_broadcast, job_event
from mapping.geo.grid import BlockId, block_raster
from mapping.jobs import FETCH
from mapping.models import (
    Block,
    BlockImage,
    BlockImageStatus,
    Campaign,
    FetchRun,
    ImagerySource,
    JobStatus,
)
from mapping.selectors import blocks_for_fetch, fetch_run_counts

log = logging.getLogger(__name__)
BATCH_SIZE = 8


class ImageryConfigError(Exception):
    pass


def _effective_config(*, kind: str, slug: str, config: dict[str, Any]) -> dict[str, Any]:
    """The stored config plus what the deployment decides (slug, tile cache folder)."""
    if not isinstance(config, dict):
        raise ImageryConfigError("config must be a JSON object")
    data = {**config, "slug": slug}
    if kind == "xyz":
        if data.get("allow_loopback_http") and not settings.IMAGERY_ALLOW_LOOPBACK_HTTP:
            raise ImageryConfigError("allow_loopback_http is disabled on this deployment")
        data.setdefault("cache_dir", str(settings.IMAGERY_TILE_CACHE_DIR))
    return data


def imagery_source_validate(
    *, kind: str, config: dict[str, Any], slug: str = "source"
) -> dict[str, Any]:
    """Return ``config`` if the source kind accepts it, else ImageryConfigError with the reason."""
    from mapping.imagery.registry import config_error_text, parse_source_config

    data = _effective_config(kind=kind, slug=slug or "source", config=config)
    try:
        parse_source_config(kind, data, allowed_hosts=settings.IMAGERY_ALLOWED_HOSTS)
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise ImageryConfigError(config_error_text(e)) from e
    return config


_sources: dict[tuple[int, str], Any] = {}
_sources_lock = threading.Lock()


def _source_for(source: ImagerySource) -> Any:
    """One built source per process and config, so pools, caches and limits are shared."""
    from mapping.imagery.registry import build_source

    key = (source.pk, repr(sorted(source.config.items())))
    with _sources_lock:
        built = _sources.get(key)
        if built is None:
            data = _effective_config(kind=source.kind, slug=source.slug, config=source.config)
            built = build_source(
                source.kind, data, secrets=os.environ, allowed_hosts=settings.IMAGERY_ALLOWED_HOSTS
            )
            _sources[key] = built
        return built


def block_image_relpath(block: Block, source: ImagerySource) -> Path:
    return Path("imagery") / block.campaign.slug / source.slug / f"{block.code}.tif"


@dataclass
class FetchStart:
    run: FetchRun
    batches: list[list[int]]


def fetch_run_start(
    *,
    campaign: Campaign,
    source: ImagerySource,
    province_adcodes: list[int] | None,
    limit: int | None = None,
    retry_failed: bool = True,
) -> FetchStart:
    """Create the run and a pending image row for every block still to fetch.

    Resumable: blocks with a finished image are skipped; missing ones are skipped unless
    ``retry_failed`` (failed ones are always retried when asked).
    """
    if not source.enabled:
        raise ImageryConfigError(f"source {source.slug} is disabled")
    imagery_source_validate(kind=source.kind, config=source.config, slug=source.slug)
    blocks = blocks_for_fetch(campaign=campaign, source=source, province_adcodes=province_adcodes)
    if not retry_failed:
        blocks = blocks.exclude(images__source=source, images__status=BlockImageStatus.FAILED)
    blocks = blocks.exclude(images__source=source, images__status=BlockImageStatus.MISSING)
    block_ids = list(blocks.order_by("row", "col").values_list("pk", flat=True)[:limit])
    with transaction.atomic():
        run = FetchRun.objects.create(
            campaign=campaign,
            source=source,
            provinces=province_adcodes or [],
            total=len(block_ids),
            status=JobStatus.QUEUED if block_ids else JobStatus.DONE,
        )
        have = set(
            BlockImage.objects.filter(source=source, block_id__in=block_ids).values_list(
                "block_id", flat=True
            )
        )
        BlockImage.objects.bulk_create(
            [BlockImage(block_id=b, source=source) for b in block_ids if b not in have],
            batch_size=2000,
        )
        BlockImage.objects.filter(source=source, block_id__in=block_ids).update(
            status=BlockImageStatus.PENDING, reason=""
        )
    batches = [block_ids[i : i + BATCH_SIZE] for i in range(0, len(block_ids), BATCH_SIZE)]
    return FetchStart(run=run, batches=batches)


def block_image_fetch(*, block: Block, source: ImagerySource) -> BlockImage:
    """Fetch one block image now (in a worker) and record the outcome on its row."""
    image, _ = BlockImage.objects.get_or_create(block=block, source=source)
    rel = block_image_relpath(block, source)
    dest = Path(settings.DATA_DIR) / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    built = _source_for(source)
    raster = block_raster(block.geometry.extent, block.campaign.zoom)
    try:
        result = built.fetch_block(BlockId(block.row, block.col), raster, dest)
    except Exception as e:  # a bug must not leave the row pending forever
        log.exception("fetch of %s from %s crashed", block.code, source.slug)
        image.status, image.reason = BlockImageStatus.FAILED, f"internal error: {type(e).__name__}"
    else:
        image.status = result.status
        image.reason = result.reason[:2000]
        if result.status == "ok":
            image.path = str(rel)
            image.checksum = result.sha256 or ""
            image.width, image.height = result.width, result.height
            image.fetched_at = timezone.now()
    image.attempts += 1
    image.quality = {}  # statistics of the image this row held before
    image.save()
    return image


def fetch_batch_run(*, run_id: int, block_ids: list[int]) -> dict[str, int]:
    """Worker side of a run: fetch a batch, skip what is done, then report progress."""
    run = FetchRun.objects.select_related("source", "campaign").get(pk=run_id)
    if run.status in (JobStatus.CANCELLED, JobStatus.FAILED):
        return {"skipped": len(block_ids)}
    FetchRun.objects.filter(pk=run_id, status=JobStatus.QUEUED).update(status=JobStatus.RUNNING)
    done = 0
    for block in Block.objects.filter(pk__in=block_ids).select_related("campaign"):
        # Idempotent: a batch delivered twice does not fetch again.
        if BlockImage.objects.filter(
            block=block, source=run.source, status=BlockImageStatus.OK
        ).exists():
            continue
        block_image_fetch(block=block, source=run.source)
        done += 1
    FetchRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())
    fetch_run_progress(run=run)
    return {"fetched": done}


def fetch_run_progress(*, run: FetchRun) -> dict[str, Any]:
    """Count the run's images, close it when nothing is pending, and broadcast progress."""
    counts = fetch_run_counts(run=run)
    if counts["pending"] == 0:
        FetchRun.objects.filter(pk=run.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            status=JobStatus.DONE, finished_at=timezone.now()
        )
    run.refresh_from_db(fields=["status"])
    event = job_event(kind=FETCH, row=run, extra={"total": run.total, **counts})
    return job_broadcast(kind=FETCH, row=run, event=event)
