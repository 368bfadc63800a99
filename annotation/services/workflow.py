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
            for person in people:
                if person.pk in active[block.pk]:
                    skipped += 1
                    continue
                a = Assignment.objects.create(
                    block=block,
                    user=person,
                    priority=priority if priority is not None else block.seed_order,
                    assigned_by=lead,
                )
                _audit(user=lead, assignment=a, action=AuditAction.ASSIGNMENT_CREATE, before=None)
                created.append(a)
    return created, skipped


def _unassigned_blocks(*, campaign: Campaign) -> Any:
    return (
        Block.objects.filter(campaign=campaign)
        .exclude(Exists(Assignment.objects.filter(block=OuterRef("pk"))))
        .order_by(F("seed_order").asc(nulls_last=True), "pk")
    )


def assignment_self_claim(*, user: AbstractBaseUser, campaign: Campaign) -> Assignment | None:
    """Claim the campaign's first block (in seed order) that nobody has ever been given.

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
                priority=block.seed_order,
                self_claimed=True,
                assigned_by=user,
            )
            _audit(user=user, assignment=a, action=AuditAction.ASSIGNMENT_CLAIM, before=None)
            return a


def block_next_for_user(
    *, user: AbstractBaseUser, campaign: Campaign
) -> tuple[Assignment, bool] | None:
    """The user's next block: their highest-priority unfinished assignment (rank 1 first, then
    the oldest), else a newly claimed block when the campaign allows self-assignment.

    Returns the assignment and whether it was claimed now; None when there is nothing to do.
    """
    mine = (
        Assignment.objects.filter(user=user, block__campaign=campaign, status__in=EDITABLE_STATUSES)
        .select_related("block", "user")
        .order_by(F("priority").asc(nulls_last=True), "pk")
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
