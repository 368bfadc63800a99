"""Why Mask2Former trained from scratch on a CPU stays near a constant guess: short runs.

Each variant trains the ``small`` preset for the same time budget on the real tiles (split by
scene group, as ``train-segmenter`` does) and is scored on the same validation tiles next to the
all-cropland IoU, with the distribution of the predicted cropland probability (a model that
learned nothing predicts about the same value everywhere).

    OMP_NUM_THREADS=1 .venv/bin/python bench/mask2former_diagnose.py \
        --real-data ../shared/data/real --steps 150 --variants overfit-base,overfit-noobj1 \
        --out bench/results/mask2former_diagnose.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learning.core.realdata import load_real, split_tiles  # noqa: E402
from learning.core.segmentation.inference import sliding_window_proba  # noqa: E402
from learning.core.segmentation.mask2former import (  # noqa: E402
    Mask2FormerEngine,
    Mask2FormerSegConfig,
)
from learning.core.segmentation.metrics import pixel_iou  # noqa: E402
from learning.core.segmentation.training import TrainOptions  # noqa: E402

SMALL = dict(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8), window_size=8,
             hidden_dim=64, encoder_layers=2, decoder_layers=3, num_queries=16,
             num_attention_heads=4, train_num_points=4096)
# name -> (config overrides, train option overrides)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "base": ({}, {}),  # the recipe: lr 3e-4, crop 128, batch 4
    "lr1e-3": ({}, {"lr": 1e-3}),
    "lr1e-3-q4": ({"num_queries": 4}, {"lr": 1e-3}),
    "lr1e-3-noobj1": ({"no_object_weight": 1.0}, {"lr": 1e-3}),
    "lr1e-3-cls5": ({"class_weight": 5.0, "num_queries": 4}, {"lr": 1e-3}),
    "lr1e-3-crop96-b8": ({"num_queries": 4}, {"lr": 1e-3, "crop_size": 96, "batch_size": 8}),
    "lr2e-3-q4-dec2": ({"num_queries": 4, "decoder_layers": 2}, {"lr": 2e-3}),
    "overfit-base": ({}, {}),
    "overfit-lr1e-3": ({}, {"lr": 1e-3}),
    "overfit-q4-noobj1": ({"num_queries": 4, "no_object_weight": 1.0}, {}),
    "overfit-noobj1": ({"no_object_weight": 1.0}, {}),
    "overfit-sem2": ({"semantic_weight": 2.0}, {}),
    "overfit-sem5-q4": ({"semantic_weight": 5.0, "num_queries": 4}, {}),
    "sem2-lr1e-3": ({"semantic_weight": 2.0}, {"lr": 1e-3}),
    "sem5-q4-lr1e-3": ({"semantic_weight": 5.0, "num_queries": 4}, {"lr": 1e-3}),
    "sem5-q4-lr1e-3-noobj1": ({"semantic_weight": 5.0, "num_queries": 4,
                               "no_object_weight": 1.0}, {"lr": 1e-3}),
}


def run(name: str, train: list[Any], val: list[Any], budget: float,
        steps: int | None) -> dict[str, Any]:
    cfg_over, opt_over = VARIANTS[name]
    cfg = Mask2FormerSegConfig(**{**SMALL, **cfg_over})
    # A fixed number of steps compares variants fairly on a shared (busy) CPU; a time budget
    # is what a user gets.
    schedule = ({"epochs": 1, "steps_per_epoch": steps} if steps
                else {"epochs": 1000, "steps_per_epoch": 50, "time_budget_s": budget})
    opts = TrainOptions(**{**schedule, "batch_size": 4, "crop_size": 128, "lr": 3e-4,
                           **opt_over})
    engine = Mask2FormerEngine(cfg, device="cpu")
    if name.startswith("overfit"):
        # Can it learn at all? The same 4 crops every step; scored on those crops.
        rng = np.random.default_rng(0)
        from learning.core.segmentation.data import CropSampler

        imgs, masks = CropSampler([(t.image, t.mask) for t in train], crop_size=96).draw(rng, 4)
        fixed = [(imgs[i], masks[i]) for i in range(4)]
        res = engine.train(fixed, options=opts.model_copy(update={"jitter": 0.0}))
        val = [type(train[0])(name=f"fixed{i}", dataset="fixed", group="f", image=im, mask=m)
               for i, (im, m) in enumerate(fixed)]
    else:
        res = engine.train([(t.image, t.mask) for t in train], options=opts)
    losses = res["step_losses"]
    per: dict[str, list[Any]] = {}
    const: dict[str, list[Any]] = {}
    probs = []
    for t in val:
        p = sliding_window_proba(t.image, engine.predict_proba, window=256, overlap=64)
        valid = t.mask != 255
        probs.append(p[valid])
        per.setdefault(t.dataset, []).append(((p >= 0.5).astype(np.uint8), t.mask))
        const.setdefault(t.dataset, []).append((np.ones_like(t.mask), t.mask))
    allp = np.concatenate(probs)
    # Where the flat output comes from: the class scores of the queries on one validation
    # image (unmatched queries should say "no object"; if they do not, their masks, summed
    # over many queries, blur every pixel towards the same value).
    with torch.no_grad():
        img = val[0].image[:96, :96][None]
        out = engine.model(pixel_values=engine._pixels(np.ascontiguousarray(img)))
        cls = out.class_queries_logits.softmax(-1)[0]
    crop = np.concatenate([t.mask[t.mask != 255] for t in val]) == 1
    return {
        "variant": name, "config": cfg_over, "options": opt_over,
        "steps": len(losses), "seconds": res["seconds"],
        "loss_first": float(np.mean(losses[:20])), "loss_last": float(np.mean(losses[-20:])),
        "iou": {ds: pixel_iou(v).iou for ds, v in per.items()},
        "all_cropland_iou": {ds: pixel_iou(v).iou for ds, v in const.items()},
        "prob": {"mean": float(allp.mean()), "std": float(allp.std()),
                 "q05": float(np.quantile(allp, 0.05)), "q95": float(np.quantile(allp, 0.95)),
                 "mean_on_cropland": float(allp[crop].mean()),
                 "mean_on_other": float(allp[~crop].mean()),
                 "share_above_half": float((allp >= 0.5).mean())},
        "query_no_object_prob": sorted(round(float(x), 3) for x in cls[:, -1]),
        "query_cropland_prob": [round(float(x), 3) for x in cls[:, 1]],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real-data", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=120)
    ap.add_argument("--steps", type=int, default=None, help="fixed steps instead of a budget")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("bench/results/mask2former_diagnose.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    train, val = split_tiles(load_real(args.real_data), val_fraction=0.2, seed=0)
    out = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    for name in args.variants.split(","):
        t0 = time.monotonic()
        r = run(name, train, val, args.budget, args.steps)
        r["wall_seconds"] = round(time.monotonic() - t0, 1)
        print(json.dumps(r), flush=True)
        out["runs"] = [x for x in out["runs"] if x["variant"] != name] + [r]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
