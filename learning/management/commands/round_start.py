"""``manage.py round_start --campaign SLUG [--provinces ADCODES] [--config JSON] [--wait]``."""

from __future__ import annotations

import json
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from learning.models import Round
from learning.selectors import round_data
from learning.services import RoundConflict, RoundInputError, round_start
from mapping.models import Campaign


class Command(BaseCommand):
    help = "Start a learning round (a worker runs it); --wait follows it to the end."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True)
        parser.add_argument("--provinces", default="",
                            help="comma-separated adcodes; default: every province not done")
        parser.add_argument("--config", default="{}",
                            help='JSON, e.g. \'{"segmenter_preset": "tiny", "epochs": 2}\'')
        parser.add_argument("--config-file", default=None, help="a JSON file with the config")
        parser.add_argument("--user", default=None, help="who requests it (a username)")
        parser.add_argument("--wait", action="store_true", help="print progress until it ends")
        parser.add_argument("--timeout", type=float, default=None, help="seconds for --wait")
        parser.add_argument("--json", action="store_true", help="print the round as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        campaign = Campaign.objects.filter(slug=opts["campaign"]).first()
        if campaign is None:
            raise CommandError(f"no campaign {opts['campaign']!r}")
        try:
            if opts["config_file"]:
                with open(opts["config_file"], encoding="utf-8") as fh:
                    config = json.load(fh)
            else:
                config = json.loads(opts["config"])
        except (OSError, json.JSONDecodeError) as e:
            raise CommandError(f"config: {e}") from e
        try:
            provinces = [int(p) for p in opts["provinces"].split(",") if p.strip()] or None
        except ValueError as e:
            raise CommandError("--provinces must be comma-separated adcodes") from e
        user = None
        if opts["user"]:
            user = get_user_model().objects.filter(username=opts["user"]).first()
            if user is None:
                raise CommandError(f"no user {opts['user']!r}")
        try:
            rnd = round_start(campaign=campaign, provinces=provinces, user=user, config=config)
        except RoundConflict as e:
            raise CommandError(f"{e}: cancel it or wait (round {e.active.number})") from e
        except RoundInputError as e:
            raise CommandError(str(e)) from e
        self.stderr.write(f"round {rnd.number} of {campaign.slug} queued")
        if opts["wait"]:
            rnd = self._wait(rnd, opts["timeout"])
        if opts["json"]:
            self.stdout.write(json.dumps(round_data(rnd), indent=2, default=str))
        else:
            self.stdout.write(f"round {rnd.number}: {rnd.state}")
        if opts["wait"] and rnd.state != "done":
            raise CommandError(f"round {rnd.number} ended {rnd.state}: {rnd.failure_reason}")

    def _wait(self, rnd: Round, timeout: float | None) -> Round:
        start = time.monotonic()
        last = None
        while True:
            rnd.refresh_from_db()
            line = f"{rnd.state} {rnd.stage_done}/{rnd.stage_total}"
            if line != last:
                self.stderr.write(line)
                last = line
            if not rnd.is_active:
                return rnd
            if timeout is not None and time.monotonic() - start > timeout:
                raise CommandError(f"round {rnd.number} still {rnd.state} after {timeout:.0f} s")
            time.sleep(1.0)
