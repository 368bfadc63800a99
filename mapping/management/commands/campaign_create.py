"""``manage.py campaign_create SLUG --name NAME --year YEAR [--region] [--provinces] [--zoom]``."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from mapping.services.campaigns import DEFAULT_ZOOM, CampaignCreateError, campaign_create


def _adcodes(values: list[str]) -> list[int]:
    """``420000 430000`` or ``420000,430000`` (the form imagery_fetch takes)."""
    out = []
    for v in values:
        for part in v.split(","):
            if not part.strip():
                continue
            try:
                out.append(int(part))
            except ValueError as e:
                raise CommandError(
                    f"--provinces: {part.strip()!r} is not an adcode (e.g. 420000 for Hubei); "
                    "nothing created"
                ) from e
    return out


class Command(BaseCommand):
    help = (
        "Create a campaign: a region (every imported province, or those named), a year and an "
        "imagery zoom. All or nothing. Next: import_statistics, grid_build, imagery_fetch."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="short name used by the other commands, e.g. china-2020")
        parser.add_argument("--name", required=True, help='shown on the pages, e.g. "China 2020"')
        parser.add_argument("--year", required=True, type=int, help="year mapped, e.g. 2020")
        parser.add_argument(
            "--region", default="", help="description (default: the provinces' names, or China)"
        )
        parser.add_argument(
            "--provinces",
            nargs="+",
            default=[],
            metavar="ADCODE",
            help="province adcodes (default: every imported province); needs import_admin_units",
        )
        parser.add_argument(
            "--zoom",
            type=int,
            default=DEFAULT_ZOOM,
            help=f"XYZ zoom of the block imagery (default {DEFAULT_ZOOM}, about 2.4 m)",
        )
        parser.add_argument("--json", action="store_true", help="print the campaign as JSON")

    def handle(self, *args, **opts):
        try:
            campaign = campaign_create(
                slug=opts["slug"],
                name=opts["name"],
                year=opts["year"],
                region=opts["region"],
                province_adcodes=_adcodes(opts["provinces"]),
                zoom=opts["zoom"],
            )
        except CampaignCreateError as e:
            raise CommandError(f"{e}; nothing created") from e
        adcodes = sorted(campaign.provinces.values_list("adcode", flat=True))
        if opts["json"]:
            out = {
                "slug": campaign.slug,
                "name": campaign.name,
                "year": campaign.year,
                "region": campaign.region,
                "zoom": campaign.zoom,
                "block_size_deg": float(campaign.block_size_deg),
                "provinces": adcodes,
            }
            self.stdout.write(json.dumps(out, ensure_ascii=False, indent=2))
        else:
            where = f"{len(adcodes)} provinces" if adcodes else "every imported province"
            self.stdout.write(
                f"created {campaign.slug}: {campaign.name}, {campaign.year}, {where}, "
                f"zoom {campaign.zoom}"
            )
