"""CLI for block features, the correctness/integration models and the stopping check.

Commands: ``features`` (block GeoTIFFs + mask GeoTIFFs [+ DEM] -> CSV/JSON feature table),
``train-correctness``, ``train-integration`` (CSV -> model bundle + metrics) and ``stop-check``
(JSON measurements [+ rules] -> decisions).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from learning.core.cli import CliError, Progress, command, progress_iter

METRES_PER_DEGREE = 6378137.0 * math.pi / 180.0  # WGS 84 equatorial radius


# --- features ---------------------------------------------------------------------------------




def _read_image(path: Path) -> tuple[npt.NDArray[np.uint8], Any]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            # An image without georeferencing is reported below as one clear line.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
        with ds:
            if ds.count != 3:
                raise CliError(f"{path}: expected 3 bands (RGB), found {ds.count}")
            if ds.crs is None:
                raise CliError(f"{path}: no CRS; a block image must be georeferenced")
            if ds.dtypes[0] != "uint8":
                raise CliError(f"{path}: expected uint8 bands, found {ds.dtypes[0]}")
            return np.ascontiguousarray(np.moveaxis(ds.read(), 0, -1)), ds.profile | {
                "bounds": ds.bounds, "crs": ds.crs, "transform": ds.transform}
    except RasterioIOError as e:
        raise CliError(f"{path}: cannot read ({e})") from e


def _read_mask(path: Path, shape: tuple[int, int], *, role: str) -> npt.NDArray[np.uint8]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    from learning.core.features.region import check_mask

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # masks may lack one
            ds = rasterio.open(path)
        with ds:
            if ds.count != 1:
                raise CliError(f"{path}: a {role} must have 1 band, found {ds.count}")
            data = ds.read(1)
    except RasterioIOError as e:
        raise CliError(f"{path}: cannot read ({e})") from e
    if data.shape != shape:
        raise CliError(f"{path}: {role} is {data.shape[0]}x{data.shape[1]}, image is "
                       f"{shape[0]}x{shape[1]}")
    try:
        mask = check_mask(data, f"{path} ({role})")
    except ValueError as e:
        raise CliError(str(e)) from e
    if not (mask != 255).any():
        raise CliError(f"{path}: {role} has no valid pixel (all 255)")
    return mask


def _pixel_size_m(profile: dict[str, Any]) -> tuple[float, float]:
    t, crs = profile["transform"], profile["crs"]
    if crs.is_geographic:
        b = profile["bounds"]
        lat = math.radians((b.bottom + b.top) / 2)
        return abs(t.a) * METRES_PER_DEGREE * math.cos(lat), abs(t.e) * METRES_PER_DEGREE
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return abs(t.a) * factor, abs(t.e) * factor


def _per_image(values: list[str] | None, n: int, what: str) -> list[str | None]:
    if values is None:
        return [None] * n
    if len(values) == 1:
        return [values[0]] * n
    if len(values) != n:
        raise CliError(f"give one {what} or one per image ({n}), got {len(values)}")
    return list(values)


def run_features(args: argparse.Namespace) -> dict[str, Any]:
    from rasterio.warp import transform_bounds

    from learning.core.features.block import block_features_compute
    from learning.core.features.terrain import terrain_features
    from mapping.geo.dem import read_dem_window

    images: list[Path] = args.image
    if len(args.mask) != len(images):
        raise CliError(f"{len(images)} images but {len(args.mask)} masks")
    if args.other_mask is not None and len(args.other_mask) != len(images):
        raise CliError(f"{len(images)} images but {len(args.other_mask)} other-source masks")
    if args.out.suffix.lower() not in (".csv", ".json"):
        raise CliError(f"--out must end in .csv or .json, got {args.out.name}")
    coverage = _per_image(args.coverage_type, len(images), "coverage type")
    rows: list[dict[str, Any]] = []
    for i, path in enumerate(progress_iter(args, images, desc="features", unit="block")):
        image, profile = _read_image(path)
        shape = (image.shape[0], image.shape[1])
        mask = _read_mask(args.mask[i], shape, role="mask")
        other = None if args.other_mask is None else _read_mask(
            args.other_mask[i], shape, role="other-source mask")
        terrain = None
        if args.dem is not None:
            lonlat = transform_bounds(profile["crs"], "EPSG:4326", *profile["bounds"])
            try:
                terrain = terrain_features(read_dem_window(args.dem, lonlat),
                                           nan_policy=args.dem_nan)
            except ValueError as e:
                raise CliError(f"{path}: {e}") from e
        feats = block_features_compute(image=image, mask=mask, pixel_size_m=_pixel_size_m(profile),
                                       dem=terrain, coverage_type=coverage[i],
                                       other_mask=other)
        rows.append({"image": str(path), **feats.to_dict()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix.lower() == ".json":
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                  for k, v in r.items()} for r in rows]
        args.out.write_text(json.dumps(clean, indent=2))
    else:
        with args.out.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return {"blocks": len(rows), "out": str(args.out)}


# --- training -------------------------------------------------------------------------------------


def _read_table(path: Path, columns: tuple[str, ...], label: str) -> tuple[
        list[dict[str, str]], list[str]]:
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CliError(f"{path}: cannot read the table ({e})") from e
    missing = [c for c in (*columns, label) if c not in header]
    if missing:
        raise CliError(f"{path}: missing column(s): {', '.join(missing)}")
    if not rows:
        raise CliError(f"{path}: the table has no rows")
    return rows, [r[label] for r in rows]


def _float_cell(raw: str | None, name: str, row: int) -> float:
    from learning.core.features.block import coverage_code

    if name.endswith("coverage_type"):
        try:
            return coverage_code(raw)
        except ValueError as e:
            raise CliError(f"row {row + 2}: {e}") from e
    if raw is None or raw.strip() == "":
        return math.nan
    try:
        return float(raw)
    except ValueError as e:
        raise CliError(f"row {row + 2}, column {name!r}: not a number: {raw!r}") from e


def _matrix(rows: list[dict[str, str]], columns: tuple[str, ...]) -> npt.NDArray[np.float64]:
    return np.array([[_float_cell(r.get(c), c, i) for c in columns]
                     for i, r in enumerate(rows)], dtype=np.float64)


def _labels(raw: list[str]) -> list[object]:
    return [None if (v is None or v.strip() == "" or v.strip().lower() == "nan") else v
            for v in raw]


def _configure_training(p: argparse.ArgumentParser, label: str) -> None:
    p.add_argument("--table", type=Path, required=True,
                   help=f"CSV with the feature columns and a {label!r} column")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")


def _summary(metrics: dict[str, Any], importance: dict[str, dict[str, float]],
             out: Path) -> dict[str, Any]:
    top = sorted(importance, key=lambda k: importance[k]["mean"], reverse=True)[:5]
    return {"bundle": str(out), "accuracy": round(metrics["accuracy"], 4),
            "n_train": metrics["n_train"], "n_test": metrics["n_test"],
            "class_counts": metrics["class_counts"], "top_features": top}




def _train_table(args: argparse.Namespace, *, columns: tuple[str, ...], label: str,
                 train: Any, desc: str) -> Any:
    """Read the table, train and save, with a progress bar by stage; returns the model."""
    bar = Progress(args, total=3, desc=desc, unit="stage")
    try:
        rows, labels = _read_table(args.table, columns, label)
        bar.step("fit, evaluate, permutation importance")
        model = train(_matrix(rows, columns), _labels(labels), seed=args.seed,
                      test_size=args.test_size)
        bar.step("save")
        model.save(args.out, overwrite=args.overwrite)
        bar.step()
    finally:
        bar.close()
    return model


def run_train_correctness(args: argparse.Namespace) -> dict[str, Any]:
    from learning.core.features.block import FEATURE_NAMES
    from learning.core.tabular.correctness import correctness_train

    model = _train_table(args, columns=FEATURE_NAMES, label="verdict", train=correctness_train,
                         desc="train-correctness")
    out = _summary(model.metrics, model.importance, args.out)
    out["correctness_rate_test"] = round(model.metrics["correctness_rate_test"], 4)
    return out


def run_train_integration(args: argparse.Namespace) -> dict[str, Any]:
    from learning.core.tabular.integration import INTEGRATION_FEATURE_NAMES, integration_train

    model = _train_table(args, columns=INTEGRATION_FEATURE_NAMES, label="decision",
                         train=integration_train, desc="train-integration")
    return _summary(model.metrics, model.clf.importance, args.out)


def run_predict_correctness(args: argparse.Namespace) -> dict[str, Any]:
    from learning.core.features.block import FEATURE_NAMES
    from learning.core.tabular.correctness import CorrectnessModel

    model = CorrectnessModel.load(args.bundle)
    try:
        with args.table.open(newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except OSError as e:
        raise CliError(f"{args.table}: cannot read the table ({e})") from e
    missing = [c for c in FEATURE_NAMES if c not in header]
    if missing:
        raise CliError(f"{args.table}: missing column(s): {', '.join(missing)}")
    if not rows:
        raise CliError(f"{args.table}: the table has no rows")
    x = _matrix(rows, FEATURE_NAMES)
    verdicts = model.predict(x)
    p_tp = model.p_tp(x)
    if args.out is not None:
        with args.out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["row", "verdict", "p_tp"])
            for i, (v, p) in enumerate(zip(verdicts, p_tp, strict=True)):
                w.writerow([i, v.value, f"{p:.6f}"])
    return {"blocks": len(rows), "correctness_rate": round(model.correctness_rate(x), 4),
            "mean_p_tp": round(float(p_tp.mean()), 4),
            "verdicts": {v: sum(x.value == v for x in verdicts)
                         for v in ("tp", "fp", "noise", "artifact")}}


# --- stopping -------------------------------------------------------------------------------------




def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{path}: cannot read ({e})") from e
    except json.JSONDecodeError as e:
        raise CliError(f"{path}: not valid JSON ({e})") from e


def _one_line(e: Any, where: str) -> CliError:
    parts = [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
    return CliError(f"{where}: {'; '.join(parts)}")


def run_stop_check(args: argparse.Namespace) -> dict[str, Any]:
    from pydantic import ValidationError

    from learning.core.stopping import ProvinceMeasurements, StoppingRules, provinces_stop_check

    raw = _load_json(args.measurements)
    if isinstance(raw, dict) and "provinces" in raw:
        raw = raw["provinces"]
    if not isinstance(raw, list) or not raw:
        raise CliError(f"{args.measurements}: expected a non-empty list of provinces")
    try:
        rules = StoppingRules() if args.rules is None else StoppingRules.model_validate(
            _load_json(args.rules))
    except ValidationError as e:
        raise _one_line(e, str(args.rules)) from e
    items = []
    for i, item in enumerate(raw):
        try:
            items.append(ProvinceMeasurements.model_validate(item))
        except ValidationError as e:
            raise _one_line(e, f"{args.measurements} province #{i + 1}") from e
    decisions = provinces_stop_check(items, rules)
    return {
        "rules": rules.model_dump(mode="json"),
        "decisions": [d.to_dict() for d in decisions],
        "summary": {k: sum(d.decision.value == k for d in decisions)
                    for k in ("converged", "continue", "exhausted")},
    }


# --- registration (after the run_* handlers, which @command looks up) ----------------------


@command("features", help="block GeoTIFF(s) + cropland mask GeoTIFF(s) [+ DEM] -> feature table")
def configure_features(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", nargs="+", required=True, type=Path,
                   help="RGB block GeoTIFFs (3 bands, uint8, with a CRS)")
    p.add_argument("--mask", nargs="+", required=True, type=Path,
                   help="cropland masks (1 band uint8: 1 cropland, 0 other, 255 ignore), one "
                        "per image, on the image's grid")
    p.add_argument("--other-mask", nargs="+", type=Path, default=None,
                   help="the other source's masks on the same grids, for the IoU feature")
    p.add_argument("--coverage-type", nargs="+", default=None,
                   help="coverage type per image (or one for all): planting, non_planting, "
                        "cloudy, snow_ice, nodata")
    p.add_argument("--dem", type=Path, default=None, help="DEM GeoTIFF for terrain features")
    p.add_argument("--dem-nan", choices=("raise", "omit"), default="raise",
                   help="no-data in a block's DEM window: fail (default) or use valid pixels")
    p.add_argument("--out", type=Path, required=True, help="output table, .csv or .json")



@command("train-correctness", help="CSV of 16 block features + verdict -> correctness bundle")
def configure_train_correctness(p: argparse.ArgumentParser) -> None:
    _configure_training(p, "verdict")



@command("train-integration", help="CSV of paired-source features + decision -> bundle")
def configure_train_integration(p: argparse.ArgumentParser) -> None:
    _configure_training(p, "decision")



@command("predict-correctness", help="correctness bundle + CSV of 16 block features -> P(TP)")
def configure_predict_correctness(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, required=True, help="a correctness-xgb bundle")
    p.add_argument("--table", type=Path, required=True, help="CSV with the 16 feature columns")
    p.add_argument("--out", type=Path, default=None, help="CSV with verdict and p_tp per row")



@command("stop-check", help="province measurements (JSON) [+ rules JSON] -> stopping decisions")
def configure_stop_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("--measurements", type=Path, required=True,
                   help='JSON list of province measurements, or {"provinces": [...]}')
    p.add_argument("--rules", type=Path, default=None, help="JSON stopping rule set")

