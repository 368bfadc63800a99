"""``manage.py product_import --campaign SLUG --name NAME --cropland-classes 40 FILE.tif``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from learning.product.core.compare.classes import ClassMapping
from learning.product.services.compare import ProductImportError, product_import
from mapping.models import Campaign


class Command(BaseCommand):
    help = (
        "Import an existing land-cover/cropland raster (any CRS and resolution) with the values "
        "that mean cropland, for comparison with the final map. All or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="GeoTIFF (or any raster GDAL reads) with a CRS")
        parser.add_argument("--campaign", required=True)
        parser.add_argument("--name", required=True, help="a slug, e.g. esa-worldcover-2020")
        parser.add_argument(
            "--cropland-classes",
            required=True,
            help="raster values meaning cropland: 40, or 10,11,12, or a range 1-3 (inclusive)",
        )
        parser.add_argument("--description", default="")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            campaign = Campaign.objects.get(slug=opts["campaign"])
        except Campaign.DoesNotExist as e:
            raise CommandError(f"no campaign {opts['campaign']!r}") from e
        try:
            product = product_import(
                campaign=campaign,
                name=opts["name"],
                path=Path(opts["file"]),
                cropland_classes=opts["cropland_classes"],
                description=opts["description"],
            )
        except ProductImportError as e:
            raise CommandError(f"nothing imported: {e}") from e
        classes = ClassMapping.from_json(product.cropland_classes)
        seen = np.asarray(product.sample_values, dtype=np.float64)
        unseen = [str(ClassMapping(values=(v,))) for v in classes.values if not np.any(seen == v)]
        unseen += [
            str(ClassMapping(ranges=((lo, hi),)))
            for lo, hi in classes.ranges
            if not np.any((seen >= lo) & (seen <= hi))
        ]
        out = {
            "id": product.pk,
            "name": product.name,
            "crs": product.crs,
            "width": product.width,
            "height": product.height,
            "resolution": [product.resolution_x, product.resolution_y],
            "bounds": product.bounds,
            "cropland_classes": product.cropland_classes,
            "classes_not_in_sample": unseen,
        }
        if opts["json"]:
            self.stdout.write(json.dumps(out, ensure_ascii=False, indent=2))
        else:
            self.stdout.write(
                f"imported product {product.name} (#{product.pk}): {product.width}x"
                f"{product.height} px in {product.crs}"
            )
        if unseen:
            self.stderr.write(
                f"warning: cropland class(es) {', '.join(unseen)} did not occur in a sample of "
                "the raster; check the class list"
            )
