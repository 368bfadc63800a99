"""Sub-commands for the image-quality classifier and the cropland segmenter."""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from learning.core.cli import CliError, Progress, command, progress_iter

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
PRESETS = ("tiny", "small", "swin-t")


def _read_image(path: Path) -> npt.NDArray[np.uint8]:
    from learning.core.realdata import _read_rgb

    return _read_rgb(path)


def _read_pairs(images: Path, masks: Path) -> list[tuple[str, npt.NDArray[np.uint8],
                                                         npt.NDArray[np.uint8]]]:
    """(name, image, mask) for every image with a mask of the same stem."""
    from learning.core.realdata import _read_mask

    for d in (images, masks):
        if not d.is_dir():
            raise CliError(f"{d} is not a folder")
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = []
    for p in sorted(images.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem not in by_stem:
            raise CliError(f"image {p.name} has no mask in {masks}")
        img, m = _read_image(p), _read_mask(by_stem[p.stem])
        if m.shape != img.shape[:2]:
            raise CliError(f"{p.name}: mask {m.shape} does not match image {img.shape[:2]}")
        pairs.append((p.stem, img, m))
    if not pairs:
        raise CliError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    return pairs


# --------------------------------------------------------------------------- train-segmenter

# TrainOptions for engines that do not state their own (Mask2Former's earlier CLI defaults).
FALLBACK_TRAIN = {"batch_size": 8, "crop_size": 128, "lr": 3e-4}
M2F_SMALL = dict(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8), window_size=8,
                 hidden_dim=64, encoder_layers=2, decoder_layers=3, num_queries=16,
                 num_attention_heads=4, train_num_points=4096)


def _engine_name(args: argparse.Namespace) -> str:
    from learning.core.segmentation.engine import default_engine_name, get_engine

    name = args.engine or default_engine_name()
    get_engine(name)  # ValueError lists the known engines
    return str(name)


def _seg_config(args: argparse.Namespace, engine: str) -> Any:
    """The engine's config: a JSON file, or a preset (``small`` is each engine's CPU recipe:
    Mask2Former's reduced Swin, the U-Net's default; ``swin-t`` is Mask2Former's full size)."""
    from learning.core.segmentation.engine import engine_config_class

    cfg_cls = engine_config_class(engine)
    preset = args.preset or "small"
    if args.config:
        data = _config_json(Path(args.config))
    elif preset == "tiny":
        data = cfg_cls.tiny().model_dump()
    elif preset == "small" and engine == "mask2former":
        data = dict(M2F_SMALL)
    elif preset == "swin-t" and engine != "mask2former":
        raise CliError(f"preset swin-t is a Mask2Former size; engine {engine} has tiny, small")
    else:
        data = {}
    if args.pretrained:
        data["pretrained_path"] = args.pretrained
    data["init_seed"] = args.seed
    return _config_build(cfg_cls, data, args.config)


def _config_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CliError(f"config file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CliError(f"config file {path} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise CliError(f"config file {path} must hold a JSON object")
    return data


def _config_build(cls: Any, data: dict[str, Any], where: str | None) -> Any:
    """The config model, or one CliError line naming every bad key (not pydantic's table)."""
    from pydantic import ValidationError

    try:
        return cls(**data)
    except ValidationError as e:
        bad = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'config'}: {err['msg']}"
                        for err in e.errors())
        raise CliError(f"bad config{f' in {where}' if where else ''}: {bad}") from None


def configure_train_segmenter(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--real-data", type=Path, help="the real/ folder (gid15/, loveda/)")
    src.add_argument("--images", type=Path, help="folder of training images (with --masks)")
    p.add_argument("--masks", type=Path, help="folder of masks named like the images")
    p.add_argument("--out", type=Path, default=Path("var/bundles/segmenter"),
                   help="bundle folder to write")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="checkpoint folder; rerunning with the same one resumes")
    p.add_argument("--engine", default=None, metavar="NAME",
                   help="segmentation engine: unet or mask2former (default: the one that learns "
                        "best on this hardware: mask2former with CUDA, unet on a CPU)")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="model size (default small: the engine's CPU recipe)")
    p.add_argument("--config", help="JSON file with the engine's config (overrides --preset)")
    p.add_argument("--pretrained",
                   help="local weights to start from: a .safetensors/.pt state dict, or (for "
                        "mask2former) a Hugging Face checkpoint folder (config.json + "
                        "model.safetensors) of a Mask2Former, re-headed to our classes, or of a "
                        "Swin backbone; what loaded is saved in the bundle's pretrained.json")
    p.add_argument("--epochs", type=int, default=None,
                   help="default 20, or unlimited with --time-budget")
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=None, help="default: the engine's")
    p.add_argument("--crop-size", type=int, default=None, help="default: the engine's")
    p.add_argument("--lr", type=float, default=None, help="default: the engine's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=None,
                   help="hold out this fraction for validation (whole scene groups with "
                        "--real-data). Default: 0 with --real-data, so the bundle learns from "
                        "every labelled tile (bench/run.py segmenter cross-validates the "
                        "recipe); 0.2 with --images")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop training after this many seconds")


