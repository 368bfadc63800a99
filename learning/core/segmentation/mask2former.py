"""The Mask2Former engine (Swin backbone, built from configs, no hub download): binary cropland."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file, save_file
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

from learning.core.bundle import BundleError, bundle_open, bundle_writer
from learning.core.segmentation.data import IGNORE, CropSampler, validate_sample
from learning.core.segmentation.engine import register_engine
from learning.core.segmentation.inference import sliding_window_proba
from learning.core.segmentation.metrics import IoUCounts, pixel_iou
from learning.core.segmentation.training import TrainOptions, fit
from learning.core.weights import load_matching_weights

KIND = "segmenter-mask2former"
CLASS_MAP = {0: "background", 1: "cropland"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Mask2FormerSegConfig(BaseModel):
    """What to build. Defaults: Swin-T backbone with a small pixel decoder and query head."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    embed_dim: Annotated[int, Field(ge=8)] = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: Annotated[int, Field(ge=2)] = 7
    hidden_dim: Annotated[int, Field(ge=8)] = 128
    encoder_layers: Annotated[int, Field(ge=1)] = 3
    decoder_layers: Annotated[int, Field(ge=1)] = 4
    num_queries: Annotated[int, Field(ge=2)] = 16
    num_attention_heads: Annotated[int, Field(ge=1)] = 4
    train_num_points: Annotated[int, Field(ge=64)] = 4096
    no_object_weight: Annotated[float, Field(gt=0)] = 0.1
    init_seed: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pretrained_path: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Mask2FormerSegConfig:
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            raise ValueError("depths and num_heads need 4 stages (the pixel decoder uses all 4)")
        for i, h in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % h:
                raise ValueError(f"stage {i + 1} width {self.embed_dim * 2**i} is not divisible "
                                 f"by {h} heads")
        if self.hidden_dim % self.num_attention_heads:
            raise ValueError("hidden_dim must be divisible by num_attention_heads")
        return self

    @classmethod
    def tiny(cls, **overrides: Any) -> Mask2FormerSegConfig:
        """A few-hundred-thousand-parameter model for tests and CPU smoke runs."""
        base: dict[str, Any] = dict(embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4),
                                    window_size=4, hidden_dim=32, encoder_layers=1,
                                    decoder_layers=2, num_queries=6, num_attention_heads=2,
                                    train_num_points=1024)
        base.update(overrides)
        return cls(**base)

    def build(self) -> Mask2FormerForUniversalSegmentation:
        # An explicit SwinConfig means transformers builds the backbone locally with random
        # weights: no timm, no hub; pretrained weights come only from ``pretrained_path``.
        # transformers' configs take these through **kwargs, which their stubs do not declare.
        backbone = SwinConfig(  # type: ignore[call-arg]
                              embed_dim=self.embed_dim, depths=list(self.depths),
                              num_heads=list(self.num_heads), window_size=self.window_size,
                              drop_path_rate=0.1,
                              out_features=["stage1", "stage2", "stage3", "stage4"])
        h = self.hidden_dim
        cfg = Mask2FormerConfig(  # type: ignore[call-arg]  # num_labels etc. via **kwargs
            backbone_config=backbone, num_labels=len(CLASS_MAP),
            id2label={k: v for k, v in CLASS_MAP.items()},
            label2id={v: k for k, v in CLASS_MAP.items()},
            hidden_dim=h, feature_size=h, mask_feature_size=h, encoder_layers=self.encoder_layers,
            encoder_feedforward_dim=4 * h, decoder_layers=self.decoder_layers,
            dim_feedforward=8 * h, num_attention_heads=self.num_attention_heads,
            num_queries=self.num_queries, train_num_points=self.train_num_points,
            no_object_weight=self.no_object_weight, ignore_value=IGNORE)
        torch.manual_seed(self.init_seed)
        model = Mask2FormerForUniversalSegmentation(cfg)
        if self.pretrained_path:
            _load_pretrained(model, Path(self.pretrained_path))
        return model


def _load_pretrained(model: torch.nn.Module, path: Path) -> None:
    load_matching_weights(model, path)


def mask_to_targets(mask: npt.NDArray[np.uint8]) -> tuple[torch.Tensor, torch.Tensor]:
    """One binary mask per class present (semantic Mask2Former targets).

    A negative sample (no cropland) gets only a background mask; ignore pixels belong to no mask,
    so they are never pushed towards either class. An all-ignore crop has no targets at all.
    """
    masks, classes = [], []
    for cls in CLASS_MAP:
        m = mask == cls
        if m.any():
            masks.append(torch.from_numpy(m.astype(np.float32)))
            classes.append(cls)
    h, w = mask.shape
    if not masks:
        return torch.zeros((0, h, w)), torch.zeros((0,), dtype=torch.long)
    return torch.stack(masks), torch.tensor(classes, dtype=torch.long)


def cropland_probability(class_logits: torch.Tensor, mask_logits: torch.Tensor,
                         size: tuple[int, int]) -> torch.Tensor:
    """Semantic inference: softmax class scores × sigmoid masks summed over queries, then the
    cropland share of the two class scores, so the result is a probability in [0, 1]."""
    cls = class_logits.float().softmax(-1)[..., :-1]  # drop the "no object" class
    masks = F.interpolate(mask_logits.float(), size=size, mode="bilinear",
                          align_corners=False).sigmoid()
    seg = torch.einsum("bqc,bqhw->bchw", cls, masks)
    return seg[:, 1] / (seg[:, 0] + seg[:, 1]).clamp_min(1e-6)


