"""``manage.py import_admin_units FILE --level province|city|county`` (or ``--default``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mapping.models import AdminLevel
from mapping.services.admin_units import (
    DEFAULT_FIELDS,
    FieldMap,
    ImportError_,
    admin_units_import,
    admin_units_load_default,
)


class Command(BaseCommand):
    help = (
        "Import provinces, cities or counties from a GeoPackage, zipped or plain Shapefile or "
        "GeoJSON (EPSG:4326). All or nothing: any problem aborts the whole import."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="vector file (omit with --default)")
        parser.add_argument(
            "--default", action="store_true", help="load the boundaries shipped with croplayer"
        )
        parser.add_argument("--level", choices=AdminLevel.values, default="province")
        parser.add_argument("--layer", help="layer name in a multi-layer file")
        parser.add_argument("--adcode-field")
        parser.add_argument("--name-field", help="Chinese name")
        parser.add_argument("--name-en-field", help="English name (default: pinyin)")
        parser.add_argument("--parent-field", help="adcode of the parent unit")
        parser.add_argument(
            "--reproject", action="store_true", help="transform a file in another CRS to EPSG:4326"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            if opts["default"]:
                reports = admin_units_load_default()
            else:
                if not opts["file"]:
                    raise CommandError("give a FILE or --default")
                level = AdminLevel(opts["level"])
                d = DEFAULT_FIELDS[level]
                fields = FieldMap(
                    adcode=opts["adcode_field"] or d["adcode"],
                    name=opts["name_field"] or d["name"],
                    parent=opts["parent_field"] or d["parent"],
                    name_en=opts["name_en_field"],
                )
                reports = [
                    admin_units_import(
                        path=Path(opts["file"]),
                        level=level,
                        fields=fields,
                        layer=opts["layer"],
                        reproject=opts["reproject"],
                    )
                ]
        except ImportError_ as e:
            raise CommandError(f"nothing imported: {e}") from e
        if opts["json"]:
            self.stdout.write(json.dumps([asdict(r) for r in reports], indent=2))
        else:
            for r in reports:
                self.stdout.write(f"{r.level}: {r.created} created, {r.updated} updated")
