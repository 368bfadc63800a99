"""Create a campaign (slug, name, year, region, provinces, zoom), all or nothing."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from mapping.models import AdminLevel, AdminUnit, Campaign

YEAR_RANGE = (1990, 2100)
ZOOM_RANGE = (1, 22)
DEFAULT_ZOOM = 16


class CampaignCreateError(Exception):
    """A campaign that cannot be created; the message says why (nothing was written)."""


def _provinces(adcodes: Sequence[int]) -> list[AdminUnit]:
    if not adcodes:
        return []
    found = {
        u.adcode: u
        for u in AdminUnit.objects.filter(level=AdminLevel.PROVINCE, adcode__in=set(adcodes))
    }
    missing = [a for a in dict.fromkeys(adcodes) if a not in found]
    if missing:
        if not AdminUnit.objects.filter(level=AdminLevel.PROVINCE).exists():
            raise CampaignCreateError(
                "no provinces imported yet: run `manage.py import_admin_units --default` "
                "before naming provinces"
            )
        raise CampaignCreateError(
            f"no province with adcode {', '.join(map(str, missing))} "
            "(province adcodes end in 0000, e.g. 420000 for Hubei)"
        )
    return [found[a] for a in dict.fromkeys(adcodes)]


def _check(*, slug: str, name: str, year: int, zoom: int) -> None:
    try:
        validate_slug(slug)
    except ValidationError as e:
        raise CampaignCreateError(
            f"slug {slug!r}: use letters, digits, hyphens and underscores only (e.g. china-2020)"
        ) from e
    if len(slug) > 50:
        raise CampaignCreateError(f"slug {slug!r}: at most 50 characters")
    if not name.strip():
        raise CampaignCreateError("the name is empty")
    if not YEAR_RANGE[0] <= year <= YEAR_RANGE[1]:
        raise CampaignCreateError(
            f"year {year}: must be between {YEAR_RANGE[0]} and {YEAR_RANGE[1]}"
        )
    if not ZOOM_RANGE[0] <= zoom <= ZOOM_RANGE[1]:
        raise CampaignCreateError(
            f"zoom {zoom}: must be between {ZOOM_RANGE[0]} and {ZOOM_RANGE[1]} "
            "(16 is about 2.4 m per pixel)"
        )


def campaign_create(
    *,
    slug: str,
    name: str,
    year: int,
    region: str = "",
    province_adcodes: Sequence[int] = (),
    zoom: int = DEFAULT_ZOOM,
) -> Campaign:
    """Create the campaign over the given provinces (none: every imported province).

    ``region`` defaults to the provinces' names, or "China" for a national campaign. Raises
    CampaignCreateError with the reason (duplicate slug, unknown adcode, year or zoom out of
    range) and writes nothing.
    """
    _check(slug=slug, name=name, year=year, zoom=zoom)
    provinces = _provinces(province_adcodes)
    region = (
        region.strip()
        or (", ".join(p.name_en or p.name_zh for p in provinces) if provinces else "China")[:200]
    )
    if len(region) > 200 or len(name) > 200:
        raise CampaignCreateError("name and region are at most 200 characters")
    try:
        with transaction.atomic():
            # Checked inside the transaction and backed by the unique index: two concurrent
            # creations of one slug give one campaign and one clear refusal.
            if Campaign.objects.filter(slug=slug).exists():
                raise CampaignCreateError(f"a campaign {slug!r} already exists")
            campaign = Campaign.objects.create(
                slug=slug, name=name.strip(), region=region, year=year, zoom=zoom
            )
            campaign.provinces.set(provinces)
    except IntegrityError as e:
        raise CampaignCreateError(f"a campaign {slug!r} already exists") from e
    return campaign
