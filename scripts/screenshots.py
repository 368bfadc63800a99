"""Screenshots of the app in English and Chinese for the docs, from a played demo.

    .venv/bin/python scripts/screenshots.py [--only workspace|screens] [--rounds 2] [--keep]
                                            [--reuse] [--var DIR] [--out docs]

Builds the demo (``load_demo``: real boundaries, synthetic Mapbox/Google imagery, labelled
samples, the annotator's queue) in a throwaway SQLite database under var/screenshots (or
``--var``), so the pictures show what a demo user sees and no real database is touched. Then,
with the services ``make demo`` runs (the private redis-server and a Celery worker), it plays
``--rounds`` tiny rounds (``demo_play``: the interpreters labelled from the ground truth, a tiny
model and a small time budget), so the dashboard has a history. It starts the ASGI server and,
with Playwright on Debian's Chromium, writes per language (``en``, ``zh-hans``):

- ``workspace``: as the demo annotator, the first block of the queue labelled through the
  page's own keys with a polygon selected (its provenance shows): ``docs/workspace-*.png``;
- ``screens``, as the demo lead, in ``docs/screenshots/``: the campaign overview with the lead's
  navigation (``overview-*``; the base map when ``BASEMAP_URL`` is set), the stopping dashboard
  after the rounds (``dashboard-*``: reasons, charts with one point per round and the threshold
  line), the comparisons page with its upload form (``comparisons-*``) and the workspace with a
  bow-tie drawn by clicking, its crossing marked and the repair offered
  (``workspace-crossing-*``).

Chinese needs a CJK font (Debian's fonts-noto-cjk, installed by scripts/setup.sh); without one
the zh-hans pictures would show empty boxes, so the script refuses to run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1440, "height": 900}
LANGUAGES = ("en", "zh-hans")
# The rounds page's "tiny" preset with a few more steps: minutes on a shared CPU, and a model
# that predicts something. The point is the dashboard's history, not the model.
ROUND_CONFIG = {
    "segmenter_engine": "auto", "segmenter_preset": "tiny", "iqa_preset": "tiny",
    "train_seconds": 30, "epochs": 4, "steps_per_epoch": 5, "batch_size": 2,
    "crop_size": 64, "warmup_steps": 0, "window": 128, "overlap": 16, "iqa_epochs": 1,
    "blocks_per_province_limit": 12, "batch_blocks": 8,
}


@dataclass
class Demo:
    """What the pictures need from the prepared demo."""

    annotator_block: int  # the annotator's first queued block, worked on
    logins: dict[str, str]


def _env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        CROPLAYER_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="croplayer_site.settings",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def _check_cjk_font() -> None:
    out = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout
    if not out.strip():
        sys.exit("no CJK font (fc-list :lang=zh is empty): install fonts-noto-cjk")


def _django(var: Path) -> None:
    os.environ.pop("DATABASE_URL", None)  # the throwaway SQLite database and private redis
    os.environ.pop("REDIS_URL", None)
    os.environ.update(_env(var))
    sys.path.insert(0, str(ROOT))
    # shapely's own GEOS must be loaded before SpatiaLite brings Debian's into the process (at
    # the first database connection): the other way round, shapely calls the wrong library.
    import django
    import shapely  # noqa: F401

    django.setup()


def _play(*, var: Path, rounds: int) -> None:
    """``demo_play`` with a Celery worker, as beside ``make demo``."""
    from annotation.services.demo import DEMO_SLUG
    from croplayer_site.processes import process_stop
    from learning.services.demo_player import demo_play
    from mapping.models import Campaign

    (var / "log").mkdir(parents=True, exist_ok=True)
    with (var / "log" / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "croplayer_site", "worker", "-B",
             "--schedule", str(var / "beat-schedule"), "-Q", "cpu,gpu",
             "--concurrency", "1", "--loglevel", "INFO",
             "--hostname", f"screenshots-{os.getpid()}@%h"],
            cwd=ROOT, env=_env(var), stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        t0 = time.monotonic()
        report = demo_play(campaign=Campaign.objects.get(slug=DEMO_SLUG), rounds=rounds,
                           config=ROUND_CONFIG, round_timeout=1200,
                           say=lambda m: print(f"  {m}", flush=True))
        print(f"played {len(report.rounds)} round(s) in {time.monotonic() - t0:.0f} s")
        failed = [r for r in report.rounds if r["state"] != "done"]
        if len(report.rounds) < rounds or failed:
            sys.exit(f"the rounds did not all finish: {report.rounds} (log {var}/log/worker.log)")
    finally:
        process_stop(worker, timeout=30)


def _logins_renew() -> dict[str, str]:
    """New passwords for the demo's people (a reused var folder's are not known)."""
    import secrets

    from django.contrib.auth import get_user_model

    logins = {}
    for user in get_user_model().objects.filter(username__in=("annotator", "lead")):
        logins[user.username] = secrets.token_urlsafe(12)
        user.set_password(logins[user.username])
        user.save(update_fields=["password"])
    return logins


def _prepare(*, var: Path, rounds: int, reuse: bool) -> Demo:
    """Migrate, load the demo, play the rounds, and make the annotator's first block look
    worked on. With ``reuse``, a demo already in the var folder is kept and only the rounds it
    lacks are played."""
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from django.contrib.auth import get_user_model

    from annotation.models import Assignment
    from annotation.services import assignment_start, coverage_label_set, verdict_label_set
    from annotation.services.demo import DEMO_SLUG, demo_load
    from annotation.services.labels import NothingToJudge
    from learning.models import Round
    from mapping.models import Campaign, ImagerySource
    from mapping.services.imagery import block_image_fetch

    if reuse and Campaign.objects.filter(slug=DEMO_SLUG).exists():
        from learning.services.round.lifecycle import round_active, round_cancel

        logins = _logins_renew()
        active = round_active(campaign=Campaign.objects.get(slug=DEMO_SLUG))
        if active is not None:  # left by an interrupted run
            round_cancel(rnd=active, user=None)
        rounds -= Round.objects.filter(campaign__slug=DEMO_SLUG, state="done").count()
    else:
        logins = demo_load().logins
    if rounds > 0:
        _play(var=var, rounds=rounds)
    annotator = get_user_model().objects.get(username="annotator")
    first = (
        Assignment.objects.filter(user=annotator, block__campaign__slug=DEMO_SLUG)
        .select_related("block")
        .order_by("priority", "pk")
        .first()
    )
    assert first is not None, "the demo gives the annotator a queue"
    block = first.block
    for src in ImagerySource.objects.all():
        block_image_fetch(block=block, source=src)  # Mapbox is there; Google for the swipe
    mapbox = ImagerySource.objects.get(slug="mapbox")
    if first.status == "todo":
        assignment_start(user=annotator, assignment=first)
    # A verdict judges the current model's prediction: only when it predicted this block.
    with contextlib.suppress(NothingToJudge):
        verdict_label_set(user=annotator, block=block, source=mapbox, verdict="tp")
    coverage_label_set(user=annotator, block=block, source=mapbox, coverage_type="planting")
    return Demo(annotator_block=block.pk, logins=logins)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(var: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        + ["croplayer_site.asgi:application"],
        cwd=ROOT,
        env=_env(var),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"daphne stopped: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.3)
    proc.terminate()
    sys.exit("daphne did not answer within 60 s")


def _login(browser: Any, url: str, user: str, password: str) -> Any:
    page = browser.new_page(viewport=VIEWPORT)
    # Generous: the dashboard's first view computes the savings simulation (tens of seconds
    # on a busy 2-core machine).
    page.set_default_timeout(300_000)
    page.goto(f"{url}/accounts/login/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page


def _language(page: Any, lang: str) -> None:
    with page.expect_navigation():
        page.select_option("select[name=language]", lang)


def _workspace(page: Any, *, url: str, block_id: int, out: Path, lang: str) -> Path:
    """The annotator's block with a polygon selected (its provenance in the panel)."""
    page.goto(f"{url}/annotate/blocks/{block_id}/")
    page.wait_for_selector("#ws[data-ready='1'][data-panel-ready='1']", timeout=30_000)
    page.wait_for_selector("#ws-map .leaflet-tile-loaded", timeout=30_000)
    page.wait_for_timeout(500)  # the last tiles fade in
    first = page.locator("#ws-map path.leaflet-interactive").first
    if first.count():
        first.click(force=True)
    path = out / f"workspace-{lang}.png"
    page.screenshot(path=str(path))
    return path


