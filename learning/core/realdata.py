"""Loaders for the real labelled tiles (GID-15, LoveDA) and a leak-free train/validation split.

The folder is always passed in (``--real-data PATH``); it holds ``gid15/`` and ``loveda/``, each
with ``manifest.csv``, ``images/`` and ``masks_cropland/`` (1 cropland, 0 other, 255 ignore).
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import rasterio

IGNORE = 255
DATASETS = ("gid15", "loveda")
LOVEDA_FACTOR = 8  # 0.3 m → ≈2.4 m, the zoom-16 imagery of the workflow


@dataclass(frozen=True)
class RealTile:
    """One labelled tile; ``group`` is the unit that must not straddle train and validation."""

    name: str
    dataset: str
    group: str
    image: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.uint8]


def downsample_image(image: npt.NDArray[np.uint8], factor: int) -> npt.NDArray[np.uint8]:
    """Area-average by an integer factor (edge rows/columns that do not fill a cell dropped)."""
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    x = image[:h, :w].astype(np.float32).reshape(h // factor, factor, w // factor, factor, -1)
    out: npt.NDArray[np.uint8] = np.rint(x.mean(axis=(1, 3))).astype(np.uint8)
    return out


def downsample_mask(mask: npt.NDArray[np.uint8], factor: int) -> npt.NDArray[np.uint8]:
    """Majority label per ``factor × factor`` cell; a tie goes to ignore, then to cropland."""
    h, w = (mask.shape[0] // factor) * factor, (mask.shape[1] // factor) * factor
    cells = mask[:h, :w].reshape(h // factor, factor, w // factor, factor)
    labels = np.array([IGNORE, 1, 0], dtype=np.uint8)
    counts = np.stack([(cells == v).sum(axis=(1, 3)) for v in labels])
    return np.asarray(labels[np.argmax(counts, axis=0)], dtype=np.uint8)


def _read_rgb(path: Path) -> npt.NDArray[np.uint8]:
    if not path.is_file():
        raise FileNotFoundError(f"image {path} listed in the manifest is missing")
    if path.suffix.lower() in (".tif", ".tiff"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                if ds.count not in (3, 4):
                    raise ValueError(f"{path} has {ds.count} band(s); RGB images need 3")
                img = np.moveaxis(ds.read([1, 2, 3]), 0, -1)
    else:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {path}")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if img.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 pixels, got {img.dtype}")
    return np.ascontiguousarray(img)


def _read_mask(path: Path) -> npt.NDArray[np.uint8]:
    if not path.is_file():
        raise FileNotFoundError(f"mask {path} listed in the manifest is missing")
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None or m.ndim != 2 or m.dtype != np.uint8:
        raise ValueError(f"{path}: expected a single-band uint8 mask")
    bad = np.setdiff1d(np.unique(m), [0, 1, IGNORE])
    if bad.size:
        raise ValueError(f"{path}: mask values must be 0, 1 or 255, found {bad.tolist()}")
    return np.asarray(m, dtype=np.uint8)


def _manifest(folder: Path) -> list[dict[str, str]]:
    path = folder / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no manifest.csv")
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_gid15(root: str | os.PathLike[str]) -> list[RealTile]:
    """GID-15 tiles (224², ≈3–4 m, used as they are), grouped by ``scene_label``."""
    folder = Path(root) / "gid15"
    return [RealTile(name=r["name"], dataset="gid15", group=r["scene_label"],
                     image=_read_rgb(folder / r["image"]),
                     mask=_read_mask(folder / r["mask_cropland"]))
            for r in _manifest(folder)]


def load_loveda(root: str | os.PathLike[str], *, factor: int = LOVEDA_FACTOR) -> list[RealTile]:
    """LoveDA tiles (1024² at 0.3 m) downsampled ``factor``×; each tile is its own group."""
    folder = Path(root) / "loveda"
    tiles = []
    for r in _manifest(folder):
        img, m = _read_rgb(folder / r["image"]), _read_mask(folder / r["mask_cropland"])
        if factor > 1:
            img, m = downsample_image(img, factor), downsample_mask(m, factor)
        tiles.append(RealTile(name=r["name"], dataset="loveda", group=r["name"], image=img,
                              mask=m))
    return tiles


def load_real(root: str | os.PathLike[str], *, datasets: Iterable[str] = DATASETS,
              loveda_factor: int = LOVEDA_FACTOR) -> list[RealTile]:
    """All tiles of the chosen datasets under ``root`` (the ``real/`` folder)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"real data folder {root} does not exist")
    tiles: list[RealTile] = []
    for name in datasets:
        if name == "gid15":
            tiles += load_gid15(root)
        elif name == "loveda":
            tiles += load_loveda(root, factor=loveda_factor)
        else:
            raise ValueError(f"unknown real dataset {name!r}; known: {', '.join(DATASETS)}")
    return tiles


