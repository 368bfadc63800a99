"""Assigning many blocks at once (the lead's "Assign blocks" page): which blocks, shared out
among several people, an optional agreement share for a second person, and self-assignment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import Assignment, CampaignWorkflow
from annotation.services.workflow import (
    _unassigned_blocks,
    agreement_blocks_choose,
    assignment_create,
)
from mapping.models import Campaign

MAX_BLOCKS = 10_000  # as the assignment API


@dataclass
class BlocksAssigned:
    created: list[Assignment] = field(default_factory=list)
    skipped: int = 0  # pairs that already had an active assignment
    agreement: list[Assignment] = field(default_factory=list)  # the second person's share


def blocks_unassigned_choose(
    *, campaign: Campaign, count: int, province_adcode: int | None = None
) -> list[int]:
    """The first ``count`` blocks nobody was ever given, in the order annotators would claim
    them (latest round's selection, the systematic sample, then the seed order), optionally of
    one province."""
    qs = _unassigned_blocks(campaign=campaign)
    if province_adcode is not None:
        qs = qs.filter(province__adcode=province_adcode)
    # Whole rows, not values_list("pk"): that would inline the annotations into ORDER BY, and
    # PostgreSQL refuses "ORDER BY NULL" (the rank before the first round's selection).
    return [b.pk for b in qs.only("pk")[: min(count, MAX_BLOCKS)]]


def blocks_share_out(
    *,
    lead: AbstractBaseUser,
    campaign: Campaign,
    block_ids: Sequence[int],
    assignees: Sequence[AbstractBaseUser],
    priority: int | None = None,
    second: AbstractBaseUser | None = None,
    second_percent: float | None = None,
) -> BlocksAssigned:
    """Share ``block_ids`` out in turn among ``assignees`` (the first block to the first person,
    the second to the second, ...), so that each gets a part of the same queue; then, if
    ``second`` is given, ``second_percent`` of each person's new blocks (spread over their
    queue) also go to ``second`` for blind double annotation. All or nothing."""
    people = list({u.pk: u for u in assignees}.values())
    if not people:
        raise ValueError("choose at least one person")
    if not block_ids:
        raise ValueError("no block to assign")
    if len(block_ids) > MAX_BLOCKS:
        raise ValueError(f"at most {MAX_BLOCKS} blocks at once; got {len(block_ids)}")
    if second is not None:
        if second.pk in {u.pk for u in people}:
            raise ValueError(
                f"{second.get_username()} cannot be both an annotator and the second annotator"
            )
        if second_percent is None:
            raise ValueError("give the share of blocks for the second annotator")
    ordered = list(dict.fromkeys(block_ids))
    out = BlocksAssigned()
    with transaction.atomic():
        for i, person in enumerate(people):
            share = ordered[i :: len(people)]
            if not share:
                continue
            created, skipped = assignment_create(
                lead=lead, campaign=campaign, block_ids=share, assignees=[person], priority=priority
            )
            out.created += created
            out.skipped += skipped
            if second is None or not created:
                continue
            new = {a.block_id for a in created}
            chosen = agreement_blocks_choose(
                block_ids=[b for b in share if b in new], percent=float(second_percent or 0)
            )
            extra, skipped = assignment_create(
                lead=lead,
                campaign=campaign,
                block_ids=chosen,
                assignees=[second],
                priority=priority,
            )
            out.agreement += extra
            out.skipped += skipped
    return out


def campaign_self_assign_set(*, campaign: Campaign, allowed: bool) -> CampaignWorkflow:
    """Let annotators claim the next unassigned block themselves, or not."""
    workflow, _created = CampaignWorkflow.objects.update_or_create(
        campaign=campaign, defaults={"self_assign": allowed}
    )
    return workflow