def _bowtie(page: Any) -> None:
    """Draw a bow-tie by clicking in the middle of the block: the workspace marks the crossing."""
    box = page.locator("#ws-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    d = min(box["width"], box["height"]) / 5
    page.keyboard.press("p")
    for dx, dy in ((-1, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
        page.mouse.move(cx + dx * d, cy + dy * d, steps=3)
        page.mouse.click(cx + dx * d, cy + dy * d)
        page.wait_for_timeout(80)
    page.wait_for_selector("#ws-problem:not([hidden])", timeout=10_000)


def _screens(page: Any, *, url: str, block_id: int, out: Path, lang: str) -> list[Path]:
    """The lead's overview, dashboard, comparisons and a bow-tie in the workspace."""
    from annotation.services.demo import DEMO_SLUG

    written = []
    shots = {
        "overview": f"/campaigns/{DEMO_SLUG}/",
        "dashboard": f"/campaigns/{DEMO_SLUG}/dashboard/",
        "comparisons": f"/campaigns/{DEMO_SLUG}/comparisons/",
    }
    for name, path in shots.items():
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)  # charts and maps draw
        target = out / f"{name}-{lang}.png"
        page.screenshot(path=str(target), full_page=name != "overview")
        written.append(target)
    page.goto(f"{url}/annotate/blocks/{block_id}/")
    page.wait_for_selector("#ws[data-ready='1']", timeout=30_000)
    page.wait_for_timeout(500)
    _bowtie(page)
    target = out / f"workspace-crossing-{lang}.png"
    page.screenshot(path=str(target))
    written.append(target)
    page.keyboard.press("Escape")
    return written


def _shoot(*, url: str, demo: Demo, sets: list[str], docs: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        if "workspace" in sets:
            page = _login(browser, url, "annotator", demo.logins["annotator"])
            page.on("pageerror", lambda e: errors.append(str(e)))
            for lang in LANGUAGES:
                _language(page, lang)
                written.append(_workspace(page, url=url, block_id=demo.annotator_block,
                                          out=docs, lang=lang))
            page.close()
        if "screens" in sets:
            (docs / "screenshots").mkdir(parents=True, exist_ok=True)
            page = _login(browser, url, "lead", demo.logins["lead"])
            page.on("pageerror", lambda e: errors.append(str(e)))
            for lang in LANGUAGES:
                _language(page, lang)
                written += _screens(page, url=url, block_id=demo.annotator_block,
                                    out=docs / "screenshots", lang=lang)
            page.close()
        browser.close()
    if errors:
        sys.exit(f"the pages raised errors: {errors}")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs",
                    help="docs folder (the screens go to its screenshots/)")
    ap.add_argument("--only", choices=("workspace", "screens"), action="append",
                    help="one set of pictures (default both)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="tiny rounds played first (the dashboard charts need 2)")
    ap.add_argument("--var", type=Path, default=ROOT / "var" / "screenshots",
                    help="the throwaway var folder (deleted first)")
    ap.add_argument("--keep", action="store_true", help="keep the var folder afterwards")
    ap.add_argument("--reuse", action="store_true",
                    help="keep a demo already in the var folder (with --keep: pictures again "
                         "without building and playing again)")
    args = ap.parse_args()
    sets = args.only or ["workspace", "screens"]
    var = args.var.resolve()
    _check_cjk_font()
    if not args.reuse:
        shutil.rmtree(var, ignore_errors=True)
    (var / "log").mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    _django(var)
    from django.conf import settings

    from croplayer_site import embedded_redis
    from croplayer_site.processes import process_stop

    redis = embedded_redis.start(settings.EMBEDDED_REDIS_SOCKET, log=var / "log" / "redis.log")
    server = None
    try:
        demo = _prepare(var=var, rounds=args.rounds, reuse=args.reuse)
        port = _free_port()
        server = _serve(var, port)
        paths = _shoot(url=f"http://127.0.0.1:{port}", demo=demo, sets=sets, docs=args.out)
    finally:
        process_stop(server, timeout=20)
        embedded_redis.stop(redis)
        if not args.keep:
            shutil.rmtree(var, ignore_errors=True)
    for p in paths:
        print(f"wrote {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    print(f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
