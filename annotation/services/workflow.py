"""Writes of the work flow: assigning blocks, self-claiming, the next block, and the status
machine of an assignment.

    todo --start--> in_progress --submit--> submitted --review(accept)--> accepted
                         ^                       |
                         +----review(reject)-----+   (with the lead's comment)

Each transition is a conditional update (it only changes the row if the status is still the one
the transition starts from) in its own transaction, with an audit entry on the block; anything
else raises TransitionRefused with the reason. Who may do what is decided by
``annotation.access`` before a service is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from annotation.models import (
    ACTIVE_STATUSES,
    EDITABLE_STATUSES,
    MAX_ASSIGNEES,
    Assignment,
    AssignmentStatus,
    AuditAction,
)
from annotation.selectors import assignment_data, self_assign_allowed
from annotation.services.audit import block_audit_record
from mapping.models import Block, Campaign


class TransitionRefused(Exception):
    """The assignment is not in a status the transition starts from."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AssignmentRefused(Exception):
    """Assigning would break a work-flow rule (too many assignees, self-assign off)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _audit(*, user: AbstractBaseUser, assignment: Assignment, action: str, before: Any) -> None:
    block_audit_record(
        user=user,
        block_id=assignment.block_id,
        source_id=None,
        action=action,
        object_type="assignment",
        object_id=assignment.pk,
        before=before,
        after=assignment_data(assignment),
    )


def _roles_on_block(*, block_id: int) -> tuple[set[int], set[int]]:
    """Who is the block's primary person (any status) and who its second (agreement) person."""
    primary: set[int] = set()
    second: set[int] = set()
    for user_id, agreement in Assignment.objects.filter(block_id=block_id).values_list(
        "user_id", "agreement"
    ):
        (second if agreement else primary).add(user_id)
    return primary, second


def assignment_create(
    *,
    lead: AbstractBaseUser,
    campaign: Campaign,
    block_ids: Sequence[int],
    assignees: Iterable[AbstractBaseUser],
    priority: int | None = None,
) -> tuple[list[Assignment], int]:
    """Give every block to every assignee (one or two people: two for agreement).

    All or nothing. A pair that already has an active assignment is skipped (so repeating a
    request is harmless); returns the new assignments and the number skipped. The priority
    defaults to each block's seed order.

    Agreement: the first person ever given a block is its primary annotator (their work is the
    block's ``Sample``); a second, different person becomes the agreement annotator
    (``agreement=True``) who draws blind into their own copy. Someone who had the block before
    keeps their part. A block has one person of each kind; a third person is refused.
    """
    people = list({u.pk: u for u in assignees}.values())
    with transaction.atomic():
        # Locking the blocks serialises two leads assigning the same block at once.
        blocks = list(
            Block.objects.select_for_update()
            .filter(campaign=campaign, pk__in=set(block_ids))
            .order_by("pk")
        )
        missing = sorted(set(block_ids) - {b.pk for b in blocks})
        if missing:
            raise ValueError(f"blocks {missing} are not blocks of campaign {campaign.slug!r}")
        active: dict[int, set[int]] = {b.pk: set() for b in blocks}
        for block_id, user_id in Assignment.objects.filter(
            block__in=blocks, status__in=ACTIVE_STATUSES
        ).values_list("block_id", "user_id"):
            active[block_id].add(user_id)
        created: list[Assignment] = []
        skipped = 0
        for block in blocks:
            wanted = active[block.pk] | {u.pk for u in people}
            if len(wanted) > MAX_ASSIGNEES:
                raise AssignmentRefused(
                    f"block {block.code} would have {len(wanted)} people working on it; "
                    f"at most {MAX_ASSIGNEES}"
                )
            primary, second = _roles_on_block(block_id=block.pk)
            for person in people:
                if person.pk in active[block.pk]:
                    skipped += 1
                    continue
                if person.pk in primary or person.pk in second:
                    agreement = person.pk in second  # back for more: the same part as before
                else:
                    agreement = bool(primary)
                if agreement and second - {person.pk}:
                    raise AssignmentRefused(
                        f"block {block.code} already has a second annotator for agreement"
                    )
                a = Assignment.objects.create(
                    block=block,
                    user=person,
                    priority=priority if priority is not None else block.seed_order,
                    assigned_by=lead,
                    agreement=agreement,
                )
                (second if agreement else primary).add(person.pk)
                _audit(user=lead, assignment=a, action=AuditAction.ASSIGNMENT_CREATE, before=None)
                created.append(a)
    return created, skipped


