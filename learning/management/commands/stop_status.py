"""``manage.py stop_status --campaign SLUG [--json]``: each province's numbers and decision."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from learning.selectors import stop_status
from mapping.models import Campaign


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}%" if pct else f"{v:.3f}"


def _ci(row: dict[str, Any], name: str) -> str:
    lo, hi = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    return "" if lo is None or hi is None else f" [{lo:.3f}-{hi:.3f}]"


def _judged(row: dict[str, Any]) -> str:
    text = row.get("correctness_judged_text")
    return f" ({text})" if text else ""


class Command(BaseCommand):
    help = "Print the stop status of every province (the dashboard's numbers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", required=True)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        campaign = Campaign.objects.filter(slug=opts["campaign"]).first()
        if campaign is None:
            raise CommandError(f"no campaign {opts['campaign']!r}")
        data = stop_status(campaign=campaign)
        if opts["json"]:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
            return
        t = data["thresholds"]
        self.stdout.write(f"{campaign.slug}: IoU >= {t['iou_min']}, correctness >= "
                          f"{t['correctness_min']}, area >= {t['area_ratio_min']:.0%} of official,"
                          f" at most {t['max_supplementary_rounds']} supplementary rounds")
        for p in data["provinces"]:
            self.stdout.write(
                f"{p['adcode']} {p['province']:<14} IoU {_fmt(p['iou'])} (n={p['iou_samples']})"
                f"{_ci(p, 'iou')}"
                f"  correct {_fmt(p['correctness'])} (n={p['correctness_samples']})"
                f"{_ci(p, 'correctness')}"
                f"{_judged(p)}"
                f"  mapbox {_fmt(p['area_mapbox_pct'], True)} google "
                f"{_fmt(p['area_google_pct'], True)} ({p['official_status'] or '-'})"
                f"  rounds {p['supplementary_rounds']}/{p['max_supplementary_rounds']}"
                f"  {p['decision']}: {p['reason']}")
