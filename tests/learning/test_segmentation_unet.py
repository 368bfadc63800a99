"""The U-Net engine: it learns (loss falls, beats all-cropland), keeps ignore pixels out of
training, saves and loads through the bundle registry, resumes, and the CLI picks engines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from learning.core.cli import main
from learning.core.segmentation import SegmentationEngine, get_engine, load_segmenter, pixel_iou
from learning.core.segmentation.engine import (
    default_engine_name,
    engine_build,
    engine_config_class,
)
from learning.core.segmentation.mask2former import Mask2FormerSegConfig
from learning.core.segmentation.unet import UNetEngine, UNetSegConfig, masked_loss


def tiny(seed: int = 0, **overrides: object) -> UNetEngine:
    torch.set_num_threads(1)
    return UNetEngine(UNetSegConfig.tiny(init_seed=seed, **overrides), device="cpu")


def textured_squares(n: int, size: int = 64, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cropland is where the texture is striped, background is speckle; both share the same
    mean colour, so only texture tells them apart (a constant or colour rule cannot)."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[:size, :size]
    for _ in range(n):
        base = rng.integers(90, 150, (size, size), dtype=np.int32)
        mask = np.zeros((size, size), np.uint8)
        for _ in range(rng.integers(1, 4)):
            s = int(rng.integers(14, 30))
            y, x = (int(v) for v in rng.integers(0, size - s, 2))
            mask[y:y + s, x:x + s] = 1
        stripes = np.where(((yy + xx) // 3) % 2 == 0, 150, 90)
        grey = np.where(mask == 1, stripes + rng.integers(-10, 10, (size, size)), base)
        img = np.repeat(np.clip(grey, 0, 255)[..., None], 3, axis=2).astype(np.uint8)
        out.append((img, mask))
    return out


def test_masked_loss_ignores_255_and_handles_all_ignore() -> None:
    logits = torch.zeros(1, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), 255, dtype=torch.uint8)
    target[0, 0, 0] = 1
    loss = masked_loss(logits, target, dice_weight=0.5)
    loss.backward()
    assert logits.grad is not None
    g = logits.grad[0]
    assert g[0, 0] != 0 and torch.count_nonzero(g) == 1  # only the labelled pixel learns
    empty = torch.zeros(1, 4, 4, requires_grad=True)
    zero = masked_loss(empty, torch.full((1, 4, 4), 255, dtype=torch.uint8), dice_weight=0.5)
    assert float(zero.detach()) == 0.0
    zero.backward()


def test_loss_falls_on_a_tiny_configuration() -> None:
    samples = textured_squares(6, size=48)
    engine = tiny()
    imgs = np.stack([s[0] for s in samples])
    masks = np.stack([s[1] for s in samples])

    def loss_now() -> float:
        engine.model.eval()
        with torch.no_grad():
            return float(engine.loss(engine.model, imgs, masks))

    before = loss_now()
    r = engine.train(samples, epochs=1, steps_per_epoch=40, batch_size=4, crop_size=48,
                     lr=5e-3, warmup_steps=2, jitter=0.0)
    assert np.isfinite(r["step_losses"]).all()
    assert np.mean(r["step_losses"][-8:]) < 0.8 * np.mean(r["step_losses"][:8])
    assert loss_now() < 0.8 * before


def test_tiny_unet_beats_all_cropland_on_a_texture_pattern() -> None:
    train, val = textured_squares(24, seed=1), textured_squares(8, seed=2)
    engine = tiny(tta="flip")
    r = engine.train(train, epochs=1, steps_per_epoch=150, batch_size=8, crop_size=48,
                     lr=1e-2, warmup_steps=10, time_budget_s=20)
    assert r["step_losses"]
    learned = engine.evaluate(val, window=64, overlap=16).iou
    constant = pixel_iou((np.ones_like(m), m) for _, m in val).iou
    assert learned > constant + 0.3, (learned, constant)


def test_ignore_pixels_are_never_learned() -> None:
    # One texture everywhere; left half labelled background, right half ignore (255). Learned
    # correctly, everything is background; a loss that let 255 count as cropland would see the
    # same texture called both and land near 0.5.
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(4):
        img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[:, 16:] = 255
        samples.append((img, mask))
    engine = tiny()
    engine.train(samples, epochs=1, steps_per_epoch=60, batch_size=4, crop_size=32, lr=1e-2,
                 warmup_steps=0, jitter=0.0, balance=False)
    prob = engine.predict_proba(np.stack([s[0] for s in samples]))
    assert float(prob[:, :, 16:].mean()) < 0.3 and float(prob.mean()) < 0.3


def test_bundle_round_trip_through_load_segmenter(tmp_path: Path) -> None:
    engine = tiny(tta="d4")
    samples = textured_squares(4)
    engine.train(samples, epochs=1, steps_per_epoch=3, batch_size=2, crop_size=32)
    dest = engine.save(tmp_path / "seg", metrics={"val": {"iou": 0.5}})
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["kind"] == "segmenter-unet" and manifest["engine"] == "unet"
    assert json.loads((dest / "normalisation.json").read_text())["channels"] == "RGB"
    loaded = load_segmenter(dest)
    assert isinstance(loaded, UNetEngine) and isinstance(loaded, SegmentationEngine)
    assert loaded.config == engine.config
    imgs = np.stack([s[0] for s in samples])
    np.testing.assert_array_equal(loaded.predict_proba(imgs), engine.predict_proba(imgs))
    # BatchNorm running statistics travel in the bundle, not only the parameters.
    assert any("running_mean" in k for k in loaded.model.state_dict())


def test_predict_any_size_and_d4_tta_is_equivariant() -> None:
    # Without the strided stem: a stride-2 convolution samples even columns, which a 90°
    # turn maps to odd ones, so only max-pooling levels keep the D4 average exact.
    engine = tiny(tta="d4", stem_stride=1)
    odd = np.random.default_rng(0).integers(0, 255, (1, 37, 53, 3), dtype=np.uint8)
    p = engine.predict_proba(odd)  # padded to the U-Net's multiple inside, cropped back
    assert p.shape == (1, 37, 53) and p.dtype == np.float32
    mask, prob = engine.predict_block(odd[0], window=32, overlap=8)
    assert mask.shape == prob.shape == (37, 53)
    img = odd[:, :36, :52]
    rotated = engine.predict_proba(np.ascontiguousarray(np.rot90(img, 1, axes=(1, 2))))
    np.testing.assert_allclose(np.rot90(rotated, -1, axes=(1, 2)), engine.predict_proba(img),
                               atol=1e-5)


def test_resume_from_checkpoint_gives_the_same_weights(tmp_path: Path) -> None:
    samples = textured_squares(4)
    opts = dict(steps_per_epoch=3, batch_size=2, crop_size=32, warmup_steps=0, ema_decay=0.9)
    straight = tiny()
    straight.train(samples, epochs=2, **opts)

    crashing = tiny()
    real_loss, calls = crashing.loss, []

    def loss_then_crash(*args: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_loss(*args)  # type: ignore[arg-type]

    crashing.loss = loss_then_crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        crashing.train(samples, epochs=2, work_dir=tmp_path, **opts)
    again = tiny()
    r = again.train(samples, epochs=2, work_dir=tmp_path, **opts)
    assert r["resumed_from_epoch"] == 1 and r["epochs_completed"] == 2
    for (k, a), b in zip(straight.model.state_dict().items(),
                         again.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=lambda m, k=k: f"{k}: {m}")


def test_ema_weights_differ_from_raw_weights() -> None:
    samples = textured_squares(4)
    opts = dict(epochs=1, steps_per_epoch=20, batch_size=2, crop_size=32, warmup_steps=0,
                lr=1e-2)
    raw, ema = tiny(), tiny()
    raw.train(samples, **opts)
    ema.train(samples, **opts, ema_decay=0.9)
    a, b = next(iter(raw.model.parameters())), next(iter(ema.model.parameters()))
    assert not torch.equal(a, b)


def test_registry_defaults_and_presets() -> None:
    assert get_engine("unet") is UNetEngine
    assert default_engine_name(cuda=False) == "unet"
    assert default_engine_name(cuda=True) == "mask2former"
    assert engine_config_class("unet") is UNetSegConfig
    assert engine_config_class("mask2former") is Mask2FormerSegConfig
    eng = engine_build("unet", preset="tiny", device="cpu", init_seed=3)
    assert isinstance(eng, UNetEngine) and eng.config.widths == (8, 16, 32)
    with pytest.raises(ValueError, match="no preset"):
        engine_build("unet", preset="enormous")
    with pytest.raises(ValueError, match="multiple of 8"):
        tiny().train(textured_squares(2), epochs=1, steps_per_epoch=1, crop_size=30)


# ---------------------------------------------------------------- CLI

def _write_pairs(folder: Path, samples: list[tuple[np.ndarray, np.ndarray]]) -> None:
    import cv2

    (folder / "im").mkdir(parents=True)
    (folder / "ma").mkdir()
    for i, (img, m) in enumerate(samples):
        cv2.imwrite(str(folder / "im" / f"t{i}.png"), img[..., ::-1])
        cv2.imwrite(str(folder / "ma" / f"t{i}.png"), m)


@pytest.mark.parametrize("engine, kind", [(None, "segmenter-unet"), ("unet", "segmenter-unet"),
                                          ("mask2former", "segmenter-mask2former")])
def test_cli_train_segmenter_engine(engine: str | None, kind: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if engine is None:
        # The default follows the hardware; this machine has no CUDA.
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _write_pairs(tmp_path, textured_squares(5))
    args = ["train-segmenter", "--images", str(tmp_path / "im"), "--masks", str(tmp_path / "ma"),
            "--out", str(tmp_path / "b"), "--preset", "tiny", "--epochs", "1",
            "--steps-per-epoch", "2", "--batch-size", "2", "--crop-size", "32", "--json",
            "--no-progress"]
    rc = main(args + (["--engine", engine] if engine else []))
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["engine"] == (engine or "unet") and out["steps"] == 2
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["kind"] == kind
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["engine"] == (engine or "unet")


def test_cli_unknown_engine_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_pairs(tmp_path, textured_squares(2))
    rc = main(["train-segmenter", "--images", str(tmp_path / "im"), "--masks",
               str(tmp_path / "ma"), "--out", str(tmp_path / "b"), "--engine", "pspnet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "unknown segmentation engine 'pspnet'" in err
    assert "unet" in err and not (tmp_path / "b").exists()



def test_cli_real_data_trains_on_every_tile_unless_told_to_hold_out(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # With a fixed budget the bundle should learn from every labelled tile; validation is the
    # benchmark's cross-validation, or an explicit --val-fraction (whole scene groups).
    common = ["train-segmenter", "--real-data", str(shared_data / "real"), "--preset", "tiny",
              "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
              "--crop-size", "32", "--json", "--no-progress", "--overwrite"]
    assert main(common + ["--out", str(tmp_path / "all")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_val"] == 0 and out["val_iou"] is None and out["n_train"] > 200
    assert main(common + ["--out", str(tmp_path / "held"), "--val-fraction", "0.2"]) == 0
    held = json.loads(capsys.readouterr().out)
    assert held["n_val"] > 20 and held["n_train"] + held["n_val"] == out["n_train"]

# ---------------------------------------------------------------- input normalisation, stem

def test_instance_normalisation_ignores_a_sensors_gain_and_offset() -> None:
    # Per-window standardisation: the same scene seen with another gain and offset per channel
    # (another sensor, another haze) gives the same prediction; fixed normalisation does not.
    img = np.random.default_rng(0).integers(60, 160, (2, 32, 32, 3), dtype=np.uint8)
    shifted = np.clip(img.astype(np.float32) * [1.3, 0.9, 1.1] + [10, -20, 5], 0, 255)
    other: np.ndarray = shifted.round().astype(np.uint8)
    inst, fixed = tiny(input_norm="instance"), tiny(input_norm="fixed")
    moved_inst = float((inst._pixels(img) - inst._pixels(other)).abs().max())
    moved_fixed = float((fixed._pixels(img) - fixed._pixels(other)).abs().max())
    assert moved_inst < 0.05 and moved_fixed > 0.3, (moved_inst, moved_fixed)
    assert np.abs(inst.predict_proba(img) - inst.predict_proba(other)).max() < 1e-3


def test_strided_stem_predicts_full_resolution() -> None:
    engine = tiny(stem_stride=2)
    assert engine.config.multiple == 8
    r = engine.train(textured_squares(4), epochs=1, steps_per_epoch=3, batch_size=2,
                     crop_size=32)
    assert np.isfinite(r["step_losses"]).all()
    assert engine.predict_proba(np.zeros((1, 37, 45, 3), np.uint8)).shape == (1, 37, 45)


def test_bundle_written_before_input_norm_existed_loads_as_fixed(tmp_path: Path) -> None:
    from pydantic import BaseModel, ConfigDict

    from learning.core.segmentation.bundle_io import segmenter_bundle_write

    class OldConfig(BaseModel):  # the config as bundles were written before the two fields
        model_config = ConfigDict(extra="allow")

    engine = tiny(input_norm="fixed", stem_stride=1)
    old = OldConfig(**engine.config.model_dump(exclude={"input_norm", "stem_stride"}))
    dest = segmenter_bundle_write(tmp_path / "old", kind="segmenter-unet", engine="unet",
                                  model=engine.model, config=old, normalisation={},
                                  metrics={})
    loaded = load_segmenter(dest)
    assert isinstance(loaded, UNetEngine)
    assert loaded.config.input_norm == "fixed" and loaded.config.stem_stride == 1
    new = tiny(input_norm="instance").save(tmp_path / "new")
    assert json.loads((new / "normalisation.json").read_text())["mode"] == "instance"
    reloaded = load_segmenter(new)
    assert isinstance(reloaded, UNetEngine) and reloaded.config.input_norm == "instance"


@pytest.mark.parametrize("input_norm", ["fixed", "instance"])
def test_prediction_without_tta_is_the_models_sigmoid_on_normalised_pixels(input_norm: str,
                                                                         ) -> None:
    """The no-TTA fast path (in-place normalisation, no accumulator) gives what the definition
    gives, cropped back from the padded size, and leaves the caller's images alone."""
    cfg = UNetSegConfig.tiny(init_seed=0).model_copy(update={"input_norm": input_norm})
    eng = UNetEngine(cfg, device="cpu")
    imgs = np.random.default_rng(3).integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)
    before = imgs.copy()
    got = eng.predict_proba(imgs)
    x = torch.from_numpy(before).permute(0, 3, 1, 2).float()
    if input_norm == "instance":
        mean = x.mean(dim=(2, 3), keepdim=True)
        x = (x - mean) / x.std(dim=(2, 3), keepdim=True).clamp_min(8.0)
    else:
        x = (x - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    k = cfg.multiple
    x = torch.nn.functional.pad(x, (0, -45 % k, 0, -37 % k), mode="reflect")
    with torch.no_grad():
        want = torch.sigmoid(eng.model(x))[:, :37, :45].numpy()
    assert got.dtype == np.float32 and got.shape == (2, 37, 45)
    assert np.allclose(got, want, atol=1e-6)
    assert np.array_equal(imgs, before)