def run_train_segmenter(args: argparse.Namespace) -> dict[str, Any]:
    from learning.core.realdata import RealTile, load_real, split_tiles
    from learning.core.segmentation.engine import engine_train_defaults, get_engine
    from learning.core.segmentation.metrics import pixel_iou
    from learning.core.segmentation.training import TrainOptions

    t0 = time.monotonic()
    if args.out.exists() and not args.overwrite:
        raise CliError(f"{args.out} already exists (use --overwrite)")
    engine_name = _engine_name(args)
    seg_config = _seg_config(args, engine_name)
    if args.real_data is not None:
        if not args.real_data.is_dir():
            raise CliError(f"real data folder {args.real_data} does not exist")
        tiles = load_real(args.real_data)
        frac = 0.0 if args.val_fraction is None else args.val_fraction
        if frac == 0:
            train_t, val_t = list(tiles), list[RealTile]()
        else:
            try:
                train_t, val_t = split_tiles(tiles, val_fraction=frac, seed=args.seed)
            except ValueError as e:
                raise CliError(str(e)) from None
        train = [(t.image, t.mask) for t in train_t]
        val = [(f"{t.dataset}/{t.name}", t.image, t.mask) for t in val_t]
    else:
        if args.masks is None:
            raise CliError("--images needs --masks")
        pairs = _read_pairs(args.images, args.masks)
        order = np.random.default_rng(args.seed).permutation(len(pairs))
        frac = 0.2 if args.val_fraction is None else args.val_fraction
        n_val = max(1, round(frac * len(pairs))) if len(pairs) > 1 and frac > 0 else 0
        val = [pairs[i] for i in order[:n_val]]
        train = [(pairs[i][1], pairs[i][2]) for i in order[n_val:]]
    train_opts = {**FALLBACK_TRAIN, **engine_train_defaults(engine_name)}
    for key in ("batch_size", "crop_size", "lr"):
        if getattr(args, key) is not None:
            train_opts[key] = getattr(args, key)
    epochs = args.epochs or (100_000 if args.time_budget else 20)
    try:
        options = TrainOptions(**train_opts, epochs=epochs, steps_per_epoch=args.steps_per_epoch,
                               seed=args.seed, time_budget_s=args.time_budget)
    except ValueError as e:
        raise CliError(f"bad training option: {str(e).splitlines()[-1]}") from None
    engine = get_engine(engine_name)(seg_config)
    t_load = time.monotonic() - t0
    result = engine.train(train, options=options, work_dir=args.work_dir,
                          progress=not args.no_progress)
    t1 = time.monotonic()
    window, overlap = 2 * options.crop_size, options.crop_size // 2
    per_ds: dict[str, list[tuple[Any, Any]]] = {}
    for name, img, m in val:
        pred = engine.predict_block(img, window=window, overlap=overlap)[0]
        per_ds.setdefault(name.split("/")[0] if "/" in name else "all", []).append((pred, m))
    overall = pixel_iou(pair for pairs in per_ds.values() for pair in pairs)
    t_eval = time.monotonic() - t1
    metrics = {"val": overall.as_dict(),
               "val_by_dataset": {k: pixel_iou(v).as_dict() for k, v in per_ds.items()},
               "n_train": len(train), "n_val": len(val), "train": result, "engine": engine_name,
               "options": options.model_dump(), "window": window, "overlap": overlap}
    engine.save(args.out, metrics=metrics, overwrite=args.overwrite)
    return {"bundle": str(args.out), "engine": engine_name,
            "val_iou": overall.iou if val else None,
            "val_counts": overall.as_dict(),
            "val_iou_by_dataset": {k: v["iou"] for k, v in metrics["val_by_dataset"].items()},
            "n_train": len(train), "n_val": len(val),
            "epochs_completed": result["epochs_completed"], "stopped": result["stopped"],
            "steps": len(result["step_losses"]),
            "final_epoch_loss": result["epoch_losses"][-1] if result["epoch_losses"] else None,
            "seconds_load": round(t_load, 1), "seconds_train": result["seconds"],
            "seconds_eval": round(t_eval, 1), "seconds_total": round(time.monotonic() - t0, 1)}


# --------------------------------------------------------------------------- predict / evaluate

def configure_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True, help="folder of block GeoTIFFs")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--window", type=int, default=None,
                   help="window size (default: the one the bundle was validated with)")
    p.add_argument("--overlap", type=int, default=None)
    p.add_argument("--threshold", type=float, default=0.5)


