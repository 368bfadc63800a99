"""``manage.py samples_import FILE --campaign SLUG --source SLUG [--skip-rejected]``."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import NotFound

from annotation.transfer import FileRejected, ImportRefused, samples_import_file, source_get
from mapping.models import Campaign


class Command(BaseCommand):
    help = (
        "Import sample polygons from a GeoPackage, zipped Shapefile (with .prj) or GeoJSON into a "
        "campaign, all or nothing. Features that break a rule abort the import unless "
        "--skip-rejected is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--campaign", required=True, help="campaign slug")
        parser.add_argument("--source", required=True, help="imagery source slug")
        parser.add_argument("--skip-rejected", action="store_true")
        parser.add_argument(
            "--user", help="username recorded as creator (and in the audit log); default: none"
        )

    def handle(self, *args, **opts):
        try:
            campaign = Campaign.objects.get(slug=opts["campaign"])
        except Campaign.DoesNotExist as e:
            raise CommandError(f"no campaign {opts['campaign']!r}") from e
        user = None
        if opts["user"]:
            try:
                user = get_user_model().objects.get(username=opts["user"])
            except get_user_model().DoesNotExist as e:
                raise CommandError(f"no user {opts['user']!r}") from e
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            source = source_get(slug=opts["source"])
            result = samples_import_file(
                user=user,
                campaign=campaign,
                source=source,
                path=path,
                skip_rejected=opts["skip_rejected"],
            )
        except NotFound as e:
            raise CommandError(str(e.detail)) from e
        except FileRejected as e:
            raise CommandError(f"nothing imported: {e.reason}") from e
        except ImportRefused as e:
            lines = [f"  feature {r['feature']}: {r['reason']}" for r in e.rejected[:50]]
            raise CommandError("\n".join([f"nothing imported: {e.reason}", *lines])) from e
        self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
