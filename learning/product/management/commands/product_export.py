"""``manage.py product_export --campaign SLUG --province ADCODE [--national] [--integrate]``."""

from __future__ import annotations

import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from learning.product.models import ExportKind, ProductExport
from learning.product.services.exports import ProductExportError, product_export_start
from learning.product.services.integration import IntegrationError, integration_run
from mapping.models import AdminLevel, AdminUnit, Campaign, JobStatus

FINAL = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class Command(BaseCommand):
    help = (
        "Export the final cropland product of converged provinces as background jobs (Celery "
        "`cpu` queue): per province a COG, a GeoPackage and county shapefiles in a tar.gz; "
        "with --national the area-fraction map (GeoTIFF + PNG)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True)
        parser.add_argument(
            "--province", action="append", default=[], help="province adcode (repeat for several)"
        )
        parser.add_argument(
            "--national", action="store_true", help="also export the national area-fraction map"
        )
        parser.add_argument(
            "--integrate",
            action="store_true",
            help="first decide the blocks with the current integration model",
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="queue the jobs and return without waiting"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=0,
            help="give up waiting after this many seconds (0: no limit)",
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            campaign = Campaign.objects.get(slug=opts["campaign"])
        except Campaign.DoesNotExist as e:
            raise CommandError(f"no campaign {opts['campaign']!r}") from e
        provinces = []
        for code in opts["province"]:
            try:
                provinces.append(AdminUnit.objects.get(level=AdminLevel.PROVINCE, adcode=int(code)))
            except (ValueError, AdminUnit.DoesNotExist) as e:
                raise CommandError(f"no province with adcode {code!r}") from e
        if not provinces and not opts["national"]:
            raise CommandError("name at least one --province, or --national")
        integration = None
        if opts["integrate"]:
            try:
                integration = integration_run(
                    campaign=campaign,
                    province_adcodes=[p.adcode for p in provinces] or None,
                ).as_dict()
            except IntegrationError as e:
                raise CommandError(f"integration: {e}") from e
        jobs = []
        try:
            for p in provinces:
                jobs.append(
                    product_export_start(campaign=campaign, kind=ExportKind.PROVINCE, province=p)
                )
            if opts["national"]:
                jobs.append(product_export_start(campaign=campaign, kind=ExportKind.NATIONAL_AF))
        except ProductExportError as e:
            raise CommandError(str(e)) from e
        if not opts["no_wait"]:
            for job in jobs:
                self._wait(job, opts["timeout"], quiet=opts["json"])
        rows = [ProductExport.objects.get(pk=j.pk) for j in jobs]
        out = [
            {
                "id": r.pk,
                "kind": r.kind,
                "province": r.province.adcode if r.province else None,
                "status": r.status,
                "folder": r.folder,
                "files": r.files,
                "summary": r.summary,
                "failure_reason": r.failure_reason,
            }
            for r in rows
        ]
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    {"integration": integration, "exports": out}, indent=2, ensure_ascii=False
                )
            )
        else:
            for r in out:
                self.stdout.write(
                    f"export {r['id']} ({r['kind']} {r['province'] or ''}): "
                    f"{r['status']} {r['folder']} {r['failure_reason']}"
                )
                for name in r["files"]:
                    self.stdout.write(f"  {name}")
        if any(r.status == JobStatus.FAILED for r in rows):
            raise CommandError(
                "an export failed: "
                + "; ".join(
                    f"#{r.pk}: {r.failure_reason}" for r in rows if r.status == JobStatus.FAILED
                )
            )

    def _wait(self, job: ProductExport, timeout: float, quiet: bool) -> None:
        t0 = time.monotonic()
        bar = tqdm(total=job.total, desc=f"export {job.pk}", file=sys.stderr, disable=quiet)
        while True:
            job.refresh_from_db()
            bar.n = min(job.done, job.total)
            bar.set_postfix_str(job.stage)
            bar.refresh()
            if job.status in FINAL:
                break
            if timeout and time.monotonic() - t0 > timeout:
                bar.close()
                raise CommandError(
                    f"gave up waiting for export {job.pk} after {timeout:.0f} s "
                    f"(status {job.status}): is a Celery worker running on the "
                    "cpu queue?"
                )
            time.sleep(0.3)
        bar.close()
