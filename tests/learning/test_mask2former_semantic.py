"""The dense semantic loss that lets Mask2Former learn from scratch on a CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from learning.core.segmentation.engine import engine_train_defaults
from learning.core.segmentation.mask2former import (
    Mask2FormerEngine,
    Mask2FormerSegConfig,
    cropland_probability,
    semantic_loss,
)


def test_semantic_loss_is_bce_of_the_inference_output_without_ignore_pixels() -> None:
    torch.manual_seed(0)
    cls = torch.randn(2, 5, 3)
    masks = torch.randn(2, 5, 8, 8)
    labels = torch.randint(0, 2, (2, 16, 16), dtype=torch.uint8)
    labels[0, :8] = 255
    got = semantic_loss(cls, masks, labels)
    prob = cropland_probability(cls, masks, (8, 8))
    target = labels[:, ::2, ::2].float()
    valid = target != 255
    want = F.binary_cross_entropy(prob[valid], target[valid])
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    # Only ignore pixels: nothing to learn, and no NaN.
    assert float(semantic_loss(cls, masks, torch.full((2, 16, 16), 255, dtype=torch.uint8))) == 0.0


def test_engine_loss_adds_the_weighted_semantic_term() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    masks = (rng.random((2, 64, 64)) > 0.5).astype(np.uint8)
    with_sem = Mask2FormerEngine(Mask2FormerSegConfig.tiny(), device="cpu")
    without = Mask2FormerEngine(Mask2FormerSegConfig.tiny(semantic_weight=0.0), device="cpu")
    without.model.load_state_dict(with_sem.model.state_dict())
    for e in (with_sem, without):
        e.model.eval()  # no drop-path noise: the two forwards must match
    torch.manual_seed(1)  # the matcher's point sampling draws random numbers
    a = with_sem.loss(with_sem.model, images, masks)
    torch.manual_seed(1)
    b = without.loss(without.model, images, masks)
    out = with_sem.model(pixel_values=with_sem._pixels(images))
    sem = semantic_loss(out.class_queries_logits, out.masks_queries_logits,
                        torch.from_numpy(masks))
    assert with_sem.config.semantic_weight == 2.0
    assert float((a - b).detach()) == pytest.approx(2.0 * float(sem.detach()), rel=1e-4)
    # Trained from scratch it needs the higher rate (see the engine's train_defaults).
    assert engine_train_defaults("mask2former")["lr"] == 1e-3
