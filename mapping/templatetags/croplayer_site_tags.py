"""Site-wide template tags: the top navigation for a campaign's pages and the base map config."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext

from croplayer_site.roles import ADMIN, LEAD, has_role

register = template.Library()


def _page_campaign(context: template.Context) -> Any:
    """The campaign a page is about: its own, or its block's (the workspace, the block viewer)."""
    campaign = context.get("campaign")
    if getattr(campaign, "slug", None):
        return campaign
    for name in ("blk", "block"):
        block = context.get(name)
        if getattr(block, "campaign", None) is not None:
            return block.campaign
    return None


@register.inclusion_tag("_nav.html", takes_context=True)
def site_nav(context: template.Context) -> dict[str, Any]:
    """Links for the signed-in user: campaigns and API for everyone; on a campaign's pages, its
    lead pages for leads and admins (a lead reaches a campaign's pages only as its member, so the
    links appear only where they lead somewhere); Admin for staff who may change something."""
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    links: list[dict[str, str]] = [
        {"id": "nav-campaigns", "href": reverse("home"), "label": gettext("Campaigns")},
    ]
    campaign = _page_campaign(context)
    if campaign is not None and user is not None and has_role(user, LEAD, ADMIN):
        slug = campaign.slug
        for key, url, label in (
            ("overview", "campaign-overview", gettext("Overview")),
            ("dashboard", "learning-dashboard", gettext("Stopping dashboard")),
            ("rounds", "learning-rounds", gettext("Rounds")),
            ("models", "learning-models", gettext("Models")),
            ("assign", "assign-blocks", gettext("Assign blocks")),
            ("samples", "samples-page", gettext("Samples")),
            ("comparisons", "comparison-index", gettext("Comparisons")),
        ):
            links.append({"id": f"nav-{key}", "href": reverse(url, args=[slug]), "label": label})
    links.append({"id": "nav-api", "href": reverse("api-docs"), "label": gettext("API")})
    # Django's admin greets staff without any model permission with an empty page: the demo
    # lead is staff with none, so the link is shown only to those it is useful to.
    if user is not None and user.is_staff and (user.is_superuser or user.get_all_permissions()):
        links.append({"id": "nav-admin", "href": reverse("admin:index"), "label": gettext("Admin")})
    path = getattr(request, "path", "")
    for link in links:
        link["current"] = "page" if path == link["href"] else ""
    return {"links": links}


@register.inclusion_tag("_basemap.html")
def basemap_config() -> dict[str, Any]:
    """The XYZ base map under the overview and integration maps (BASEMAP_URL; empty: none)."""
    url = getattr(settings, "BASEMAP_URL", "")
    return {
        "basemap": {
            "url": url,
            "attribution": getattr(settings, "BASEMAP_ATTRIBUTION", "") if url else "",
            "maxZoom": getattr(settings, "BASEMAP_MAX_ZOOM", 19),
        }
    }