def split_tiles(tiles: Sequence[RealTile], *, val_fraction: float = 0.2, seed: int = 0,
                ) -> tuple[list[RealTile], list[RealTile]]:
    """Deterministic seeded split by group, per dataset: whole groups (GID scenes, LoveDA
    tiles) go to validation until each dataset has at least ``val_fraction`` of its tiles
    there, so correlated tiles never sit on both sides."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    val_groups: set[tuple[str, str]] = set()
    for ds in sorted({t.dataset for t in tiles}):
        sizes: dict[str, int] = {}
        for t in tiles:
            if t.dataset == ds:
                sizes[t.group] = sizes.get(t.group, 0) + 1
        groups = sorted(sizes)
        if len(groups) < 2:
            continue
        order = np.random.default_rng([seed, len(ds)] + [ord(c) for c in ds]).permutation(groups)
        total, taken = sum(sizes.values()), 0
        target = val_fraction * total
        chosen: list[str] = []
        for g in map(str, order):
            if taken >= target or len(chosen) == len(groups) - 1:
                break
            # Skip a group that would overshoot the target by more than a fifth.
            if taken + sizes[g] <= 1.2 * target:
                chosen.append(g)
                taken += sizes[g]
        if not chosen:
            chosen.append(min(map(str, order), key=lambda g: sizes[g]))
        val_groups.update((ds, g) for g in chosen)
    train = [t for t in tiles if (t.dataset, t.group) not in val_groups]
    val = [t for t in tiles if (t.dataset, t.group) in val_groups]
    return train, val


BIG_GROUP = 25  # scene folders with at least this many tiles are cut into consecutive parts


def _crop_fraction(ts: Sequence[RealTile]) -> float:
    c = sum(int((t.mask == 1).sum()) for t in ts)
    n = sum(int((t.mask != 255).sum()) for t in ts)
    return c / max(1, n)


def scene_folds(tiles: Sequence[RealTile], *, k: int = 3, big_group: int = BIG_GROUP,
                ) -> list[tuple[list[RealTile], list[RealTile]]]:
    """``k`` (train, validation) folds by scene group, stratified so that every fold's training
    set keeps each kind of cropland.

    - A scene folder with at least ``BIG_GROUP`` tiles (GID-15's dry cropland, irrigated land,
      paddy field, garden plot) is cut into ``k`` parts of consecutive tile numbers, one part
      per fold: each fold validates on a third of the paddy fields and trains on the rest.
      Consecutive numbers stay together in case neighbouring tiles come from one scene (they
      are not edge-adjacent: bench/bench_segmenter.py), so the parts share two boundaries.
    - Smaller folders (7 tiles each) stay whole: ordered by cropland fraction and dealt to the
      folds in a snake (0, 1, 2, 2, 1, 0, ...), so no fold gets all the empty scenes.
    - LoveDA tiles are their own groups, dealt the same way.

    Every tile is validated exactly once; bench/bench_segmenter.py pools IoU counts over the
    folds. ``big_group=k`` cuts every folder of at least ``k`` tiles (GID-15's seven-tile
    folders too), so that every fold trains on every land-cover type ("stratified").
    """
    if k < 2:
        raise ValueError("k must be at least 2")
    fold_of: dict[str, int] = {}
    for ds in sorted({t.dataset for t in tiles}):
        groups: dict[str, list[RealTile]] = {}
        for t in tiles:
            if t.dataset == ds:
                groups.setdefault(t.group, []).append(t)
        small: list[list[RealTile]] = []
        for g in sorted(groups):
            members = sorted(groups[g], key=lambda t: t.name)
            if len(members) >= max(big_group, k):
                for i, part in enumerate(np.array_split(np.arange(len(members)), k)):
                    for j in part:
                        fold_of[members[int(j)].name] = i
            else:
                small.append(members)
        small.sort(key=lambda ms: (_crop_fraction(ms), ms[0].name))
        for i, members in enumerate(small):
            r = i % (2 * k)
            fold = r if r < k else 2 * k - 1 - r
            for t in members:
                fold_of[t.name] = fold
    return [([t for t in tiles if fold_of[t.name] != f],
             [t for t in tiles if fold_of[t.name] == f]) for f in range(k)]
