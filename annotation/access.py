"""The one access gate for samples (a block's polygons on one imagery source) and their audit.

The rule, until block assignments exist:

* Reading: every user with a role (annotator, lead, admin) may read the samples and the audit log
  of every block of every campaign, like the blocks themselves.
* Writing (drawing, editing, deleting polygons, marking a block negative): every user whose role
  is in ``WRITE_ROLES`` may write the samples of every block of every campaign. Today that is all
  three roles; when assignments come, annotators will be narrowed to their assigned blocks here
  and nowhere else.
* Users without a role get 404 for every block, source and sample, whether it exists or not
  (they learn nothing about what exists), like ``mapping.selectors.block_get_for_user``.
  Anonymous requests are refused before this gate by DRF's ``IsAuthenticated`` (403).
* A user with a role that may read but not write gets 403 on writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from rest_framework.exceptions import NotFound, PermissionDenied

from croplayer_site.roles import ADMIN, ANNOTATOR, LEAD, has_role
from mapping.models import Block, ImagerySource
from mapping.selectors import block_get_for_user

User = AbstractBaseUser | AnonymousUser

WRITE_ROLES: tuple[str, ...] = (ANNOTATOR, LEAD, ADMIN)


@dataclass(frozen=True)
class SampleTarget:
    """A block and an imagery source: the address of one sample (which may not exist yet)."""

    block: Block
    source: ImagerySource


def sample_target_get_for_user(
    *, user: User, block_id: int, source_slug: str, write: bool = False
) -> SampleTarget:
    """NotFound for a missing or invisible block or an unknown source; PermissionDenied when
    ``write`` and the user's role may not write."""
    block = block_get_for_user(user=user, block_id=block_id)
    try:
        source = ImagerySource.objects.get(slug=source_slug)
    except ImagerySource.DoesNotExist as e:
        raise NotFound(f"no imagery source {source_slug!r}") from e
    if write and not has_role(user, *WRITE_ROLES):
        raise PermissionDenied("your role may not change samples")
    return SampleTarget(block=block, source=source)


def block_audit_get_for_user(*, user: User, block_id: int) -> Block:
    """Whoever may read a block's samples may read its audit log."""
    return block_get_for_user(user=user, block_id=block_id)