def agreement_blocks_choose(*, block_ids: Sequence[int], percent: float) -> list[int]:
    """``percent`` of the blocks, spread evenly over the given order (a queue), at least one.

    Evenly spread rather than random: a lead can see and repeat the choice, and it samples the
    start, middle and end of a queue alike (the first blocks of a queue are often the easy ones).
    """
    if not 0 < percent <= 100:
        raise ValueError(f"the share must be more than 0 and at most 100 percent; got {percent}")
    n = len(block_ids)
    if n == 0:
        return []
    k = max(1, min(n, round(n * percent / 100)))
    return [block_ids[(i * n) // k] for i in range(k)]


def agreement_share_assign(
    *,
    lead: AbstractBaseUser,
    campaign: Campaign,
    first: AbstractBaseUser,
    second: AbstractBaseUser,
    percent: float,
) -> tuple[list[Assignment], int]:
    """Give ``second`` a share of ``first``'s open blocks (to do or in progress, primary, with
    nobody second yet) of the campaign, in ``first``'s queue order, for blind double annotation.

    Returns what ``assignment_create`` returns; all or nothing.
    """
    if first.pk == second.pk:
        raise ValueError("agreement needs two different people")
    taken = Assignment.objects.filter(agreement=True, status__in=ACTIVE_STATUSES).values("block_id")
    queue = list(
        Assignment.objects.filter(
            user=first,
            block__campaign=campaign,
            agreement=False,
            status__in=EDITABLE_STATUSES,
        )
        .exclude(block_id__in=taken)
        .order_by(F("priority").asc(nulls_last=True), "pk")
        .values_list("block_id", flat=True)
    )
    chosen = agreement_blocks_choose(block_ids=queue, percent=percent)
    if not chosen:
        raise ValueError(
            f"{first.get_username()} has no open block in {campaign.slug!r} without a second "
            "annotator"
        )
    return assignment_create(lead=lead, campaign=campaign, block_ids=chosen, assignees=[second])


def _unassigned_blocks(*, campaign: Campaign) -> Any:
    # The latest learning round's selection (by rank) first, then the blocks of the systematic
    # validation sample (they need verdicts and an integration decision), then the seed order.
    from learning.models import SystematicSampleBlock
    from learning.selectors import selection_rank_subquery

    return (
        Block.objects.filter(campaign=campaign)
        .exclude(Exists(Assignment.objects.filter(block=OuterRef("pk"))))
        .annotate(
            selection_rank=selection_rank_subquery(campaign=campaign),
            systematic=Exists(SystematicSampleBlock.objects.filter(block=OuterRef("pk"))),
        )
        .order_by(
            F("selection_rank").asc(nulls_last=True),
            F("systematic").desc(),
            F("seed_order").asc(nulls_last=True),
            "pk",
        )
    )


def assignment_self_claim(*, user: AbstractBaseUser, campaign: Campaign) -> Assignment | None:
    """Claim the campaign's first block (latest round's selection, then seed order) that nobody
    has ever been given.

    None when there is none left. Two people claiming at once never get the same block: the
    candidate row is locked (``SKIP LOCKED``: the other claimant moves on to the next block) and
    checked again after the lock, in a new statement that sees what committed meanwhile.
    """
    if not self_assign_allowed(campaign=campaign):
        raise AssignmentRefused(f"self-assignment is off for campaign {campaign.slug!r}")
    with transaction.atomic():
        while True:
            block = (
                _unassigned_blocks(campaign=campaign)
                .select_for_update(skip_locked=True, of=("self",))
                .first()
            )
            if block is None:
                return None
            if Assignment.objects.filter(block=block).exists():
                continue  # taken between our snapshot and our lock
            a = Assignment.objects.create(
                block=block,
                user=user,
                priority=block.selection_rank or block.seed_order,
                self_claimed=True,
                assigned_by=user,
            )
            _audit(user=user, assignment=a, action=AuditAction.ASSIGNMENT_CLAIM, before=None)
            return a


def block_next_for_user(
    *, user: AbstractBaseUser, campaign: Campaign
) -> tuple[Assignment, bool] | None:
    """The user's next block: of their unfinished assignments, the one the latest learning
    round ranked first (the blocks it selected, by rank), then by the assignment's priority
    (rank 1 first; the seed order until a round has selected), then the oldest; else a newly
    claimed block when the campaign allows self-assignment.

    Returns the assignment and whether it was claimed now; None when there is nothing to do.
    """
    from learning.selectors import selection_rank_subquery

    mine = (
        Assignment.objects.filter(user=user, block__campaign=campaign, status__in=EDITABLE_STATUSES)
        .select_related("block", "user")
        .annotate(
            selection_rank=selection_rank_subquery(campaign=campaign, block_ref="block_id")
        )
        .order_by(
            F("selection_rank").asc(nulls_last=True), F("priority").asc(nulls_last=True), "pk"
        )
        .first()
    )
    if mine is not None:
        return mine, False
    if not self_assign_allowed(campaign=campaign):
        return None
    claimed = assignment_self_claim(user=user, campaign=campaign)
    return (claimed, True) if claimed is not None else None


def _status_name(status: str) -> str:
    return str(AssignmentStatus(status).label).lower()


def _transition(
    *,
    actor: AbstractBaseUser,
    assignment: Assignment,
    verb: str,
    from_status: str,
    to_status: str,
    action: str,
    changes: dict[str, Any],
) -> Assignment:
    with transaction.atomic():
        before = assignment_data(assignment)
        changed = Assignment.objects.filter(pk=assignment.pk, status=from_status).update(
            status=to_status, **changes
        )
        if changed != 1:
            current = Assignment.objects.get(pk=assignment.pk).status
            raise TransitionRefused(
                f"cannot {verb}: the assignment is {_status_name(current)}, "
                f"not {_status_name(from_status)}"
            )
        fresh = Assignment.objects.select_related("block", "user").get(pk=assignment.pk)
        _audit(user=actor, assignment=fresh, action=action, before=before)
    return fresh


def assignment_start(*, user: AbstractBaseUser, assignment: Assignment) -> Assignment:
    """To do -> in progress (the assignee opens the block)."""
    return _transition(
        actor=user,
        assignment=assignment,
        verb="start",
        from_status=AssignmentStatus.TODO,
        to_status=AssignmentStatus.IN_PROGRESS,
        action=AuditAction.ASSIGNMENT_START,
        changes={"started_at": timezone.now()},
    )


def assignment_submit(*, user: AbstractBaseUser, assignment: Assignment) -> Assignment:
    """In progress -> submitted (the assignee hands the block in for review)."""
    return _transition(
        actor=user,
        assignment=assignment,
        verb="submit",
        from_status=AssignmentStatus.IN_PROGRESS,
        to_status=AssignmentStatus.SUBMITTED,
        action=AuditAction.ASSIGNMENT_SUBMIT,
        changes={"submitted_at": timezone.now()},
    )


def assignment_review(
    *, reviewer: AbstractBaseUser, assignment: Assignment, accept: bool, comment: str = ""
) -> Assignment:
    """Submitted -> accepted, or back to in progress with the reviewer's comment (required)."""
    comment = comment.strip()
    if not accept and not comment:
        raise ValueError("a rejection needs a comment that tells the annotator what to fix")
    changes: dict[str, Any] = {
        "reviewed_at": timezone.now(),
        "reviewed_by": reviewer,
        "review_comment": comment,
        "last_review": AssignmentStatus.ACCEPTED if accept else AssignmentStatus.REJECTED,
    }
    if not accept:
        changes["rejections"] = F("rejections") + 1
    return _transition(
        actor=reviewer,
        assignment=assignment,
        verb="review",
        from_status=AssignmentStatus.SUBMITTED,
        to_status=AssignmentStatus.ACCEPTED if accept else AssignmentStatus.IN_PROGRESS,
        action=AuditAction.ASSIGNMENT_ACCEPT if accept else AuditAction.ASSIGNMENT_REJECT,
        changes=changes,
    )