@register_engine("mask2former")
class Mask2FormerEngine:
    """Mask2Former cropland segmenter (a ``SegmentationEngine``)."""

    name = "mask2former"
    bundle_kind = KIND

    def __init__(self, config: Mask2FormerSegConfig | None = None, *,
                 device: str | torch.device | None = None,
                 model: Mask2FormerForUniversalSegmentation | None = None) -> None:
        self.config = config or Mask2FormerSegConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # Held as a plain Module: transformers' own annotations leave eval/to untyped.
        self.model = cast(torch.nn.Module, model or self.config.build())
        self.model.to(self.device)
        self.model.eval()
        self._mean = torch.tensor(self.config.mean).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(self.config.std).view(1, 3, 1, 1) * 255.0

    def _pixels(self, images: npt.NDArray[np.uint8]) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        return ((x - self._mean) / self._std).to(self.device)

    def loss(self, model: torch.nn.Module, images: npt.NDArray[np.uint8],
             masks: npt.NDArray[np.uint8]) -> torch.Tensor:
        targets = [mask_to_targets(m) for m in masks]
        out = model(pixel_values=self._pixels(images),
                    mask_labels=[t[0].to(self.device) for t in targets],
                    class_labels=[t[1].to(self.device) for t in targets])
        loss: torch.Tensor = out.loss
        return loss

    def train(self, samples: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]],
              **options: Any) -> dict[str, Any]:
        """Fit on ``(image, mask)`` samples. Keyword options are :class:`TrainOptions` fields
        plus ``work_dir`` (checkpoints, resume) and ``progress`` (tqdm bar)."""
        work_dir = options.pop("work_dir", None)
        progress = bool(options.pop("progress", False))
        opts = options.pop("options", None) or TrainOptions(**options)
        sampler = CropSampler(samples, crop_size=opts.crop_size, balance=opts.balance,
                              jitter=opts.jitter)
        identity = {"engine": self.name, "config": self.config.model_dump(mode="json"),
                    "n_samples": len(samples),
                    "data": [int(m.sum(dtype=np.int64)) for _, m in samples[:64]]}
        return fit(self.model, loss_fn=self.loss, sampler=sampler, options=opts,
                   device=self.device, work_dir=work_dir, identity=identity,
                   progress=progress) | {"minority_class": sampler.minority_class}

    @torch.no_grad()
    def predict_proba(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Cropland probability ``N×H×W`` for ``N×H×W×3`` uint8 images."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be N×H×W×3 uint8, got {images.shape} {images.dtype}")
        self.model.eval()
        with torch.autocast(device_type=self.device.type, dtype=torch.float16,
                            enabled=self.device.type == "cuda"):
            out = self.model(pixel_values=self._pixels(images))
        prob = cropland_probability(out.class_queries_logits, out.masks_queries_logits,
                                    images.shape[1:3])
        result: npt.NDArray[np.float32] = prob.clamp(0, 1).cpu().numpy().astype(np.float32)
        return result

    def predict_block(self, image: npt.NDArray[np.uint8], *, window: int = 512,
                      overlap: int = 128, batch_size: int = 4, threshold: float = 0.5,
                      ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
        """Mask (0/1 uint8) and cropland probability for an image of any size."""
        prob = sliding_window_proba(image, self.predict_proba, window=window, overlap=overlap,
                                    batch_size=batch_size)
        return (prob >= threshold).astype(np.uint8), prob

    def evaluate(self, samples: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]],
                 *, window: int = 512, overlap: int = 128, threshold: float = 0.5) -> IoUCounts:
        """Pixel IoU over all samples, counts accumulated, ignore pixels unscored."""
        def pairs() -> Any:
            for img, m in samples:
                validate_sample(img, m)
                yield self.predict_block(img, window=window, overlap=overlap,
                                         threshold=threshold)[0], m
        return pixel_iou(pairs())

    def save(self, dest: str | os.PathLike[str], *, metrics: dict[str, Any] | None = None,
             overwrite: bool = False) -> Path:
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with bundle_writer(dest, kind=KIND, overwrite=overwrite,
                           extra={"engine": self.name}) as tmp:
            save_file(state, str(tmp / "weights.safetensors"))
            (tmp / "config.json").write_text(self.config.model_dump_json(indent=2))
            _write_json(tmp / "class_map.json", {str(k): v for k, v in CLASS_MAP.items()})
            _write_json(tmp / "normalisation.json",
                        {"mean": list(self.config.mean), "std": list(self.config.std),
                         "scale": 255.0, "channels": "RGB"})
            _write_json(tmp / "metrics.json", metrics or {})
        return Path(dest)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *,
             device: str | torch.device | None = None) -> Mask2FormerEngine:
        bundle = bundle_open(path, kind=KIND)
        try:
            text = bundle.file("config.json").read_text(encoding="utf-8")
            config = Mask2FormerSegConfig.model_validate_json(text)
        except ValueError as e:
            raise BundleError(f"{path}: invalid config.json ({e})") from e
        # Weights come from the bundle, never from the original pretrained path.
        config = config.model_copy(update={"pretrained_path": None})
        if bundle.read_json("class_map.json") != {str(k): v for k, v in CLASS_MAP.items()}:
            raise BundleError(f"{path}: class map is not {CLASS_MAP}")
        model = config.build()
        try:
            model.load_state_dict(load_file(str(bundle.file("weights.safetensors"))))
        except (RuntimeError, OSError) as e:
            raise BundleError(f"{path}: weights do not fit the config ({e})") from e
        return cls(config, device=device, model=model)


def _write_json(path: Path, obj: Any) -> None:
    import json

    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")
