"""``manage.py import_statistics FILE.csv --campaign SLUG`` (or ``--default``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mapping.models import Campaign
from mapping.services.statistics import (
    DEFAULT_STATISTICS,
    StatisticsImportError,
    statistics_import,
)


class Command(BaseCommand):
    help = (
        "Import official cultivated land per province, or per county with --level county (CSV "
        "with province or county, value, status and source columns). All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="CSV file (omit with --default)")
        parser.add_argument(
            "--default",
            action="store_true",
            help="the Third National Land Survey table shipped with croplayer",
        )
        parser.add_argument("--campaign", required=True)
        parser.add_argument(
            "--level",
            choices=["province", "county"],
            default="province",
            help="county: one figure per county (column county: adcode or name), summed over "
            "the counties a campaign covers when it covers only part of a province",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            campaign = Campaign.objects.get(slug=opts["campaign"])
        except Campaign.DoesNotExist as e:
            raise CommandError(f"no campaign {opts['campaign']!r}") from e
        if not opts["file"] and not opts["default"]:
            raise CommandError("give a FILE or --default")
        if opts["default"] and opts["level"] == "county":
            raise CommandError("--default is the province table; give a county FILE")
        path = DEFAULT_STATISTICS if opts["default"] else Path(opts["file"])
        try:
            report = statistics_import(campaign=campaign, path=path, level=opts["level"])
        except StatisticsImportError as e:
            raise CommandError(f"nothing imported: {e}") from e
        if opts["json"]:
            self.stdout.write(json.dumps(asdict(report), ensure_ascii=False, indent=2))
        else:
            self.stdout.write(
                f"{report.created} created, {report.updated} updated, {len(report.skipped)} skipped"
            )
