"""Reads for the mapping app: campaigns, blocks, images, with the per-user access gate."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Max, Min, Q, QuerySet
from rest_framework.exceptions import NotFound

from croplayer_site.roles import ADMIN, LEAD, user_roles
from mapping.models import (
    Block,
    BlockImage,
    BlockImageStatus,
    Campaign,
    CampaignMember,
    FetchRun,
    ImagerySource,
)

User = AbstractBaseUser | AnonymousUser


def campaigns_visible_to(*, user: User) -> QuerySet[Campaign]:
    """The campaigns a user may see at all, and with them their blocks and everything on them.

    Nobody without a role; admins every campaign; leads only the campaigns they are members of
    (``CampaignMember``), also when they are annotators too; annotators every campaign (blocks
    are not secret; the work on them is, and ``annotation.access`` guards it). A campaign
    outside this set is answered like one that does not exist (404).
    """
    roles = user_roles(user)
    if not roles:
        return Campaign.objects.none()
    if ADMIN in roles or LEAD not in roles:
        return Campaign.objects.all()
    return Campaign.objects.filter(
        pk__in=CampaignMember.objects.filter(user=user).values("campaign_id")
    )


def campaign_list_for_user(*, user: User) -> QuerySet[Campaign]:
    """The campaigns the user sees (``campaigns_visible_to``), newest first, with block counts."""
    return (
        campaigns_visible_to(user=user).annotate(n_blocks=Count("blocks")).order_by("-year", "name")
    )


def campaign_get_for_user(*, user: User, slug: str) -> Campaign:
    """The gate for one campaign (no block count: counting 390,000 blocks took about 200 ms,
    on every tile and API call of a national campaign)."""
    try:
        return campaigns_visible_to(user=user).get(slug=slug)
    except Campaign.DoesNotExist as e:
        raise NotFound(f"no campaign {slug!r}") from e


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


def block_get_for_user(*, user: User, block_id: int) -> Block:
    """The one gate for blocks: NotFound whether the block is missing or not visible."""
    if not user_roles(user):
        raise NotFound("no such block")
    try:
        return Block.objects.select_related("campaign", "province", "county").get(
            pk=block_id, campaign__in=campaigns_visible_to(user=user)
        )
    except Block.DoesNotExist as e:
        raise NotFound("no such block") from e


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
