"""The one access gate for samples, labels, assignments and the audit of a block.

The gates raise Django's ``Http404`` (not visible) and ``PermissionDenied`` (visible, but not
yours to do; with the reason), as every app's ``access.py`` does (``mapping.access``). The rule:

* Campaigns: admins see every campaign; leads only the campaigns they are members of
  (``mapping.models.CampaignMember``, kept with ``manage.py campaign_member`` or the Django
  admin); annotators every campaign. Everything below holds inside the campaigns a person sees
  (``mapping.access.campaigns_visible_to``). A lead who is not a member of a campaign gets 404
  for it, its blocks, their samples, labels and audit, its assignments, rounds, exports and
  comparisons, exactly as for one that does not exist: the lead learns nothing about other
  teams' campaigns. The rule lives in ``campaigns_visible_to``, which ``campaign_get_for_user``,
  ``campaign_list_for_user`` and ``block_get_for_user`` apply, so every gate built on them
  (these functions, the learning dashboard, rounds, exports, comparisons, integration review,
  websockets) follows it.
* Reading samples, labels and the audit log of a block: leads and admins on every block;
  annotators only on blocks given to them (any status; 403 "not assigned to you" otherwise: the
  block itself is not secret, the work on it is). Labels: annotators read their own verdicts
  and coverage types only, leads and admins read everyone's; the integration decision is the
  block's and visible to all roles.
* Blind double annotation: the block's second person (an assignment with ``agreement=True``)
  reads and writes their own copy (``AgreementSample``) through the same sample URLs, and sees
  in the audit log only their own copy, their own labels and the assignments; the primary
  person never sees the copy, nor the second person's labels. Leads and admins see everything.
* Writing samples, verdicts and coverage types: leads and admins on every block; annotators
  (``WRITE_ROLES`` minus ``UNRESTRICTED_ROLES``) only on blocks assigned to them whose
  assignment is to do or in progress. Not assigned: 403. Submitted or accepted: 409 with the
  reason (the work is with the reviewer, or done).
* The integration decision, assigning blocks, reviewing work and the agreement report: leads and
  admins (403 for annotators). Nobody reviews their own work (403).
* Assignments: annotators see and act on their own (someone else's is 404); leads and admins see
  all; only the assignee starts and submits (403 for others).
* Users without a role get 404 for every block, source, sample, campaign and assignment, whether
  it exists or not (they learn nothing about what exists), like
  ``mapping.access.block_get_for_user``. Anonymous requests are refused before this gate by
  DRF's ``IsAuthenticated`` (403).
* A user with a role that may read but not write gets 403 on writes.

"Leads and admins on every block" above means every block of a campaign they see.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext
from rest_framework import status
from rest_framework.exceptions import APIException

from annotation.models import EDITABLE_STATUSES, Assignment, AssignmentStatus
from annotation.selectors import PRIMARY, AuditFilter, SampleCopy, assignment_list
from croplayer_site.roles import ADMIN, ANNOTATOR, LEAD, has_role, user_roles
from mapping.access import (
    block_get_for_user,
    campaign_get_for_role,
    campaign_get_for_user,
    campaigns_visible_to,
)
from mapping.models import Block, Campaign, ImagerySource

User = AbstractBaseUser | AnonymousUser

WRITE_ROLES: tuple[str, ...] = (ANNOTATOR, LEAD, ADMIN)
# Roles that work on every block without being assigned, decide integration and review.
UNRESTRICTED_ROLES: tuple[str, ...] = (LEAD, ADMIN)


class StateConflict(APIException):
    """The request is allowed for this person but not in the state the object is in."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "not possible in the current state"
    default_code = "state_conflict"


@dataclass(frozen=True)
class SampleTarget:
    """A block and an imagery source: the address of one sample (which may not exist yet), and
    which copy of it this user reads and writes (their blind copy if they are the block's second
    annotator, else the primary sample)."""

    block: Block
    source: ImagerySource
    copy: SampleCopy = PRIMARY


def _assignment_parts(*, user: User, block: Block) -> set[bool]:
    """The user's parts on the block: False for primary, True for agreement; empty: not given."""
    if not user.is_authenticated:
        return set()
    return set(
        Assignment.objects.filter(block=block, user=user).values_list("agreement", flat=True)
    )


