"""Real tile loaders: shapes, label values, LoveDA downsampling and a leak-free seeded split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from learning.core.realdata import (
    RealTile,
    downsample_image,
    downsample_mask,
    load_real,
    scene_folds,
    split_tiles,
)


def test_downsample_image_averages_areas() -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2, :2] = 100
    img[0, 0] = 200  # cell mean (200 + 3 × 100) / 4 = 125
    out = downsample_image(img, 2)
    assert out.shape == (2, 2, 3)
    assert out[0, 0].tolist() == [125, 125, 125] and out[1, 1].tolist() == [0, 0, 0]


def test_downsample_mask_takes_the_majority_and_ties_go_to_ignore() -> None:
    m = np.array([[1, 1, 0, 255],
                  [1, 0, 0, 255],
                  [255, 255, 0, 0],
                  [255, 1, 0, 1]], np.uint8)
    # cells: {1,1,1,0} → 1; {0,255,0,255} tie → 255; {255,255,255,1} → 255; {0,0,0,1} → 0
    assert downsample_mask(m, 2).tolist() == [[1, 255], [255, 0]]


@pytest.fixture(scope="module")
def tiles(shared_data: Path) -> list[RealTile]:
    return load_real(shared_data / "real")


def test_load_real_shapes_and_labels(tiles: list[RealTile]) -> None:
    gid = [t for t in tiles if t.dataset == "gid15"]
    loveda = [t for t in tiles if t.dataset == "loveda"]
    assert len(gid) == 233 and len(loveda) == 20
    # GID tiles are 224² (one source tile is 224 × 225)
    assert {t.image.shape[0] for t in gid} | {t.image.shape[1] for t in gid} <= {224, 225}
    assert {t.image.shape for t in loveda} == {(128, 128, 3)}  # 1024 px at 0.3 m, 8× down
    for t in tiles:
        assert t.image.dtype == np.uint8 and t.mask.shape == t.image.shape[:2]
        assert set(np.unique(t.mask)) <= {0, 1, 255}
    crop = np.concatenate([t.mask.ravel() for t in tiles])
    assert 0.2 < np.mean(crop == 1) < 0.8  # both classes are well represented
    # GID groups are scenes (many tiles each); LoveDA groups are single tiles
    assert len({t.group for t in gid}) == 15 and len({t.group for t in loveda}) == 20


def test_split_is_seeded_deterministic_and_leak_free(tiles: list[RealTile]) -> None:
    train, val = split_tiles(tiles, val_fraction=0.2, seed=0)
    again_train, again_val = split_tiles(tiles, val_fraction=0.2, seed=0)
    assert [t.name for t in val] == [t.name for t in again_val]
    assert len(train) + len(val) == len(tiles)
    train_groups = {(t.dataset, t.group) for t in train}
    assert not train_groups & {(t.dataset, t.group) for t in val}
    for ds in ("gid15", "loveda"):
        n_ds = sum(t.dataset == ds for t in tiles)
        n_val = sum(t.dataset == ds for t in val)
        assert 0.2 * n_ds <= n_val <= 0.3 * n_ds
    other = {t.name for t in split_tiles(tiles, val_fraction=0.2, seed=1)[1]}
    assert other != {t.name for t in val}


def _synthetic(groups: dict[str, int]) -> list[RealTile]:
    img, m = np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.uint8)
    return [RealTile(f"{g}_{i:03d}", "gid15", g, img, m) for g, n in groups.items()
            for i in range(n)]


def test_scene_folds_keep_small_folders_whole_unless_stratified() -> None:
    tiles = _synthetic({"paddy": 30, "river": 7, "grass": 7, "shrub": 7})
    for big, whole in ((25, True), (3, False)):
        folds = scene_folds(tiles, k=3, big_group=big)
        assert sorted(t.name for _, v in folds for t in v) == sorted(t.name for t in tiles)
        for train, val in folds:
            seen = {t.group for t in train}
            # Default: a seven-tile folder is validated as a land-cover type never trained on;
            # stratified: every fold trains on every folder.
            assert ({"river", "grass", "shrub"} <= seen) is not whole
            assert "paddy" in seen and "paddy" in {t.group for t in val}
            assert not {t.name for t in train} & {t.name for t in val}


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_real(tmp_path / "nope")
    (tmp_path / "gid15").mkdir()
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_real(tmp_path, datasets=["gid15"])
    with pytest.raises(ValueError, match="unknown real dataset"):
        load_real(tmp_path, datasets=["spacenet"])
