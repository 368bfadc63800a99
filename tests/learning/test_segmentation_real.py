"""A tiny Mask2Former learns on small crops of real GID-15 tiles (skips without shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from learning.core.realdata import RealTile, load_gid15
from learning.core.segmentation.mask2former import Mask2FormerEngine, Mask2FormerSegConfig

# Two mostly-cropland crops, one garden-plot crop that is mostly ignore, one negative woodland crop.
TILES = ("gid15_dry_cropland_068", "gid15_dry_cropland_076", "gid15_garden_plot_004",
         "gid15_arbor_woodland_004")


@pytest.fixture(scope="module")
def tiles(shared_data: Path) -> dict[str, RealTile]:
    return {t.name: t for t in load_gid15(shared_data / "real")}


@pytest.mark.parametrize("seed", [0, 1])
def test_tiny_mask2former_loss_falls_on_real_crops(tiles: dict[str, RealTile], seed: int) -> None:
    samples = [(tiles[n].image[80:144, 80:144].copy(), tiles[n].mask[80:144, 80:144].copy())
               for n in TILES]
    assert any((m == 1).any() for _, m in samples) and not (samples[3][1] == 1).any()
    imgs = np.stack([s[0] for s in samples])
    masks = np.stack([s[1] for s in samples])
    engine = Mask2FormerEngine(Mask2FormerSegConfig.tiny(init_seed=seed), device="cpu")

    def fixed_batch_loss() -> float:
        torch.manual_seed(123)  # the loss samples points at random
        with torch.no_grad():
            return float(engine.loss(engine.model, imgs, masks))

    before = fixed_batch_loss()
    r = engine.train(samples, epochs=1, steps_per_epoch=60, batch_size=4, crop_size=64, lr=1e-3,
                     warmup_steps=3, seed=seed, jitter=0.0, balance=False)
    after = fixed_batch_loss()
    losses = r["step_losses"]
    assert np.isfinite(losses).all()
    assert after < 0.9 * before
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    prob = engine.predict_proba(imgs)
    assert prob.shape == (4, 64, 64) and prob.dtype == np.float32


@pytest.mark.slow
def test_unet_learns_real_cropland_within_a_time_budget(shared_data: Path) -> None:
    """The default CPU engine, trained 150 CPU-s on one thread on GID-15 + LoveDA (8x down),
    beats the all-cropland guess on GID-15 validation scene groups it never saw (the first of
    the benchmark's three scene-group folds: a third of each big cropland folder and whole
    small folders held out)."""
    from learning.core.realdata import load_real, scene_folds
    from learning.core.segmentation.engine import engine_build, engine_train_defaults
    from learning.core.segmentation.metrics import pixel_iou
    from learning.core.segmentation.training import TrainOptions

    torch.set_num_threads(1)
    train, val = scene_folds(load_real(shared_data / "real"))[0]
    engine = engine_build("unet", device="cpu")
    options = TrainOptions(**engine_train_defaults("unet"), epochs=10_000, steps_per_epoch=50,
                           time_budget_s=150, budget_clock="cpu")
    r = engine.train([(t.image, t.mask) for t in train], options=options)
    assert r["stopped"] == "time_budget"
    # GID-15 only: at 150 CPU-s LoveDA (20 tiles) stays at the all-cropland level (0.529
    # against 0.529 on this fold, bench segmenter 2026-12-07), so it has no margin to assert.
    gid = [t for t in val if t.dataset == "gid15"]
    learned = engine.evaluate([(t.image, t.mask) for t in gid], window=256, overlap=64).iou
    constant = pixel_iou((np.ones_like(t.mask), t.mask) for t in gid).iou
    # Measured 0.811 against 0.651 (+0.16); half that margin leaves room for other machines.
    assert learned > constant + 0.08, (learned, constant)
