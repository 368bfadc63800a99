"""Run benchmarks and write their results as JSON: ``python bench/run.py [name ...]``.

Every benchmark module ``bench/bench_<name>.py`` defines ``run(quick: bool) -> dict`` that
measures the fast path *and* its baseline in the same run and returns at least ``ratio``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> int:
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*", choices=names + [[]], help="benchmarks (default all)")
    ap.add_argument("--quick", action="store_true", help="smaller inputs, for CI smoke runs")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for JSON results")
    ap.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                    help="training seconds per engine (segmenter; default 600, --quick 30)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names or names:
        mod = importlib.import_module(f"bench.bench_{name}")
        kwargs = {}
        if args.budget is not None and "budget" in inspect.signature(mod.run).parameters:
            kwargs["budget"] = args.budget
        result = mod.run(quick=args.quick, **kwargs)
        result = {
            "benchmark": name,
            "when": dt.datetime.now(dt.UTC).isoformat(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            **result,
        }
        (out / f"{name}.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
