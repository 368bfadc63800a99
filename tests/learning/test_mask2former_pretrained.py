"""``pretrained_path`` as a Hugging Face checkpoint folder: a Mask2Former made for other classes
(re-headed to ours) or a Swin backbone alone, built from the folder's config, read offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    SwinConfig,
    SwinModel,
)

from learning.core.segmentation import load_segmenter
from learning.core.segmentation.mask2former import Mask2FormerEngine, Mask2FormerSegConfig

ENCODER = "model.pixel_level_module.encoder."


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _tiny_swin(**kw: object) -> SwinConfig:
    base: dict[str, object] = dict(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4],
                                   window_size=4,
                                   out_features=["stage1", "stage2", "stage3", "stage4"])
    return SwinConfig(**(base | kw))


def _ade_like(folder: Path) -> Mask2FormerForUniversalSegmentation:
    """A tiny stand-in for facebook/mask2former-swin-tiny-ade-semantic: 150 classes, its own
    widths and number of queries (different from our presets), random weights."""
    cfg = Mask2FormerConfig(  # type: ignore[call-arg]
        backbone_config=_tiny_swin(), num_labels=150, hidden_dim=64, feature_size=64,
        mask_feature_size=64, encoder_layers=1, decoder_layers=2, dim_feedforward=64,
        encoder_feedforward_dim=64, num_attention_heads=2, num_queries=7,
        id2label={i: f"c{i}" for i in range(150)}, label2id={f"c{i}": i for i in range(150)})
    torch.manual_seed(7)
    donor = Mask2FormerForUniversalSegmentation(cfg)
    donor.save_pretrained(folder)
    return donor


def test_mask2former_checkpoint_folder_is_reheaded_and_reported(tmp_path: Path) -> None:
    donor = _ade_like(tmp_path / "ade")
    assert {p.name for p in (tmp_path / "ade").iterdir()} >= {"config.json",
                                                               "model.safetensors"}
    engine = Mask2FormerEngine(Mask2FormerSegConfig.tiny(pretrained_path=str(tmp_path / "ade")),
                               device="cpu")
    report = engine.pretrained
    assert report is not None and report.kind == "mask2former"
    # The architecture is the checkpoint's (7 queries, width 64), not the tiny preset's.
    assert engine.config.architecture is not None
    assert engine.model.config.num_queries == 7 and engine.model.config.num_labels == 2
    # Everything but the class head loaded, and equals the checkpoint's tensors.
    theirs, ours = donor.state_dict(), engine.model.state_dict()
    reheaded = {r[0] for r in report.reheaded}
    assert reheaded == {"class_predictor.weight", "class_predictor.bias",
                        "criterion.empty_weight"}
    assert dict((r[0], r[1]) for r in report.reheaded)["class_predictor.weight"] == (151, 64)
    assert len(report.loaded) == len(ours) - 3 and not report.missing
    for k in report.loaded:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=0, msg=k)
    assert ours["class_predictor.weight"].shape == (3, 64)
    # The no-object weight is ours, not the 150-class checkpoint's.
    assert ours["criterion.empty_weight"].tolist() == pytest.approx([1.0, 1.0, 0.1])
    # The bundle rebuilds the checkpoint's architecture and says what was loaded.
    engine.save(tmp_path / "bundle")
    stored = json.loads((tmp_path / "bundle" / "pretrained.json").read_text())
    assert stored["loaded"] == len(report.loaded)
    assert set(stored["reheaded"]) == reheaded
    metrics = json.loads((tmp_path / "bundle" / "metrics.json").read_text())
    assert metrics["pretrained"]["kind"] == "mask2former"
    again = load_segmenter(tmp_path / "bundle")
    img = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(again.predict_proba(img), engine.predict_proba(img))


def test_swin_backbone_folder_loads_into_the_encoder(tmp_path: Path) -> None:
    torch.manual_seed(3)
    # A plain SwinModel checkpoint (no backbone outputs named), as an ImageNet Swin is saved.
    swin = SwinModel(SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4],
                                window_size=4))
    swin.save_pretrained(tmp_path / "swin")
    engine = Mask2FormerEngine(
        Mask2FormerSegConfig.tiny(pretrained_path=str(tmp_path / "swin")), device="cpu")
    report = engine.pretrained
    assert report is not None and report.kind == "swin"
    ours = engine.model.state_dict()
    theirs = swin.state_dict()
    # Every Swin tensor has a place in the encoder and holds the checkpoint's values.
    mapped = {ENCODER + "swin." + k: v for k, v in theirs.items()}
    assert set(mapped) <= set(ours)
    for k, v in mapped.items():
        if not k.endswith("relative_position_index"):
            torch.testing.assert_close(ours[k], v, rtol=0, atol=0, msg=k)
    assert {k for k in mapped if k in report.loaded} == {
        k for k in mapped if k in set(report.loaded)}
    assert ENCODER + "swin.embeddings.patch_embeddings.projection.weight" in report.loaded
    # The head and pixel decoder start from scratch (reported as newly initialised).
    assert "class_predictor.weight" in report.missing
    assert not any(k.startswith(ENCODER + "swin.") and "layernorm" not in k
                   for k in report.missing)
    # The backbone's widths are the checkpoint's (16), the head the preset's (tiny: 32).
    assert engine.model.config.backbone_config.embed_dim == 16
    assert engine.model.config.hidden_dim == 32
    engine.save(tmp_path / "bundle")
    assert json.loads((tmp_path / "bundle" / "pretrained.json").read_text())["kind"] == "swin"
    img = np.random.default_rng(1).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(load_segmenter(tmp_path / "bundle").predict_proba(img),
                                  engine.predict_proba(img))


def test_bad_checkpoint_folders_are_refused_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"config\.json and model\.safetensors"):
        Mask2FormerSegConfig.tiny(pretrained_path=str(tmp_path / "empty")).build()
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="neither a Mask2Former"):
        Mask2FormerSegConfig.tiny(pretrained_path=str(other)).build()


def test_train_segmenter_cli_takes_a_checkpoint_folder(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from learning.core.cli import main

    _ade_like(tmp_path / "ade")
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"),
                    rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "msk" / f"{i}.png"), (rng.random((64, 64)) > 0.5)
                    .astype(np.uint8))
    common = ["train-segmenter", "--images", str(tmp_path / "img"), "--masks",
              str(tmp_path / "msk"), "--engine", "mask2former", "--preset", "tiny",
              "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
              "--crop-size", "64", "--no-progress", "--json"]
    rc = main([*common, "--pretrained", str(tmp_path / "ade"), "--out", str(tmp_path / "b")])
    assert rc == 0, capsys.readouterr().err
    stored = json.loads((tmp_path / "b" / "pretrained.json").read_text())
    assert "class_predictor.weight" in stored["reheaded"] and stored["loaded"] > 100
    capsys.readouterr()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    rc = main([*common, "--pretrained", str(tmp_path / "half"), "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "needs config.json and model.safetensors" in err
    assert not (tmp_path / "c").exists()