def block_work_get_for_user(*, user: User, block_id: int) -> Block:
    """A block whose work (samples, labels, audit) the user may read: NotFound without a role
    or for a missing block; PermissionDenied for an annotator the block was never given to."""
    block = block_get_for_user(user=user, block_id=block_id)
    if not has_role(user, *UNRESTRICTED_ROLES) and not _assignment_parts(user=user, block=block):
        raise PermissionDenied(gettext("this block is not assigned to you"))
    return block


def sample_copy_for_user(*, user: User, block: Block) -> SampleCopy:
    """The second annotator of a block works on their own copy; everyone else on the sample."""
    if True in _assignment_parts(user=user, block=block):
        return SampleCopy(annotator=user)  # type: ignore[arg-type]  # assigned: logged in
    return PRIMARY


def sample_target_get_for_user(
    *, user: User, block_id: int, source_slug: str, write: bool = False
) -> SampleTarget:
    """NotFound for a missing or invisible block or an unknown source; PermissionDenied when
    the block is not the annotator's, or ``write`` and the user's role may not write."""
    block = block_get_for_user(user=user, block_id=block_id)
    try:
        source = ImagerySource.objects.get(slug=source_slug)
    except ImagerySource.DoesNotExist as e:
        raise Http404(f"no imagery source {source_slug!r}") from e
    if write and not has_role(user, *WRITE_ROLES):
        raise PermissionDenied(gettext("your role may not change samples"))
    if write:
        block_work_check(user=user, block=block)
    else:
        block = block_work_get_for_user(user=user, block_id=block_id)
    return SampleTarget(
        block=block, source=source, copy=sample_copy_for_user(user=user, block=block)
    )


def block_work_check(*, user: User, block: Block) -> None:
    """May this person change the block's samples and labels now? Raises if not."""
    if has_role(user, *UNRESTRICTED_ROLES):
        return
    statuses = set(
        Assignment.objects.filter(block=block, user=user).values_list("status", flat=True)
    )
    if statuses & set(EDITABLE_STATUSES):
        return
    if AssignmentStatus.SUBMITTED in statuses:
        raise StateConflict(gettext(
            "your work on this block is submitted and waits for review; "
            "it can be changed again if the reviewer sends it back"
        ))
    if AssignmentStatus.ACCEPTED in statuses:
        raise StateConflict(gettext("your work on this block was accepted; it is closed"))
    raise PermissionDenied(gettext("this block is not assigned to you"))


@dataclass(frozen=True)
class LabelTarget:
    """Where a label goes: a block and, for verdicts and coverage types, a source."""

    block: Block
    source: ImagerySource | None


def label_target_get_for_user(
    *, user: User, block_id: int, kind: str, source_slug: str | None = None
) -> LabelTarget:
    """The gate for label writes; ``kind`` is verdict, coverage or integration."""
    if kind == "integration":
        block = block_get_for_user(user=user, block_id=block_id)
        if not has_role(user, *UNRESTRICTED_ROLES):
            raise PermissionDenied(
                gettext("only leads and admins decide how a block is integrated"))
        return LabelTarget(block=block, source=None)
    if source_slug is None:
        raise ValueError(f"a {kind} label needs a source")
    target = sample_target_get_for_user(
        user=user, block_id=block_id, source_slug=source_slug, write=True
    )
    return LabelTarget(block=target.block, source=target.source)


@dataclass(frozen=True)
class LabelView:
    """A block whose labels are read, and whose labels only, if the reader sees only their own."""

    block: Block
    only_user: AbstractBaseUser | None


def block_labels_get_for_user(*, user: User, block_id: int) -> LabelView:
    block = block_work_get_for_user(user=user, block_id=block_id)
    own = None if has_role(user, *UNRESTRICTED_ROLES) else user
    return LabelView(block=block, only_user=own)  # type: ignore[arg-type]  # a role: logged in


def campaign_get_for_lead(*, user: User, slug: str) -> Campaign:
    """A campaign a lead or admin manages (assigning, agreement): 404 without role, else 403."""
    return campaign_get_for_role(
        user=user,
        slug=slug,
        roles=UNRESTRICTED_ROLES,
        reason=gettext("only leads and admins manage the work of a campaign"),
    )


def campaign_get_for_transfer(*, user: User, slug: str) -> Campaign:
    """The gate for importing and exporting a campaign's samples: leads and admins (users
    without a role get 404, as for every campaign; annotators 403)."""
    return campaign_get_for_role(
        user=user,
        slug=slug,
        roles=UNRESTRICTED_ROLES,
        reason="only leads and admins may import or export samples",
    )


