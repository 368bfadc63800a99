"""``manage.py grid_build --campaign SLUG [--json]``: create the campaign's block grid."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from mapping.management.commands._progress import progress_bar
from mapping.models import Campaign
from mapping.services.grid import GridBuildError, grid_build


class Command(BaseCommand):
    help = "Create every block whose area intersects the campaign's land boundary."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True, help="campaign slug, e.g. china-2020")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        parser.add_argument(
            "--subdivisions",
            type=int,
            default=8,
            help="sub-cells per block edge for majority assignment (default 8)",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        try:
            campaign = Campaign.objects.get(slug=opts["campaign"])
        except Campaign.DoesNotExist as e:
            raise CommandError(f"no campaign {opts['campaign']!r}") from e
        update, close = progress_bar(not opts["no_progress"])
        t0 = time.monotonic()
        try:
            report = grid_build(
                campaign=campaign, subdivisions=opts["subdivisions"], progress=update
            )
        except (GridBuildError, ValueError) as e:
            raise CommandError(str(e)) from e
        finally:
            close()
        result = {**asdict(report), "seconds": round(time.monotonic() - t0, 1)}
        if opts["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False, indent=2))
        else:
            self.stdout.write(
                f"{report.blocks} blocks in {report.provinces} provinces "
                f"({report.created} created, {report.existing} existing) in {result['seconds']} s"
            )
