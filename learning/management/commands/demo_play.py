"""``manage.py demo_play --campaign demo-2020 --rounds N [--json]``: play the demo's
interpreters from its ground truth, run the rounds, export what converges."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from learning.services.demo_player import DemoPlayError, demo_play
from mapping.models import Campaign


class Command(BaseCommand):
    help = (
        "Play the synthetic demo: label the blocks each round selects from the ground truth "
        "(polygons, verdicts, coverage types, integration decisions, as user demo-player), "
        "start the round and wait for it (a Celery worker must run: make demo starts one); "
        "export the products of provinces that converge."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", default="demo-2020")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--config", default="{}",
                            help="JSON merged into each round's config")
        parser.add_argument("--round-timeout", type=float, default=3600.0)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        campaign = Campaign.objects.filter(slug=opts["campaign"]).first()
        if campaign is None:
            raise CommandError(f"no campaign {opts['campaign']!r} (run load_demo first)")
        try:
            config = json.loads(opts["config"])
        except json.JSONDecodeError as e:
            raise CommandError(f"--config: {e}") from e
        if not isinstance(config, dict):
            raise CommandError("--config must be a JSON object")
        if opts["rounds"] < 1:
            raise CommandError("--rounds must be at least 1")

        t0 = time.monotonic()

        def say(message: str) -> None:
            print(f"[{time.monotonic() - t0:6.0f} s] {message}", file=sys.stderr, flush=True)

        try:
            report = demo_play(campaign=campaign, rounds=opts["rounds"], config=config, say=say,
                               round_timeout=opts["round_timeout"])
        except DemoPlayError as e:
            raise CommandError(str(e)) from e
        if opts["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
            return
        for r in report.rounds:
            for name, p in r["provinces"].items():
                self.stdout.write(
                    f"round {r['number']} {name:<10} {p['decision']:<10} IoU {p['iou']} "
                    f"correctness {p['correctness']} area {p['area_ratio']}")
        self.stdout.write(f"converged: {', '.join(report.converged) or '-'}")
        for e in report.exports:
            self.stdout.write(f"  {e['kind']}: {e['path']}")
        self.stdout.write(f"{report.wall_seconds:.0f} s")
