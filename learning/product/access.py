"""The access gates of the product app: exports, comparisons, integration and product uploads.

The rule is ``mapping.access``'s: Http404 when the requester cannot see the campaign or the
object, PermissionDenied with the reason when it is visible but the role may not act. Any role
of a campaign reads its integration decisions, exports and comparisons (and downloads them);
leads and admins run the integration, override decisions, start exports, upload products and
start comparisons.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotation.access import campaign_get_for_lead
from croplayer_site.roles import ADMIN, LEAD, has_role
from learning.product.models import ProductComparison, ProductExport
from learning.product.services.compare import comparison_list
from mapping.access import campaign_get_for_user, campaigns_visible_to

User = AbstractBaseUser | AnonymousUser

# The lead gate of the integration run, exports and the review page: annotation's (404 without
# a role or for another lead's campaign, 403 for annotators).
__all__ = ["campaign_get_for_lead", "comparison_get_for_user", "export_get_for_user", "lead_check"]


def lead_check(*, user: User, reason: str) -> None:
    """PermissionDenied with ``reason`` unless the user is a lead or an admin (for an object
    the user already sees: a block, a campaign)."""
    if not has_role(user, LEAD, ADMIN):
        raise PermissionDenied(reason)


def export_get_for_user(*, user: User, export_id: int) -> ProductExport:
    """An export of a campaign the user sees; Http404 whether it is missing or not visible."""
    try:
        return ProductExport.objects.select_related("campaign", "province").get(
            pk=export_id, campaign__in=campaigns_visible_to(user=user)
        )
    except ProductExport.DoesNotExist as e:
        raise Http404("no such export") from e


def comparison_get_for_user(*, user: User, slug: str, comparison_id: int) -> ProductComparison:
    """A comparison run if the user sees its campaign; Http404 whether missing or not visible."""
    campaign = campaign_get_for_user(user=user, slug=slug)
    try:
        return comparison_list(campaign=campaign).select_related("campaign").get(pk=comparison_id)
    except ProductComparison.DoesNotExist as e:
        raise Http404(f"no comparison {comparison_id} in campaign {slug}") from e
