"""The Mask2Former engine (Swin backbone, built from configs, no hub download): binary cropland."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import BaseModel, ConfigDict, Field, model_validator
from transformers import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    SwinBackbone,
    SwinConfig,
)

from learning.core.segmentation.bundle_io import (
    CLASS_MAP,
    segmenter_bundle_config,
    segmenter_bundle_weights,
    segmenter_bundle_write,
)
from learning.core.segmentation.data import IGNORE, validate_sample
from learning.core.segmentation.engine_registry import register_engine
from learning.core.segmentation.inference import sliding_window_proba
from learning.core.segmentation.metrics import IoUCounts, pixel_iou
from learning.core.segmentation.training import TrainOptions, fit
from learning.core.weights import PretrainedReport, load_weights_report

KIND = "segmenter-mask2former"
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
    # The matched-query loss: class cross-entropy, mask binary cross-entropy and mask Dice.
    class_weight: Annotated[float, Field(gt=0)] = 2.0
    mask_weight: Annotated[float, Field(gt=0)] = 5.0
    dice_weight: Annotated[float, Field(gt=0)] = 5.0
    # A dense per-pixel loss on the semantic output itself (what inference returns). Without
    # it the only pixel signal reaches the masks of the one or two matched queries at sampled
    # points: from scratch, 16 queries each stay mostly "no object" with near-uniform masks, so
    # their sum is the same probability everywhere (bench/mask2former_diagnose.py: 4 fixed
    # crops, 150 steps, lr 3e-4: IoU 0.00 and probability std 0.02 without it, 0.50 and 0.23
    # with weight 2).
    semantic_weight: Annotated[float, Field(ge=0)] = 2.0
    init_seed: int = 0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # A .safetensors/.pt state dict, or a Hugging Face checkpoint folder (config.json +
    # model.safetensors) of a Mask2Former (re-headed to our classes) or of a Swin backbone.
    pretrained_path: str | None = None
    # The whole transformers Mask2FormerConfig when the model was built from a checkpoint
    # folder's config: it then fixes the architecture and the shape fields above are unused.
    architecture: dict[str, Any] | None = None

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

    def _training_overrides(self) -> dict[str, Any]:
        """What we set whatever the architecture: our classes, ignore value and loss."""
        return dict(num_labels=len(CLASS_MAP), id2label={k: v for k, v in CLASS_MAP.items()},
                    label2id={v: k for k, v in CLASS_MAP.items()}, ignore_value=IGNORE,
                    train_num_points=self.train_num_points,
                    no_object_weight=self.no_object_weight, class_weight=self.class_weight,
                    mask_weight=self.mask_weight, dice_weight=self.dice_weight)

    def _own_config(self, backbone: SwinConfig | None = None) -> Mask2FormerConfig:
        # An explicit SwinConfig means transformers builds the backbone locally with random
        # weights: no timm, no hub; pretrained weights come only from ``pretrained_path``.
        # transformers' configs take these through **kwargs, which their stubs do not declare.
        if backbone is None:
            backbone = SwinConfig(  # type: ignore[call-arg]
                embed_dim=self.embed_dim, depths=list(self.depths),
                num_heads=list(self.num_heads), window_size=self.window_size,
                drop_path_rate=0.1, out_features=list(STAGES))
        h = self.hidden_dim
        return Mask2FormerConfig(
            backbone_config=backbone, hidden_dim=h, feature_size=h, mask_feature_size=h,
            encoder_layers=self.encoder_layers, encoder_feedforward_dim=4 * h,
            decoder_layers=self.decoder_layers, dim_feedforward=8 * h,
            num_attention_heads=self.num_attention_heads, num_queries=self.num_queries,
            **self._training_overrides())

    def hf_config(self) -> Mask2FormerConfig:
        """The transformers config this model is built from (no checkpoint is read)."""
        if self.architecture is None:
            return self._own_config()
        try:
            cfg = Mask2FormerConfig.from_dict({**self.architecture,
                                               **self._training_overrides()})
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError(f"architecture is not a Mask2Former config ({e})") from e
        return cfg

    def build(self) -> Mask2FormerForUniversalSegmentation:
        """The model, with pretrained weights when ``pretrained_path`` names some."""
        return self.build_with_report()[0]

    def build_with_report(self) -> tuple[Mask2FormerForUniversalSegmentation,
                                         Mask2FormerSegConfig, PretrainedReport | None]:
        """The model, the config it really has (``architecture`` filled in when a checkpoint
        folder chose it) and what loaded from ``pretrained_path`` (None without one)."""
        path = Path(self.pretrained_path) if self.pretrained_path else None
        if path is not None and path.is_dir():
            # The folder's own config fixes the architecture (so every shape can match).
            return _from_checkpoint_folder(self, path)
        torch.manual_seed(self.init_seed)
        model = Mask2FormerForUniversalSegmentation(self.hf_config())
        report = load_weights_report(model, path) if path is not None else None
        return model, self, report


STAGES = ("stage1", "stage2", "stage3", "stage4")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers prints its own load table and a progress bar; we report instead."""
    # transformers.utils.logging is untyped; Any keeps strict mypy quiet about it.
    from transformers.utils import logging as hf_logging_module

    hf_logging: Any = hf_logging_module
    level = hf_logging.get_verbosity()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def _from_checkpoint_folder(config: Mask2FormerSegConfig, folder: Path) -> tuple[
        Mask2FormerForUniversalSegmentation, Mask2FormerSegConfig, PretrainedReport]:
    """Build from a Hugging Face checkpoint folder, read locally (never from the hub).

    A Mask2Former checkpoint gives the whole architecture (backbone, pixel decoder, queries);
    its class head is re-headed to our two classes. A Swin checkpoint (``SwinModel`` or a Swin
    classifier) gives the backbone; the rest is built from ``config`` and starts from scratch.
    """
    cfg_file = folder / "config.json"
    if not cfg_file.is_file() or not any(folder.glob("*.safetensors")):
        raise ValueError(f"pretrained folder {folder} needs config.json and model.safetensors "
                         "(a Hugging Face checkpoint saved with save_pretrained)")
    try:
        model_type = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise ValueError(f"{cfg_file} is not a JSON config ({e})") from e
    torch.manual_seed(config.init_seed)
    model: Any
    info: dict[str, Any]
    # from_pretrained returns (model, info) with output_loading_info; its stubs say model only.
    m2f: Any = Mask2FormerForUniversalSegmentation
    swin: Any = SwinBackbone
    try:
        with _quiet_transformers():
            if model_type == "mask2former":
                hf_cfg = Mask2FormerConfig.from_pretrained(
                    str(folder), local_files_only=True, **config._training_overrides())
                model, info = m2f.from_pretrained(
                    str(folder), config=hf_cfg, ignore_mismatched_sizes=True,
                    output_loading_info=True, local_files_only=True, dtype=torch.float32)
                prefix, target = "", model
            elif model_type == "swin":
                backbone_cfg = SwinConfig.from_pretrained(
                    str(folder), local_files_only=True, out_features=list(STAGES))
                model = Mask2FormerForUniversalSegmentation(config._own_config(backbone_cfg))
                backbone, info = swin.from_pretrained(
                    str(folder), config=backbone_cfg, output_loading_info=True,
                    local_files_only=True, dtype=torch.float32)
                prefix = "model.pixel_level_module.encoder."
                target = model.model.pixel_level_module.encoder
                target.load_state_dict(backbone.state_dict())
            else:
                raise ValueError(f"{cfg_file}: model_type {model_type!r} is neither a "
                                 "Mask2Former ('mask2former') nor a Swin backbone ('swin')")
    except (OSError, RuntimeError, TypeError, KeyError) as e:
        raise ValueError(f"cannot load the checkpoint in {folder} ({e})") from e
    # Buffers made from the config (the no-object class weight) are ours, not the checkpoint's.
    model.criterion.empty_weight.copy_(_empty_weight(config))
    missing = set(info["missing_keys"])
    mismatched = {k: (tuple(a), tuple(b)) for k, a, b in info["mismatched_keys"]}
    loaded = sorted(prefix + k for k in target.state_dict()
                    if k not in missing and k not in mismatched)
    if not loaded:
        raise ValueError(f"no tensor in {folder} fits the model built from its config")
    own = set(model.state_dict())
    report = PretrainedReport(
        source=str(folder), kind=str(model_type), loaded=tuple(loaded),
        reheaded=tuple((prefix + k, a, b) for k, (a, b) in sorted(mismatched.items())),
        missing=tuple(sorted(own - set(loaded) - {prefix + k for k in mismatched})),
        unused=tuple(sorted(info["unexpected_keys"])),
        notes=(("head re-initialised for classes " + ", ".join(CLASS_MAP.values()),)
               if mismatched else ()))
    report.log()
    resolved = config.model_copy(update={"architecture": _architecture(model.config)})
    return cast(Mask2FormerForUniversalSegmentation, model), resolved, report


