"""Segmentation on synthetic data: IoU, rasterising, targets, stitching, GeoTIFF, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box

from learning.core.bundle import BundleError
from learning.core.cli import main
from learning.core.segmentation import (
    SegmentationEngine,
    get_engine,
    load_segmenter,
    pixel_iou,
)
from learning.core.segmentation.data import CropSampler, rasterize_polygons
from learning.core.segmentation.inference import (
    predict_block_file,
    read_block,
    read_prediction,
    sliding_window_proba,
    write_prediction,
)
from learning.core.segmentation.mask2former import (
    Mask2FormerEngine,
    Mask2FormerSegConfig,
    cropland_probability,
    mask_to_targets,
)
from learning.core.segmentation.metrics import iou_counts

# A block of 0.05° at ≈2.4 m would be ~2300 px; tests use small grids with the same geometry.
TRANSFORM = Affine(0.05 / 260, 0, 116.40, 0, -0.05 / 300, 39.95)


def tiny_engine(seed: int = 0) -> Mask2FormerEngine:
    return Mask2FormerEngine(Mask2FormerSegConfig.tiny(init_seed=seed), device="cpu")


def synthetic_samples(n: int = 4, size: int = 80,
                      seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        m = np.zeros((size, size), np.uint8)
        if i % 2 == 0:
            m[:, : size // 2] = 1
            img[:, : size // 2, 1] = 200
        m[:3] = 255
        out.append((img, m))
    return out


def write_block(path: Path, img: np.ndarray, *, crs: CRS | None = CRS.from_epsg(4326)) -> Path:
    h, w, c = img.shape
    kw = {"crs": crs} if crs is not None else {}
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype="uint8",
                       transform=TRANSFORM, **kw) as ds:
        ds.write(np.moveaxis(img, -1, 0))
    return path


# ---------------------------------------------------------------- metrics

def test_pixel_iou_hand_computed_with_ignore_and_accumulation() -> None:
    truth1 = np.array([[1, 1, 0, 255],
                       [0, 0, 1, 255]], np.uint8)
    pred1 = np.array([[1, 0, 1, 1],
                      [0, 0, 1, 1]], np.uint8)
    # scored pixels: 6; TP 2 (0,0),(1,2); FN 1 (0,1); FP 1 (0,2); TN 2; ignore column unscored
    c1 = iou_counts(pred1, truth1)
    assert (c1.tp, c1.fp, c1.fn, c1.tn) == (2, 1, 1, 2)
    assert c1.iou == pytest.approx(2 / 4)
    truth2 = np.zeros((2, 2), np.uint8)
    pred2 = np.array([[1, 1], [1, 0]], np.uint8)  # 3 FP, 1 TN
    total = pixel_iou([(pred1, truth1), (pred2, truth2)])
    assert (total.tp, total.fp, total.fn, total.tn) == (2, 4, 1, 3)
    # accumulated counts, not the mean of per-image IoUs (which would be (0.5 + 0) / 2)
    assert total.iou == pytest.approx(2 / 7)
    assert np.isnan(pixel_iou([(np.zeros((2, 2)), np.full((2, 2), 255))]).iou)
    with pytest.raises(ValueError, match="shape"):
        iou_counts(np.zeros((2, 2)), np.zeros((3, 2)))


# ---------------------------------------------------------------- data

def test_rasterize_polygons_on_block_grid_with_ignore() -> None:
    px_w, px_h = TRANSFORM.a, -TRANSFORM.e
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    # cropland over columns 10..19, rows 20..39; an orchard (ignore) over columns 15..24 rows 30..34
    crop = box(x0 + 10 * px_w, y0 - 40 * px_h, x0 + 20 * px_w, y0 - 20 * px_h)
    orchard = box(x0 + 15 * px_w, y0 - 35 * px_h, x0 + 25 * px_w, y0 - 30 * px_h)
    m = rasterize_polygons([crop], transform=TRANSFORM, shape=(300, 260), ignore=[orchard])
    assert m.dtype == np.uint8 and m.shape == (300, 260)
    expected = np.zeros((300, 260), np.uint8)
    expected[20:40, 10:20] = 1
    expected[30:35, 15:25] = 255
    np.testing.assert_array_equal(m, expected)
    assert not rasterize_polygons([], transform=TRANSFORM, shape=(5, 5)).any()


def test_crop_sampler_oversamples_minority_class() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with_crop = np.zeros((64, 64), np.uint8)
    with_crop[40:50, 40:50] = 1
    samples = [(img, with_crop)] + [(img, np.zeros((64, 64), np.uint8))] * 9
    sampler = CropSampler(samples, crop_size=32, jitter=0.0)
    assert sampler.minority_class == 1
    _, masks = sampler.draw(np.random.default_rng(1), 200)
    share = np.mean([(m == 1).any() for m in masks])
    assert share > 0.35  # unbalanced drawing would give about 0.1 × (chance crop hits) ≈ 0.03
    unbalanced = CropSampler(samples, crop_size=32, balance=False, jitter=0.0)
    _, masks = unbalanced.draw(np.random.default_rng(1), 200)
    assert np.mean([(m == 1).any() for m in masks]) < 0.15


def test_mask_to_targets_handles_negative_and_ignore() -> None:
    m = np.array([[0, 1], [255, 1]], np.uint8)
    masks, classes = mask_to_targets(m)
    assert classes.tolist() == [0, 1]
    assert masks[0].tolist() == [[1, 0], [0, 0]] and masks[1].tolist() == [[0, 1], [0, 1]]
    masks, classes = mask_to_targets(np.zeros((3, 3), np.uint8))
    assert classes.tolist() == [0] and masks.shape == (1, 3, 3)
    masks, classes = mask_to_targets(np.full((3, 3), 255, np.uint8))
    assert classes.numel() == 0 and masks.shape == (0, 3, 3)


def test_cropland_probability_is_a_probability() -> None:
    g = torch.Generator().manual_seed(0)
    p = cropland_probability(torch.randn(2, 5, 3, generator=g) * 5,
                             torch.randn(2, 5, 8, 8, generator=g) * 5, (32, 32))
    assert p.shape == (2, 32, 32)
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    # a query that is sure of "cropland" with a mask on everything gives ≈1
    cls = torch.tensor([[[-10.0, 10.0, -10.0]]])
    assert float(cropland_probability(cls, torch.full((1, 1, 4, 4), 10.0), (4, 4)).min()) > 0.99


# ---------------------------------------------------------------- training

def test_negative_only_training_batch_works() -> None:
    rng = np.random.default_rng(0)
    samples = [(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8), np.zeros((48, 48), np.uint8))
               for _ in range(2)]
    samples.append((samples[0][0], np.full((48, 48), 255, np.uint8)))  # all-ignore crop too
    r = tiny_engine().train(samples, epochs=1, steps_per_epoch=3, batch_size=3, crop_size=32)
    assert len(r["step_losses"]) == 3 and np.isfinite(r["step_losses"]).all()


def test_checkpoint_resume_continues_to_the_same_weights(tmp_path: Path) -> None:
    samples = synthetic_samples()
    opts = dict(steps_per_epoch=2, batch_size=2, crop_size=48, warmup_steps=0)
    straight = tiny_engine()
    straight.train(samples, epochs=2, **opts)

    # The first run is killed during epoch 2, after the checkpoint of epoch 1 was written.
    crashing = tiny_engine()
    real_loss, calls = crashing.loss, []

    def loss_then_crash(*args: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_loss(*args)  # type: ignore[arg-type]

    crashing.loss = loss_then_crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        crashing.train(samples, epochs=2, work_dir=tmp_path, **opts)
    assert (tmp_path / "checkpoint.pt").is_file()
    # Rerunning the same training builds a fresh model: only the checkpoint carries epoch 1.
    again = tiny_engine()
    r = again.train(samples, epochs=2, work_dir=tmp_path, **opts)
    assert r["resumed_from_epoch"] == 1 and r["epochs_completed"] == 2
    assert len(r["step_losses"]) == 2 and len(r["epoch_losses"]) == 2
    for (k, a), b in zip(straight.model.state_dict().items(),
                         again.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=lambda m, k=k: f"{k}: {m}")
    assert not torch.equal(next(iter(again.model.parameters())),
                           next(iter(tiny_engine().model.parameters())))
    with pytest.raises(ValueError, match="different training"):
        tiny_engine().train(samples, epochs=3, work_dir=tmp_path, **opts | {"batch_size": 3})


def test_time_budget_stops_training() -> None:
    r = tiny_engine().train(synthetic_samples(), epochs=50, steps_per_epoch=50, batch_size=2,
                            crop_size=48, time_budget_s=0.5)
    assert r["stopped"] == "time_budget"
    assert 0 < len(r["step_losses"]) < 2500


def test_should_stop_ends_training_at_the_next_step_without_checkpointing_it(
        tmp_path: Path) -> None:
    """A round's cancel reaches the loop through ``should_stop``: the run ends before the next
    step, and the unfinished epoch is not checkpointed, so a resume repeats it whole."""
    from learning.core.segmentation.training import TrainOptions, checkpoint_epoch, fit

    engine = tiny_engine()
    opts = TrainOptions(epochs=3, steps_per_epoch=2, batch_size=2, crop_size=48, warmup_steps=0)
    steps: list[int] = []
    r = fit(engine.model, loss_fn=engine.loss, sampler=opts.sampler(synthetic_samples()),
            options=opts, device=engine.device, work_dir=tmp_path,
            should_stop=lambda: len(steps) >= 3, on_step=steps.append)
    assert r["stopped"] == "stop_requested" and steps == [1, 2, 3]
    assert r["epochs_completed"] == 1 and len(r["epoch_losses"]) == 1
    assert checkpoint_epoch(tmp_path) == 1 and checkpoint_epoch(tmp_path / "none") == 0
    again = fit(tiny_engine().model, loss_fn=engine.loss, sampler=opts.sampler(synthetic_samples()),
                options=opts, device=engine.device, work_dir=tmp_path, on_step=steps.append)
    assert again["resumed_from_epoch"] == 1 and again["stopped"] == "completed"
    assert steps[3:] == [3, 4, 5, 6]


# ---------------------------------------------------------------- inference

def test_stitching_has_no_seams_for_a_position_dependent_model() -> None:
    # A model whose output ramps across its own window: naive tiling makes a sawtooth with
    # jumps of ~1 at every border; blending must keep neighbouring pixels close.
    def ramp(batch: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        return np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32), (n, h, w)).copy()

    out = sliding_window_proba(np.zeros((100, 300, 3), np.uint8), ramp, window=64, overlap=32)
    assert out.shape == (100, 300)
    assert np.abs(np.diff(out, axis=1)).max() < 0.1
    naive = sliding_window_proba(np.zeros((100, 300, 3), np.uint8), ramp, window=64, overlap=0)
    assert np.abs(np.diff(naive, axis=1)).max() > 0.5  # the test can tell a seam


def test_sliding_window_predict_shape_dtype_range_and_constant_image() -> None:
    engine = tiny_engine()
    img = np.random.default_rng(0).integers(0, 255, (300, 260, 3), dtype=np.uint8)
    mask, prob = engine.predict_block(img, window=96, overlap=32)
    assert mask.shape == prob.shape == (300, 260)
    assert mask.dtype == np.uint8 and prob.dtype == np.float32
    assert set(np.unique(mask)) <= {0, 1}
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0
    flat = np.full((300, 260, 3), (90, 140, 60), np.uint8)
    _, p = engine.predict_block(flat, window=96, overlap=32)
    spread = float(p.max() - p.min())
    # a window border falls every 64 px; no step there beyond the in-window variation
    assert np.abs(np.diff(p, axis=1)).max() <= max(0.02, 0.2 * spread + 1e-6)
    assert np.abs(np.diff(p, axis=0)).max() <= max(0.02, 0.2 * spread + 1e-6)


def test_prediction_geotiff_keeps_the_block_grid(tmp_path: Path) -> None:
    img = np.random.default_rng(0).integers(0, 255, (300, 260, 3), dtype=np.uint8)
    src = write_block(tmp_path / "block.tif", img, crs=CRS.from_epsg(4326))
    engine = tiny_engine()
    info = predict_block_file(engine.predict_proba, src, tmp_path / "out" / "pred.tif",
                              window=96, overlap=32)
    assert info["height"] == 300 and info["width"] == 260
    with rasterio.open(tmp_path / "out" / "pred.tif") as ds, rasterio.open(src) as ref:
        assert ds.crs == ref.crs and ds.transform == ref.transform
        assert (ds.count, ds.height, ds.width) == (2, 300, 260)
    mask, prob, _ = read_prediction(tmp_path / "out" / "pred.tif")
    assert set(np.unique(mask)) <= {0, 1}
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    # At the 0.5 threshold the stored (quantised) probability gives the stored mask exactly.
    np.testing.assert_array_equal(mask, (prob >= 0.5).astype(np.uint8))


def test_block_validation_messages(tmp_path: Path) -> None:
    img = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match="no CRS"):
        read_block(write_block(tmp_path / "nocrs.tif", img, crs=None))
    with pytest.raises(ValueError, match="1 band"):
        read_block(write_block(tmp_path / "grey.tif", img[..., :1]))
    with pytest.raises(FileNotFoundError):
        read_block(tmp_path / "missing.tif")
    with pytest.raises(ValueError, match="differ in shape"):
        write_prediction(tmp_path / "x.tif", mask=np.zeros((2, 2), np.uint8),
                         confidence=np.zeros((3, 2), np.float32), crs=None, transform=TRANSFORM)


# ---------------------------------------------------------------- bundle and registry

def test_bundle_round_trip_identical_predictions(tmp_path: Path) -> None:
    engine = tiny_engine()
    samples = synthetic_samples()
    engine.train(samples, epochs=1, steps_per_epoch=2, batch_size=2, crop_size=48)
    dest = engine.save(tmp_path / "seg", metrics={"val": {"iou": 0.1}})
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["kind"] == "segmenter-mask2former"
    assert json.loads((dest / "class_map.json").read_text()) == {"0": "background", "1": "cropland"}
    loaded = load_segmenter(dest)
    assert isinstance(loaded, Mask2FormerEngine) and isinstance(loaded, SegmentationEngine)
    imgs = np.stack([s[0] for s in samples])
    np.testing.assert_array_equal(loaded.predict_proba(imgs), engine.predict_proba(imgs))
    (dest / "config.json").write_text((dest / "config.json").read_text().replace("24", "32"))
    with pytest.raises(BundleError, match="corrupt"):
        load_segmenter(dest)


def test_engine_registry() -> None:
    assert get_engine("mask2former") is Mask2FormerEngine
    with pytest.raises(ValueError, match="unknown segmentation engine"):
        get_engine("pspnet")
    with pytest.raises(ValueError, match="divisible"):
        Mask2FormerSegConfig.tiny(embed_dim=25, num_heads=(2, 2, 2, 4))


# ---------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    engine = tiny_engine()
    return engine.save(tmp_path_factory.mktemp("b") / "seg", metrics={"window": 96, "overlap": 32})


def test_cli_predict_and_evaluate(tiny_bundle: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    blocks = tmp_path / "blocks"
    blocks.mkdir()
    img = np.random.default_rng(0).integers(0, 255, (130, 110, 3), dtype=np.uint8)
    write_block(blocks / "b1.tif", img)
    rc = main(["predict", "--bundle", str(tiny_bundle), "--input", str(blocks),
               "--output", str(tmp_path / "out"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["blocks"] == 1
    with rasterio.open(tmp_path / "out" / "b1_cropland.tif") as ds:
        assert ds.transform == TRANSFORM and ds.crs == CRS.from_epsg(4326)

    import cv2
    (tmp_path / "im").mkdir()
    (tmp_path / "ma").mkdir()
    cv2.imwrite(str(tmp_path / "im" / "t.png"), img)
    truth = np.zeros((130, 110), np.uint8)
    truth[:, :50] = 1
    truth[:5] = 255
    cv2.imwrite(str(tmp_path / "ma" / "t.png"), truth)
    rc = main(["evaluate", "--bundle", str(tiny_bundle), "--images", str(tmp_path / "im"),
               "--masks", str(tmp_path / "ma"), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert res["tp"] + res["fp"] + res["fn"] + res["tn"] == 125 * 110


@pytest.mark.parametrize("make_args, message", [
    (lambda t, b: ["predict", "--bundle", str(t / "nope"), "--input", str(t / "grey"), "--output",
                   str(t / "o")], "not a model bundle"),
    (lambda t, b: ["predict", "--bundle", str(b), "--input", str(t / "missing"), "--output",
                   str(t / "o")], "does not exist"),
    (lambda t, b: ["predict", "--bundle", str(b), "--input", str(t / "grey"), "--output",
                   str(t / "o")], "band"),
    (lambda t, b: ["train-segmenter", "--real-data", str(t / "missing"), "--out",
                   str(t / "x")], "does not exist"),
    (lambda t, b: ["evaluate", "--bundle", str(b), "--images", str(t / "grey"), "--masks",
                   str(t / "grey")], "band"),
    (lambda t, b: ["evaluate", "--bundle", str(b), "--images", str(t), "--masks",
                   str(t / "grey")], "no images"),
])
def test_cli_bad_input_exits_2_with_one_line(make_args, message, tiny_bundle: Path,  # type: ignore[no-untyped-def]
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "grey").mkdir()
    write_block(tmp_path / "grey" / "g.tif", np.zeros((20, 20, 1), np.uint8))
    rc = main(make_args(tmp_path, tiny_bundle))
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_pretrained_path_loads_matching_local_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    donor = tiny_engine(seed=1)
    save_file({k: v.contiguous() for k, v in donor.model.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    cfg = Mask2FormerSegConfig.tiny(pretrained_path=str(tmp_path / "w.safetensors"))
    warm = Mask2FormerEngine(cfg, device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warm.predict_proba(img), donor.predict_proba(img))
    assert not np.array_equal(tiny_engine(seed=0).predict_proba(img), donor.predict_proba(img))
    with pytest.raises(ValueError, match="do not exist"):
        Mask2FormerSegConfig.tiny(pretrained_path=str(tmp_path / "missing.pt")).build()


def test_crop_sampler_zooms_and_weights_samples() -> None:
    from learning.core.segmentation.data import CropSampler, rescale_crop

    rng = np.random.default_rng(0)
    img = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 1
    img[:, 32:] = 200
    # Zoomed out 0.5×: a 64² crop covers the whole 64² tile and a black, ignored margin.
    ci, cm = rescale_crop(img, mask, 64, 0.5, rng)
    assert ci.shape == (64, 64, 3) and set(np.unique(cm)) == {0, 1, 255}
    assert (cm == 255).mean() == pytest.approx(0.75, abs=0.05)
    # Zoomed in 2×: 32 source pixels spread over 64, labels stay 0/1 (nearest), no ignore.
    ci, cm = rescale_crop(img, mask, 64, 2.0, rng)
    assert set(np.unique(cm)) <= {0, 1} and ci.shape == (64, 64, 3)
    other = (np.full((64, 64, 3), 7, np.uint8), np.zeros((64, 64), np.uint8))
    sampler = CropSampler([(img, mask), other], crop_size=32, balance=False, jitter=0.0,
                          scale_range=(0.6, 1.6), photometric=1.0, sample_weights=[0.0, 1.0])
    imgs, masks = sampler.draw(rng, 16)
    assert imgs.shape == (16, 32, 32, 3) and not (masks == 1).any()
    with pytest.raises(ValueError, match="one weight per sample"):
        CropSampler([other], crop_size=32, sample_weights=[1.0, 2.0])
