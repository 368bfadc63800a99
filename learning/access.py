"""The access gates of the learning app: the dashboard, rounds and model versions.

The rule is ``mapping.access``'s: Http404 when the requester cannot see the campaign or the
object (missing, no role, another lead's campaign); PermissionDenied with the reason when the
campaign is visible but the role may not act (annotators on lead pages, leads on admin actions).
Leads and admins read the dashboard, rounds, model versions and the stop status; admins start
and cancel rounds, register model versions and play the demo.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext

from croplayer_site.roles import ADMIN, LEAD, has_role
from learning.models import ModelVersion, Round
from mapping.access import campaign_get_for_role, campaigns_visible_to
from mapping.models import Campaign

User = AbstractBaseUser | AnonymousUser


def campaign_for(*, user: User, slug: str, admin: bool = False) -> Campaign:
    """A campaign the user sees (else 404) and may work on here: leads and admins, or only
    admins with ``admin`` (else 403 with the reason)."""
    if admin:
        return campaign_get_for_role(
            user=user, slug=slug, roles=(ADMIN,), reason=gettext("only admins may do this")
        )
    return campaign_get_for_role(
        user=user, slug=slug, roles=(LEAD, ADMIN), reason=gettext("leads and admins only")
    )


def round_get_by_number(*, campaign: Campaign, number: int) -> Round:
    """Round ``number`` of a campaign that passed its gate; Http404 if it has none."""
    try:
        return Round.objects.select_related("campaign").get(campaign=campaign, number=number)
    except Round.DoesNotExist as e:
        raise Http404(f"campaign {campaign.slug!r} has no round {number}") from e


def round_get_for_watcher(*, user: User, round_id: int) -> Round:
    """A round whose progress the user watches: Http404 if it is missing or its campaign is not
    visible; PermissionDenied unless the user is a lead or an admin."""
    try:
        rnd = Round.objects.select_related("campaign").get(
            pk=round_id, campaign__in=campaigns_visible_to(user=user)
        )
    except Round.DoesNotExist as e:
        raise Http404("no such round") from e
    if not has_role(user, LEAD, ADMIN):
        raise PermissionDenied(gettext("leads and admins only"))
    return rnd


def model_version_get(*, campaign: Campaign, pk: int) -> ModelVersion:
    """A model version of a campaign that passed its gate; Http404 if it has no such one."""
    try:
        return ModelVersion.objects.get(campaign=campaign, pk=pk)
    except ModelVersion.DoesNotExist as e:
        raise Http404(f"campaign {campaign.slug!r} has no model version {pk}") from e
