"""``manage.py samples_export --campaign SLUG --format gpkg|shp --out FILE``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.transfer import EXPORT_FORMATS, samples_export
from mapping.models import Campaign


class Command(BaseCommand):
    help = (
        "Export every sample polygon of a campaign as a GeoPackage or a zipped Shapefile "
        "(UTF-8, WGS 84) with block, source, subtype, provenance and province/county names."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True, help="campaign slug")
        parser.add_argument("--format", choices=EXPORT_FORMATS, default="gpkg")
        parser.add_argument("--out", required=True, help="file to write (.gpkg or .zip)")

    def handle(self, *args, **opts):
        try:
            campaign = Campaign.objects.get(slug=opts["campaign"])
        except Campaign.DoesNotExist as e:
            raise CommandError(f"no campaign {opts['campaign']!r}") from e
        out = Path(opts["out"])
        with tempfile.TemporaryDirectory(prefix="croplayer-export-", dir=out.parent) as tmp:
            path, n = samples_export(campaign=campaign, fmt=opts["format"], dest=Path(tmp))
            # Written next to the target and moved into place: a reader never sees half a file.
            shutil.move(path, out.with_name(out.name + ".part"))
            os.replace(out.with_name(out.name + ".part"), out)
        self.stdout.write(f"{n} polygon(s) written to {out}")
