"""Screenshots of the screens fixed for issue 17, in English and Chinese, for docs/screenshots/.

    .venv/bin/python scripts/screenshots_issue17.py [--out docs/screenshots] [--keep]

Builds the demo in a throwaway database (as scripts/screenshots.py does, in
var/screenshots-issue17), starts
the ASGI server and, with Playwright on Debian's Chromium, logs in as the demo lead and saves,
per language: the campaign overview (the lead's navigation; the base map when BASEMAP_URL is
set in the environment), the stopping dashboard, the comparisons page with its upload form, and
the workspace with a bow-tie drawn by clicking (the crossing marked, the repair offered).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import screenshots as base  # noqa: E402 (the demo build, server and font check are shared)

OUT = base.ROOT / "docs" / "screenshots"
# A folder of its own, so that scripts/screenshots.py may run at the same time.
base.VAR = base.ROOT / "var" / "screenshots-issue17"


def _prepare() -> tuple[int, dict[str, str]]:
    """Migrate, load the demo; the annotator's first queued block (imagery fetched)."""
    import os

    os.environ.update(base._env())
    sys.path.insert(0, str(base.ROOT))
    import django
    import shapely  # noqa: F401 (shapely's GEOS before SpatiaLite's, see scripts/screenshots.py)

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from django.contrib.auth import get_user_model

    from annotation.models import Assignment
    from mapping.models import ImagerySource
    from mapping.services.demo import DEMO_SLUG, demo_load
    from mapping.services.imagery import block_image_fetch

    report = demo_load()
    first = (
        Assignment.objects.filter(
            user=get_user_model().objects.get(username="annotator"), block__campaign__slug=DEMO_SLUG
        )
        .select_related("block")
        .order_by("priority", "pk")
        .first()
    )
    for src in ImagerySource.objects.all():
        block_image_fetch(block=first.block, source=src)
    return first.block_id, report.logins


def _bowtie(page) -> None:
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


def _shoot(*, url: str, block_id: int, password: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from mapping.services.demo import DEMO_SLUG

    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=base.CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport=base.VIEWPORT)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/accounts/login/")
        page.fill("input[name=username]", "lead")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/")
        for lang in ("en", "zh-hans"):
            with page.expect_navigation():
                page.select_option("select[name=language]", lang)
            shots = {
                "overview": f"/campaigns/{DEMO_SLUG}/",
                "dashboard": f"/campaigns/{DEMO_SLUG}/dashboard/",
                "comparisons": f"/campaigns/{DEMO_SLUG}/comparisons/",
            }
            for name, path in shots.items():
                page.goto(url + path)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(500)
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
        browser.close()
        if errors:
            sys.exit(f"the pages raised errors: {errors}")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--keep", action="store_true", help="keep var/screenshots afterwards")
    args = ap.parse_args()
    base._check_cjk_font()
    shutil.rmtree(base.VAR, ignore_errors=True)
    base.VAR.mkdir(parents=True)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    block_id, logins = _prepare()
    port = base._free_port()
    server = base._serve(port)
    try:
        paths = _shoot(
            url=f"http://127.0.0.1:{port}",
            block_id=block_id,
            password=logins["lead"],
            out=args.out,
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
        if not args.keep:
            shutil.rmtree(base.VAR, ignore_errors=True)
    for p in paths:
        print(f"wrote {p.relative_to(base.ROOT) if p.is_relative_to(base.ROOT) else p}")
    print(f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
