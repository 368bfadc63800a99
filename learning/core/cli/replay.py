"""``python -m learning replay``: the labelling loop replayed on real labelled tiles."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from learning.core.cli import CliError, command

# Where the result is saved under the var dir, and where the dashboard's savings report reads
# it (a file, not a database row: the replay runs outside any campaign, without Django).
REPLAY_FILE = Path("replay") / "latest.json"


def default_save_path() -> Path:
    return Path(os.environ.get("CROPLAYER_VAR_DIR") or "var") / REPLAY_FILE


def configure_replay(p: argparse.ArgumentParser) -> None:
    p.add_argument("--real-data", type=Path, required=True,
                   help="the real/ folder (gid15/, loveda/ with manifest.csv)")
    p.add_argument("--datasets", default="gid15,loveda", help="comma-separated")
    p.add_argument("--engine", default=None,
                   help="segmentation engine (default: the one for this hardware)")
    p.add_argument("--preset", default="default", help="engine config preset (e.g. tiny)")
    p.add_argument("--initial", type=int, default=8, help="labelled tiles to start from")
    p.add_argument("--per-round", type=int, default=8, help="tiles each arm adds per round")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                   help="training CPU seconds per round and arm (same for both; one torch "
                        "thread, so wall seconds on an idle machine, and fair on a busy one)")
    p.add_argument("--steps", type=int, default=None,
                   help="train a fixed number of steps per round and arm instead of --budget "
                        "(equal work for both arms on a busy, shared CPU)")
    p.add_argument("--candidates", type=int, default=None,
                   help="score at most this many unlabelled tiles per round (default: all)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of each dataset held out (whole scene groups)")
    p.add_argument("--split", choices=("folds", "scenes"), default="folds",
                   help="folds: fold (seed mod k) of k = round(1/val-fraction) scene-group "
                        "folds, as bench segmenter validates (every kind of cropland on both "
                        "sides); scenes: whole land-cover folders held out (the validation "
                        "may then hold almost no cropland)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=1,
                   help="replay this many seeds (--seed, --seed+1, …: each its own starting "
                        "set, picks and, with --split folds, validation fold) and report the "
                        "mean per round beside each seed and the paired difference")
    p.add_argument("--workers", type=int, default=1,
                   help="seeds run side by side in this many processes (one torch thread each; "
                        "budgets are CPU seconds, so results do not depend on it)")
    p.add_argument("--save", type=Path, default=None,
                   help=f"where to write the result JSON (default: $CROPLAYER_VAR_DIR/"
                        f"{REPLAY_FILE}, read by the dashboard)")
    p.add_argument("--no-save", action="store_true", help="do not write the result file")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG of IoU per round")


def run_replay(args: argparse.Namespace) -> dict[str, Any]:
    from learning.core.replay import plot, replay_combine

    if not args.real_data.is_dir():
        raise CliError(f"real data folder {args.real_data} does not exist")
    if args.seeds < 1 or args.workers < 1:
        raise CliError("--seeds and --workers must be at least 1")
    _options(args, args.seed)  # refuse bad options before any process starts
    if args.split == "folds" and not 0 < args.val_fraction < 1:
        raise CliError("--val-fraction must be between 0 and 1")
    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.workers > 1 and len(seeds) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(args.workers, len(seeds)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = list(pool.map(_run_seed, [args] * len(seeds), seeds))
    else:
        runs = [_run_seed(args, s) for s in seeds]
    try:
        combined = replay_combine(runs)
    except ValueError as e:
        raise CliError(str(e)) from None
    first = runs[0]
    result = {"engine": first["engine"], "data": first["data"],
              "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **combined}
    if len(runs) > 1:
        result["data"] = {**first["data"],
                          "split": "; ".join(f"seed {s}: {r['data']['split']}"
                                             for s, r in zip(seeds, runs, strict=True))}
    if not args.no_save:
        dest = args.save or default_save_path()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, dest)
        result["saved"] = str(dest)
    if args.plot is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(result, args.plot)
        result["plot"] = str(args.plot)
    return result


def _options(args: argparse.Namespace, seed: int) -> tuple[str, Any, Any]:
    """The engine name, the replay config and the training options for ``seed``."""
    from pydantic import ValidationError

    from learning.core.replay import ReplayConfig
    from learning.core.segmentation.engine import (
        default_engine_name,
        engine_names,
        engine_train_defaults,
    )
    from learning.core.segmentation.training import TrainOptions

    name = args.engine or default_engine_name()
    if name not in engine_names():
        raise CliError(f"unknown engine {name!r}; known: {', '.join(engine_names())}")
    try:
        config = ReplayConfig(initial=args.initial, per_round=args.per_round,
                              rounds=args.rounds, seed=seed, candidates=args.candidates)
        defaults = engine_train_defaults(name)
        schedule: dict[str, Any] = (
            {"epochs": 1, "steps_per_epoch": args.steps, "time_budget_s": None}
            if args.steps is not None
            else {"epochs": 100_000, "steps_per_epoch": 50, "time_budget_s": args.budget,
                  "budget_clock": "cpu"})
        options = TrainOptions(**{**defaults, **schedule, "seed": seed})
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
                        for err in e.errors())
        raise CliError(f"bad replay option: {bad}") from None
    window = int(getattr(_engine_class(name), "window", 256))
    return name, config.model_copy(update={"window": window, "overlap": window // 4}), options


def _run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One seed's replay (in a worker process when ``--workers`` > 1)."""
    import torch

    from learning.core.realdata import load_real, scene_folds, split_tiles
    from learning.core.replay import replay
    from learning.core.segmentation.engine import engine_build, engine_config

    torch.set_num_threads(1)
    name, config, options = _options(args, seed)
    tiles = load_real(args.real_data, datasets=[d for d in args.datasets.split(",") if d])
    if args.split == "folds":
        k = max(2, round(1 / args.val_fraction)) if 0 < args.val_fraction < 1 else 0
        if not k:
            raise CliError("--val-fraction must be between 0 and 1")
        pool, validation = scene_folds(tiles, k=k)[seed % k]
        split = f"scene-group fold {seed % k + 1} of {k} (as bench segmenter)"
    else:
        pool, validation = split_tiles(tiles, val_fraction=args.val_fraction, seed=seed)
        split = "whole scene groups, per dataset"

    def make() -> Any:
        return engine_build(name, preset=args.preset, init_seed=seed)

    def progress(arm: str, p: dict[str, Any]) -> None:
        if not args.no_progress:
            print(f"replay seed {seed} {arm} round {p['round']}: {p['labels']} tiles, "
                  f"IoU {p['iou']:.3f}", file=sys.stderr, flush=True)

    result = replay(pool, validation, make_engine=make, train_options=options, config=config,
                    on_round=progress)
    cfg = engine_config(name, preset=args.preset, init_seed=seed)
    return {
        "engine": {"name": name, "preset": args.preset,
                   "config": cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else {}},
        "data": {"real_data": str(args.real_data), "datasets": args.datasets.split(","),
                 "val_fraction": args.val_fraction, "split": split},
        **result,
    }


def _engine_class(name: str) -> Any:
    from learning.core.segmentation.engine import get_engine

    return get_engine(name)


command("replay", help="replay the labelling loop on real labelled tiles: app selection vs "
                       "random, IoU per round")(configure_replay)
