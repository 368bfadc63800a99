"""The access gates of the mapping app: which campaigns and blocks a person sees.

The rule for every app's ``access.py``: **404** (``Http404``) when the requester cannot see the
object (it is missing, they have no role, it is in another lead's campaign, it is another
person's assignment or import); **403** (``PermissionDenied``) with a translated reason when the
object is visible but their role or relation does not allow the action; **409** for state
(``annotation.access.StateConflict``). The gates raise Django's exceptions, which pages show as
they are and DRF turns into its own with the same message. Websockets close with 4404 for
every refusal.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404

from croplayer_site.roles import ADMIN, LEAD, has_role, user_roles
from mapping.models import Block, Campaign, CampaignMember

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
    """The gate for one campaign: Http404 whether it is missing or not visible (no block count:
    counting 390,000 blocks took about 200 ms, on every tile and API call of a national
    campaign)."""
    try:
        return campaigns_visible_to(user=user).get(slug=slug)
    except Campaign.DoesNotExist as e:
        raise Http404(f"no campaign {slug!r}") from e


def campaign_get_for_role(
    *, user: User, slug: str, roles: tuple[str, ...], reason: str
) -> Campaign:
    """A campaign the user sees (else Http404) and acts on with one of ``roles`` (else
    PermissionDenied with ``reason``, translated by the caller)."""
    campaign = campaign_get_for_user(user=user, slug=slug)
    if not has_role(user, *roles):
        raise PermissionDenied(reason)
    return campaign


def block_get_for_user(*, user: User, block_id: int) -> Block:
    """The one gate for blocks: Http404 whether the block is missing or not visible."""
    if not user_roles(user):
        raise Http404("no such block")
    try:
        return Block.objects.select_related("campaign", "province", "county").get(
            pk=block_id, campaign__in=campaigns_visible_to(user=user)
        )
    except Block.DoesNotExist as e:
        raise Http404("no such block") from e