def _empty_weight(config: Mask2FormerSegConfig) -> torch.Tensor:
    w = torch.ones(len(CLASS_MAP) + 1)
    w[-1] = config.no_object_weight
    return w


def _architecture(cfg: Any) -> dict[str, Any]:
    """A JSON-ready transformers config (what a bundle needs to rebuild the same shapes)."""
    data: dict[str, Any] = json.loads(cfg.to_json_string(use_diff=False))
    for k in ("id2label", "label2id", "transformers_version", "architectures", "_name_or_path"):
        data.pop(k, None)
    return data


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


def semantic_loss(class_logits: torch.Tensor, mask_logits: torch.Tensor,
                  masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of :func:`cropland_probability` against the labels, at the mask
    logits' resolution (labels nearest-resampled; ignore pixels unscored)."""
    size = (int(mask_logits.shape[-2]), int(mask_logits.shape[-1]))
    prob = cropland_probability(class_logits, mask_logits, size).clamp(1e-5, 1 - 1e-5)
    target = F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0]
    valid = target != IGNORE
    if not bool(valid.any()):
        return prob.sum() * 0.0
    return F.binary_cross_entropy(prob[valid], target[valid])


@register_engine("mask2former")
class Mask2FormerEngine:
    """Mask2Former cropland segmenter (a ``SegmentationEngine``)."""

    name = "mask2former"
    bundle_kind = KIND
    # TrainOptions for training from scratch: at 3e-4 the same 150 steps on 4 fixed crops left
    # the output flat (IoU 0.00), at 1e-3 it fitted them (0.54). Fine-tuning a pretrained
    # checkpoint wants a lower rate (--lr 1e-4).
    train_defaults: dict[str, Any] = {"lr": 1e-3, "batch_size": 4, "crop_size": 128,
                                      "warmup_steps": 50}

    def __init__(self, config: Mask2FormerSegConfig | None = None, *,
                 device: str | torch.device | None = None,
                 model: Mask2FormerForUniversalSegmentation | None = None) -> None:
        self.config = config or Mask2FormerSegConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # What loaded from ``config.pretrained_path``; saved with the bundle (pretrained.json).
        self.pretrained: PretrainedReport | None = None
        if model is None:
            model, self.config, self.pretrained = self.config.build_with_report()
        # Held as a plain Module: transformers' own annotations leave eval/to untyped.
        self.model = cast(torch.nn.Module, model)
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
        if self.config.semantic_weight > 0:
            loss = loss + self.config.semantic_weight * semantic_loss(
                out.class_queries_logits, out.masks_queries_logits,
                torch.from_numpy(np.ascontiguousarray(masks)).to(self.device))
        return loss

    def train(self, samples: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]],
              **options: Any) -> dict[str, Any]:
        """Fit on ``(image, mask)`` samples. Keyword options are :class:`TrainOptions` fields
        plus ``work_dir`` (checkpoints, resume) and ``progress`` (tqdm bar)."""
        work_dir = options.pop("work_dir", None)
        progress = bool(options.pop("progress", False))
        sample_weights = options.pop("sample_weights", None)
        opts = options.pop("options", None) or TrainOptions(**options)
        sampler = opts.sampler(samples, sample_weights=sample_weights)
        identity = {"engine": self.name, "config": self.config.model_dump(mode="json"),
                    "n_samples": len(samples),
                    "data": [int(m.sum(dtype=np.int64)) for _, m in samples[:64]]}
        result = fit(self.model, loss_fn=self.loss, sampler=sampler, options=opts,
                     device=self.device, work_dir=work_dir, identity=identity,
                     progress=progress) | {"minority_class": sampler.minority_class}
        if self.pretrained is not None:
            result["pretrained"] = self.pretrained.summary()
        return result

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
        metrics = dict(metrics or {})
        extra: dict[str, Any] = {}
        if self.pretrained is not None:
            metrics.setdefault("pretrained", self.pretrained.summary())
            extra["pretrained.json"] = self.pretrained.to_dict()
        return segmenter_bundle_write(
            dest, kind=KIND, engine=self.name, model=self.model, config=self.config,
            normalisation={"mean": list(self.config.mean), "std": list(self.config.std),
                           "scale": 255.0, "channels": "RGB"},
            metrics=metrics, extra_files=extra, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *,
             device: str | torch.device | None = None) -> Mask2FormerEngine:
        # Weights come from the bundle, never from the original pretrained path.
        config = segmenter_bundle_config(path, kind=KIND, config_cls=Mask2FormerSegConfig)
        model = config.build()
        segmenter_bundle_weights(path, kind=KIND, model=model)
        return cls(config, device=device, model=model)