def campaign_overview_get_for_user(
    *, user: User, slug: str
) -> tuple[Campaign, AbstractBaseUser | None]:
    """A campaign's overview map, and whose blocks it shows: an annotator's own (the user),
    or every block (None) for leads and admins. 404 without a role."""
    campaign = campaign_get_for_user(user=user, slug=slug)
    if has_role(user, *UNRESTRICTED_ROLES):
        return campaign, None
    return campaign, user  # type: ignore[return-value]  # a role: logged in


def campaign_get_for_worker(*, user: User, slug: str) -> Campaign:
    """A campaign someone takes work from (next block)."""
    campaign = campaign_get_for_user(user=user, slug=slug)
    if not has_role(user, *WRITE_ROLES):
        raise PermissionDenied(gettext("your role may not take work"))
    return campaign


def assignment_scope_for_user(*, user: User) -> AbstractBaseUser | None | bool:
    """Whose assignments the user may list: everyone's (None), their own (the user), or nobody's
    (False: no role); always only in the campaigns the user sees."""
    if not user_roles(user):
        return False
    if has_role(user, *UNRESTRICTED_ROLES):
        return None
    return user  # type: ignore[return-value]  # a role: logged in


def assignment_get_for_user(*, user: User, assignment_id: int, act: str) -> Assignment:
    """The gate for one assignment; ``act`` is "work" (start, submit: the assignee only) or
    "review" (leads and admins, not on their own work)."""
    scope = assignment_scope_for_user(user=user)
    if scope is False:
        raise Http404("no such assignment")
    qs = Assignment.objects.select_related("block", "block__campaign", "user").filter(
        block__campaign__in=campaigns_visible_to(user=user)
    )
    if scope is not None:
        qs = qs.filter(user=scope)
    try:
        assignment = qs.get(pk=assignment_id)
    except Assignment.DoesNotExist as e:
        raise Http404("no such assignment") from e
    if act == "work" and assignment.user_id != user.pk:
        raise PermissionDenied(gettext("only the person it is assigned to can start or submit it"))
    if act == "review":
        if not has_role(user, *UNRESTRICTED_ROLES):
            raise PermissionDenied(gettext("only leads and admins review work"))
        if assignment.user_id == user.pk:
            raise PermissionDenied(gettext("nobody reviews their own work"))
    return assignment


def assignment_list_for_user(
    *,
    user: User,
    campaign_slug: str | None = None,
    status: str | None = None,
    username: str | None = None,
) -> QuerySet[Assignment]:
    """The assignments the user may list, in queue order: annotators their own, leads those
    in their campaigns, admins all; none without a role."""
    scope = assignment_scope_for_user(user=user)
    if scope is False:
        return Assignment.objects.none()
    return assignment_list(
        only_user=scope or None,  # type: ignore[arg-type]  # False was handled above
        campaign_slug=campaign_slug,
        status=status,
        username=username,
    ).filter(block__campaign__in=campaigns_visible_to(user=user))


def assignees_resolve(*, usernames: list[str]) -> list[AbstractBaseUser]:
    """The people named, each of whom must have a role that may work on blocks."""
    found = {u.get_username(): u for u in get_user_model().objects.filter(username__in=usernames)}
    bad = [n for n in usernames if n not in found or not has_role(found[n], *WRITE_ROLES)]
    if bad:
        raise ValueError(f"no annotator, lead or admin called {', '.join(map(repr, bad))}")
    return [found[n] for n in usernames]


@dataclass(frozen=True)
class AuditView:
    """A block whose audit log is read, and what of it this reader may see."""

    block: Block
    only: AuditFilter | None


def block_audit_get_for_user(*, user: User, block_id: int) -> AuditView:
    """Whoever may read a block's samples may read its audit log; annotators see it without
    what would break blind labelling (others' labels, the other copy of a double-annotated
    block)."""
    block = block_work_get_for_user(user=user, block_id=block_id)
    if has_role(user, *UNRESTRICTED_ROLES):
        return AuditView(block=block, only=None)
    second = True in _assignment_parts(user=user, block=block)
    return AuditView(block=block, only=AuditFilter(user=user, second=second))  # type: ignore[arg-type]
