#!/usr/bin/env python
"""Soak test of the embedded default: rounds back to back, beat running, for N minutes.

    .venv/bin/python scripts/soak.py --minutes 30          # `make soak`
    .venv/bin/python scripts/soak.py --minutes 3           # `make soak-short` (CI)

In its own var folder (``var/soak`` unless ``CROPLAYER_VAR_DIR`` is set) it starts what
``make demo`` starts — the private redis-server on a unix socket, the demo data, one worker
with beat inside (``-B``, the reconcilers every minute) — then starts small rounds one after
another until the time is up, and watches the worker: it must stay alive, its log must
show no ``Unrecoverable error``, every round must finish ``done``, and the worker's liveness
key must stay fresh. Prints one JSON line with the result; exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Small, quick rounds: the point is the plumbing (broker, beat, worker), not the model.
ROUND_CONFIG = {
    "segmenter_preset": "tiny", "iqa_preset": "tiny", "epochs": 1, "steps_per_epoch": 2,
    "batch_size": 2, "crop_size": 64, "warmup_steps": 0, "window": 128, "overlap": 16,
    "iqa_epochs": 1, "blocks_per_province_limit": 4, "batch_blocks": 2,
    "select_per_province": 2, "stale_after_s": 60,
}
FATAL = ("Unrecoverable error", "JSONDecodeError")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    ap.add_argument("--province", type=int, default=420000)
    ap.add_argument("--round-timeout", type=float, default=900.0)
    args = ap.parse_args()

    os.environ.setdefault("CROPLAYER_VAR_DIR", "var/soak")
    os.environ.pop("REDIS_URL", None)  # the embedded default is what is soaked
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from croplayer_site import embedded_redis
    from croplayer_site.liveness import workers_alive
    from croplayer_site.processes import process_stop

    var = Path(settings.VAR_DIR)
    (var / "log").mkdir(parents=True, exist_ok=True)
    redis_proc = embedded_redis.start(settings.EMBEDDED_REDIS_SOCKET,
                                      log=var / "log" / "redis.log")
    call_command("migrate", "--noinput", verbosity=0)
    from mapping.models import Campaign

    if not Campaign.objects.filter(slug="demo-2020").exists():  # loaded once per var folder
        call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    log_path = var / "log" / "soak-worker.log"
    with log_path.open("wb") as fh:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "croplayer_site", "worker", "-B",
             "--schedule", str(var / "soak-beat-schedule"), "-Q", "cpu,gpu",
             "--concurrency", "2", "--loglevel", "INFO", "--hostname", f"soak-{os.getpid()}@%h"],
            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ),
        )
    result: dict[str, object] = {"minutes": args.minutes, "rounds_done": 0,
                                 "rounds_failed": [], "worker_alive": True,
                                 "fatal_log_lines": [], "liveness_gaps": 0, "round_seconds": []}
    try:
        result.update(_soak(args, worker, log_path, workers_alive))
    finally:
        process_stop(worker, timeout=30)
        embedded_redis.stop(redis_proc)
    ok = (result["worker_alive"] and not result["fatal_log_lines"]
          and not result["rounds_failed"] and result["rounds_done"])
    result["ok"] = bool(ok)
    print(json.dumps(result))
    return 0 if ok else 1


def _soak(args, worker, log_path: Path, workers_alive) -> dict[str, object]:
    from learning.models import Round
    from learning.services import round_start
    from mapping.models import Campaign

    campaign = Campaign.objects.get(slug="demo-2020")
    deadline = time.monotonic() + args.minutes * 60
    done, failed, seconds, gaps = 0, [], [], 0
    # Let the worker come up and beat before the first check.
    t0 = time.monotonic()
    while not workers_alive()["workers"] and time.monotonic() - t0 < 60:
        time.sleep(1)
    while time.monotonic() < deadline and worker.poll() is None:
        rnd = round_start(campaign=campaign, provinces=[args.province], user=None,
                          config=ROUND_CONFIG)
        started = time.monotonic()
        while True:
            time.sleep(2)
            rnd.refresh_from_db()
            if worker.poll() is not None or not rnd.is_active:
                break
            if not workers_alive()["workers"]:
                gaps += 1
            if time.monotonic() - started > args.round_timeout:
                break
        if rnd.state == "done":
            done += 1
            seconds.append(round(time.monotonic() - started, 1))
        else:
            failed.append({"number": rnd.number, "state": rnd.state,
                           "reason": rnd.failure_reason[:300]})
            if rnd.is_active:
                Round.objects.filter(pk=rnd.pk).update(state="cancelled")
        print(f"round {rnd.number}: {rnd.state} ({time.monotonic() - started:.0f} s)",
              file=sys.stderr)
    text = log_path.read_text(errors="replace")
    fatal = [line for line in text.splitlines() if any(f in line for f in FATAL)]
    return {"rounds_done": done, "rounds_failed": failed, "round_seconds": seconds,
            "worker_alive": worker.poll() is None, "fatal_log_lines": fatal[:5],
            "liveness_gaps": gaps}


if __name__ == "__main__":
    sys.exit(main())
