"""``manage.py compare_product --campaign SLUG --product NAME [--final-raster F.tif …] [--json]``.

Without a ``--final-…`` option the product is compared with the campaign's final map (every
integrated block of the converged provinces, as the integration decisions select it).

Runs the comparison synchronously in this process (with a progress bar on stderr) and stores
it as a comparison run whose report page, CSV and plots the web app shows.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from learning.product.models import CroplandProduct
from learning.product.services.compare import ComparisonError, comparison_create, comparison_execute
from mapping.management.commands._progress import progress_bar
from mapping.models import Campaign, JobStatus


class Command(BaseCommand):
    help = (
        "Compare an imported product with the final map: pixel IoU, block area fraction and "
        "edge density against slope, province areas against the official statistics."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True)
        parser.add_argument("--product", required=True, help="the product's name")
        final = parser.add_mutually_exclusive_group()
        final.add_argument(
            "--final-raster",
            nargs="+",
            metavar="FILE",
            help="final map GeoTIFF/COG file(s), 1 = cropland, 0 = other (e.g. one per province)",
        )
        final.add_argument(
            "--final-predictions",
            metavar="MODEL_VERSION_ID:SOURCE",
            help="per-block masks of one segmenter version on one source, e.g. 12:mapbox",
        )
        parser.add_argument("--provinces", nargs="*", type=int, default=None, help="adcodes")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        try:
            campaign = Campaign.objects.get(slug=opts["campaign"])
        except Campaign.DoesNotExist as e:
            raise CommandError(f"no campaign {opts['campaign']!r}") from e
        try:
            product = CroplandProduct.objects.get(campaign=campaign, name=opts["product"])
        except CroplandProduct.DoesNotExist as e:
            raise CommandError(
                f"campaign {campaign.slug} has no product {opts['product']!r}"
            ) from e
        spec: dict[str, object]
        if opts["final_raster"]:
            spec = {"kind": "raster", "paths": opts["final_raster"]}
        elif not opts["final_predictions"]:
            spec = {"kind": "integration"}
        else:
            mv, sep, source = opts["final_predictions"].partition(":")
            if not (sep and mv.isdigit() and source):
                raise CommandError(
                    "--final-predictions takes MODEL_VERSION_ID:SOURCE, e.g. 12:mapbox"
                )
            spec = {"kind": "predictions", "model_version": int(mv), "source": source}
        try:
            comparison = comparison_create(
                campaign=campaign,
                product=product,
                final_map=spec,
                province_adcodes=opts["provinces"],
            )
        except ComparisonError as e:
            raise CommandError(str(e)) from e
        update, close = progress_bar(enabled=not opts["no_progress"] and not opts["json"])
        try:
            comparison = comparison_execute(comparison_id=comparison.pk, progress=update)
        finally:
            close()
        if comparison.status != JobStatus.DONE:
            raise CommandError(f"comparison #{comparison.pk} failed: {comparison.failure_reason}")
        r = comparison.results
        if opts["json"]:
            self.stdout.write(json.dumps({"id": comparison.pk, **r}, ensure_ascii=False, indent=2))
            return
        iou = r["pixel"]["iou"]
        self.stdout.write(
            f"comparison #{comparison.pk}: {r['blocks_compared']} blocks, pixel IoU "
            f"{'-' if iou is None else f'{iou:.4f}'}; provinces within ±10 %: final map "
            f"{r['final_within_10pct']}, product {r['product_within_10pct']} of "
            f"{r['provinces_judged']}"
        )
