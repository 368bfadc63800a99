"""Reads for the mapping app: blocks, images, fetch runs (the gates are in ``mapping.access``)."""

from __future__ import annotations

from django.db.models import Count, Max, Min, Q, QuerySet
from rest_framework.exceptions import NotFound

from mapping.models import (
    Block,
    BlockImage,
    BlockImageStatus,
    Campaign,
    FetchRun,
    ImagerySource,
)


def campaign_block_extent(*, campaign: Campaign) -> list[float] | None:
    """[west, south, east, north] of the campaign's blocks, from the grid's rows and columns
    (min/max over the block index, no geometry read); None without blocks."""
    agg = Block.objects.filter(campaign=campaign).aggregate(
        r0=Min("row"), r1=Max("row"), c0=Min("col"), c1=Max("col")
    )
    if agg["r0"] is None:
        return None
    n = round(1 / float(campaign.block_size_deg))
    return [
        (agg["c0"] - 180 * n) / n,
        (agg["r0"] - 90 * n) / n,
        (agg["c1"] + 1 - 180 * n) / n,
        (agg["r1"] + 1 - 90 * n) / n,
    ]


def block_image_get(*, block: Block, source_slug: str) -> BlockImage:
    try:
        return BlockImage.objects.select_related("source").get(
            block=block, source__slug=source_slug, status=BlockImageStatus.OK
        )
    except BlockImage.DoesNotExist as e:
        raise NotFound(f"block {block.code} has no {source_slug!r} image") from e


def blocks_for_fetch(
    *, campaign: Campaign, source: ImagerySource, province_adcodes: list[int] | None
) -> QuerySet[Block]:
    """Blocks of the campaign (and provinces) that have no finished image of the source."""
    qs = Block.objects.filter(campaign=campaign)
    if province_adcodes:
        qs = qs.filter(province__adcode__in=province_adcodes)
    done = BlockImage.objects.filter(source=source, status=BlockImageStatus.OK).values("block_id")
    return qs.exclude(pk__in=done)


def fetch_run_counts(*, run: FetchRun) -> dict[str, int]:
    images = BlockImage.objects.filter(source=run.source, block__campaign=run.campaign)
    if run.provinces:
        images = images.filter(block__province__adcode__in=run.provinces)
    agg = images.aggregate(
        ok=Count("id", filter=Q(status=BlockImageStatus.OK)),
        missing=Count("id", filter=Q(status=BlockImageStatus.MISSING)),
        failed=Count("id", filter=Q(status=BlockImageStatus.FAILED)),
        pending=Count("id", filter=Q(status=BlockImageStatus.PENDING)),
    )
    return {k: int(v) for k, v in agg.items()}
