"""Screenshots of the annotation workspace in English and Chinese for the docs.

    .venv/bin/python scripts/screenshots.py [--out docs] [--keep]

Builds the demo (``load_demo``: real boundaries, synthetic Mapbox/Google imagery, labelled
samples, the annotator's queue) in a throwaway SQLite database under var/screenshots, so the
pictures show what a demo user sees and no real database is touched. Then it starts the ASGI
server, logs in as the demo annotator with Playwright on Debian's Chromium, opens the first
block of the annotator's queue, labels it through the page's own keys, selects a polygon (its
provenance shows) and writes docs/workspace-en.png and docs/workspace-zh-hans.png.

Chinese needs a CJK font (Debian's fonts-noto-cjk, installed by scripts/setup.sh); without one
the zh-hans picture would show empty boxes, so the script refuses to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1440, "height": 900}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        CROPLAYER_VAR_DIR=str(VAR),
        DJANGO_SETTINGS_MODULE="croplayer_site.settings",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def _check_cjk_font() -> None:
    out = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout
    if not out.strip():
        sys.exit("no CJK font (fc-list :lang=zh is empty): install fonts-noto-cjk")


def _prepare() -> tuple[int, dict[str, str]]:
    """Migrate, load the demo, and make the annotator's first block look worked on."""
    os.environ.update(_env())
    sys.path.insert(0, str(ROOT))
    # shapely's own GEOS must be loaded before SpatiaLite brings Debian's into the process (at
    # the first database connection): the other way round, shapely calls the wrong library.
    import django
    import shapely  # noqa: F401

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from django.contrib.auth import get_user_model

    from annotation.models import Assignment
    from annotation.services import assignment_start, coverage_label_set, verdict_label_set
    from mapping.models import Campaign, ImagerySource
    from mapping.services.demo import DEMO_SLUG, demo_load
    from mapping.services.imagery import block_image_fetch

    report = demo_load()
    campaign = Campaign.objects.get(slug=DEMO_SLUG)
    annotator = get_user_model().objects.get(username="annotator")
    first = (
        Assignment.objects.filter(user=annotator, block__campaign=campaign)
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
    verdict_label_set(user=annotator, block=block, source=mapbox, verdict="tp")
    coverage_label_set(user=annotator, block=block, source=mapbox, coverage_type="planting")
    return block.pk, report.logins


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        + ["croplayer_site.asgi:application"],
        cwd=ROOT,
        env=_env(),
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


def _shoot(*, base: str, block_id: int, password: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", "annotator")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for lang in ("en", "zh-hans"):
            with page.expect_navigation():
                page.select_option("select[name=language]", lang)
            page.goto(f"{base}/annotate/blocks/{block_id}/")
            page.wait_for_selector("#ws[data-ready='1'][data-panel-ready='1']", timeout=30_000)
            page.wait_for_selector("#ws-map .leaflet-tile-loaded", timeout=30_000)
            page.wait_for_timeout(500)  # the last tiles fade in
            first = page.locator("#ws-map path.leaflet-interactive").first
            if first.count():
                first.click(force=True)  # selected: its provenance shows in the panel
            path = out / f"workspace-{lang}.png"
            page.screenshot(path=str(path))
            written.append(path)
        browser.close()
        if errors:
            sys.exit(f"the page raised errors: {errors}")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--keep", action="store_true", help="keep var/screenshots afterwards")
    args = ap.parse_args()
    _check_cjk_font()
    shutil.rmtree(VAR, ignore_errors=True)
    VAR.mkdir(parents=True)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    block_id, logins = _prepare()
    port = _free_port()
    server = _serve(port)
    try:
        paths = _shoot(
            base=f"http://127.0.0.1:{port}",
            block_id=block_id,
            password=logins["annotator"],
            out=args.out,
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
        if not args.keep:
            shutil.rmtree(VAR, ignore_errors=True)
    for p in paths:
        print(f"wrote {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    print(f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
