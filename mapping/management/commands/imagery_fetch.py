"""``manage.py imagery_fetch --campaign SLUG --source SLUG [--provinces 420000,...]``."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from mapping.models import (
    BlockImage,
    BlockImageStatus,
    Campaign,
    FetchRun,
    ImagerySource,
    JobStatus,
)
from mapping.selectors import fetch_run_counts
from mapping.services.imagery import ImageryConfigError, fetch_run_start
from mapping.tasks import fetch_batch


class Command(BaseCommand):
    help = (
        "Assemble block images from a source as Celery tasks (run `celery -A croplayer_site "
        "worker` on as many machines as you like). Resumable: finished blocks are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True)
        parser.add_argument(
            "--source", required=True, action="append", help="source slug (repeat for several)"
        )
        parser.add_argument(
            "--provinces", default="", help="comma-separated province adcodes (default: all)"
        )
        parser.add_argument("--limit", type=int, help="at most this many blocks per source")
        parser.add_argument(
            "--no-wait", action="store_true", help="queue the tasks and return without waiting"
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
        try:
            provinces = [int(p) for p in opts["provinces"].split(",") if p.strip()]
        except ValueError as e:
            raise CommandError(
                "--provinces takes comma-separated adcodes like 420000,430000"
            ) from e
        results = []
        for slug in opts["source"]:
            try:
                source = ImagerySource.objects.get(slug=slug)
            except ImagerySource.DoesNotExist as e:
                raise CommandError(f"no imagery source {slug!r}") from e
            try:
                start = fetch_run_start(
                    campaign=campaign,
                    source=source,
                    province_adcodes=provinces or None,
                    limit=opts["limit"],
                )
            except ImageryConfigError as e:
                raise CommandError(f"source {slug}: {e}") from e
            run = start.run
            batches = start.batches
            transaction.on_commit(lambda b=batches, r=run.pk: [fetch_batch.delay(r, x) for x in b])
            results.append(run)
            if not opts["no_wait"]:
                self._wait(run, opts["timeout"], quiet=opts["json"])
        summary = [self._summary(run) for run in results]
        if opts["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            for s in summary:
                self.stdout.write(
                    f"{s['source']}: {s['ok']} ok, {s['missing']} missing, "
                    f"{s['failed']} failed, {s['pending']} pending of {s['total']}"
                )
                for reason, n in s["failures_by_reason"].items():
                    self.stdout.write(f"  {n} x {reason}")

    def _wait(self, run: FetchRun, timeout: float, quiet: bool) -> None:
        t0 = time.monotonic()
        bar = tqdm(
            total=run.total,
            desc=f"fetch {run.source.slug}",
            file=sys.stderr,
            disable=quiet or run.total == 0,
        )
        while True:
            counts = fetch_run_counts(run=run)
            finished = counts["ok"] + counts["missing"] + counts["failed"]
            bar.n = min(finished, run.total)
            bar.set_postfix(failed=counts["failed"], missing=counts["missing"])
            bar.refresh()
            if counts["pending"] == 0:
                break
            if timeout and time.monotonic() - t0 > timeout:
                bar.close()
                raise CommandError(
                    f"gave up waiting after {timeout:.0f} s with {counts['pending']} blocks "
                    "pending: "
                    "is a Celery worker running? Re-run the command to resume."
                )
            time.sleep(0.5)
        bar.close()
        FetchRun.objects.filter(pk=run.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            status=JobStatus.DONE
        )

    def _summary(self, run: FetchRun) -> dict:
        counts = fetch_run_counts(run=run)
        failed = BlockImage.objects.filter(
            source=run.source,
            block__campaign=run.campaign,
            status__in=[BlockImageStatus.FAILED, BlockImageStatus.MISSING],
        )
        if run.provinces:
            failed = failed.filter(block__province__adcode__in=run.provinces)
        reasons = Counter(f"{s}: {r}" for s, r in failed.values_list("status", "reason"))
        return {
            "run": run.pk,
            "source": run.source.slug,
            "total": run.total,
            **counts,
            "failures_by_reason": dict(reasons.most_common(20)),
        }
