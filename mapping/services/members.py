"""Campaign membership: which leads run which campaign (what a lead sees is decided by it)."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from croplayer_site.roles import LEAD, has_role
from mapping.models import Campaign, CampaignMember


class CampaignMemberError(Exception):
    """A membership that cannot be made; the message says why (nothing was changed)."""


@transaction.atomic
def campaign_members_add(*, campaign: Campaign, users: Sequence[AbstractBaseUser]) -> list[bool]:
    """Make leads members of the campaign, all or nothing; per user, False if already one."""
    # Membership only narrows what leads see: admins see every campaign and annotators work on
    # the blocks given to them, so a membership of anyone else would do nothing and mislead.
    not_leads = [u.get_username() for u in users if not has_role(u, LEAD)]
    if not_leads:
        raise CampaignMemberError(
            f"not a lead: {', '.join(map(repr, not_leads))}; only leads are members of a campaign"
        )
    return [CampaignMember.objects.get_or_create(campaign=campaign, user=u)[1] for u in users]


@transaction.atomic
def campaign_members_remove(*, campaign: Campaign, users: Sequence[AbstractBaseUser]) -> list[bool]:
    """End the users' membership of the campaign; per user, False if they were not a member."""
    return [
        bool(CampaignMember.objects.filter(campaign=campaign, user=u).delete()[0]) for u in users
    ]