def _windows(bundle: Any, args: argparse.Namespace) -> tuple[int, int]:
    from learning.core.bundle import bundle_open

    m = bundle_open(bundle, verify=False).read_json("metrics.json")
    window = args.window or int(m.get("window", 512))
    overlap = args.overlap if args.overlap is not None else int(m.get("overlap", window // 4))
    if not 0 <= overlap < window:
        raise CliError(f"--overlap must be in [0, {window})")
    return window, overlap


def run_predict(args: argparse.Namespace) -> dict[str, Any]:
    from learning.core.segmentation import load_segmenter
    from learning.core.segmentation.inference import predict_block_file

    if not args.input.is_dir():
        raise CliError(f"input folder {args.input} does not exist")
    blocks = sorted(p for p in args.input.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    if not blocks:
        raise CliError(f"no GeoTIFFs (*.tif) in {args.input}")
    engine = load_segmenter(args.bundle)
    window, overlap = _windows(args.bundle, args)
    t0 = time.monotonic()
    out = [predict_block_file(engine.predict_proba, b, args.output / f"{b.stem}_cropland.tif",
                              window=window, overlap=overlap, threshold=args.threshold)
           for b in progress_iter(args, blocks, desc="predict", unit="block")]
    return {"blocks": len(out), "output": str(args.output), "results": out,
            "seconds": round(time.monotonic() - t0, 1)}


def configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--masks", type=Path, required=True)
    p.add_argument("--window", type=int, default=None)
    p.add_argument("--overlap", type=int, default=None)
    p.add_argument("--threshold", type=float, default=0.5)


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from learning.core.segmentation import load_segmenter
    from learning.core.segmentation.inference import sliding_window_proba
    from learning.core.segmentation.metrics import pixel_iou

    pairs = _read_pairs(args.images, args.masks)
    engine = load_segmenter(args.bundle)
    window, overlap = _windows(args.bundle, args)
    t0 = time.monotonic()
    counts = pixel_iou(
        (sliding_window_proba(img, engine.predict_proba, window=window, overlap=overlap)
         >= args.threshold, m)
        for _, img, m in progress_iter(args, pairs, desc="evaluate", unit="image"))
    return {"images": len(pairs), **counts.as_dict(), "seconds": round(time.monotonic() - t0, 1)}


# --------------------------------------------------------------------------- train-iqa

def configure_train_iqa(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=Path, required=True, help="folder of block images")
    p.add_argument("--labels", type=Path, required=True,
                   help="CSV with columns image,coverage_type (planting, non_planting, cloudy, "
                        "snow_ice, nodata)")
    p.add_argument("--out", type=Path, default=Path("var/bundles/iqa"))
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--config", help="JSON file with an IQAConfig")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.2)


def run_train_iqa(args: argparse.Namespace) -> dict[str, Any]:
    from learning.core.iqa.classifier import CoverageType, IQAClassifier, IQAConfig

    if not args.images.is_dir():
        raise CliError(f"image folder {args.images} does not exist")
    if not args.labels.is_file():
        raise CliError(f"labels file {args.labels} does not exist")
    if args.out.exists() and not args.overwrite:
        raise CliError(f"{args.out} already exists (use --overwrite)")
    with args.labels.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"image", "coverage_type"} <= set(rows[0]):
        raise CliError(f"{args.labels} needs a header with columns image,coverage_type")
    images, labels = [], []
    valid = {c.value for c in CoverageType}
    for i, r in enumerate(progress_iter(args, rows, desc="read images", unit="image"),
                          start=2):
        if r["coverage_type"] not in valid:
            raise CliError(f"{args.labels} line {i}: unknown coverage type "
                           f"{r['coverage_type']!r} (one of {', '.join(sorted(valid))})")
        path = args.images / r["image"]
        if not path.is_file():
            raise CliError(f"{args.labels} line {i}: image {path} does not exist")
        images.append(_read_image(path))
        labels.append(CoverageType(r["coverage_type"]))
    data: dict[str, Any] = {}
    if args.config:
        data = _config_json(Path(args.config))
    if args.epochs is not None:
        data["epochs"] = args.epochs
    data["seed"] = args.seed
    config = _config_build(IQAConfig, data, args.config)
    order = np.random.default_rng(args.seed).permutation(len(images))
    n_val = round(args.val_fraction * len(images)) if len(images) > 4 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    t0 = time.monotonic()
    clf = IQAClassifier(config)
    bar = Progress(args, total=0, desc="train-iqa", unit="step")
    try:
        history = clf.train([images[i] for i in train_idx], [labels[i] for i in train_idx],
                            on_step=bar.set)
    finally:
        bar.close()
    metrics: dict[str, Any] = {"n_train": len(train_idx), "n_val": len(val_idx),
                               "train_losses": history["epoch_losses"]}
    if n_val:
        ev = clf.evaluate([images[i] for i in val_idx], [labels[i] for i in val_idx])
        metrics |= {"val_accuracy": ev.accuracy, "val_confusion": ev.confusion.tolist()}
    clf.save(args.out, metrics=metrics, overwrite=args.overwrite)
    return {"bundle": str(args.out), **metrics, "seconds": round(time.monotonic() - t0, 1)}


# Registered last: the dispatcher looks up ``run_<name>`` when a command is registered.
command("train-segmenter", help="train a cropland segmenter (U-Net or Mask2Former), save a bundle")(
    configure_train_segmenter)
command("predict", help="segment a folder of block GeoTIFFs into mask + probability GeoTIFFs")(
    configure_predict)
command("evaluate", help="pixel IoU of a segmenter bundle on a folder of images and masks")(
    configure_evaluate)
command("train-iqa", help="train the coverage-type (image quality) classifier")(configure_train_iqa)
