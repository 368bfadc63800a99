"""The coverage-type classifier: a ResNet (built from a config, no hub) over block thumbnails."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_file, save_file
from transformers import ResNetConfig, ResNetForImageClassification

from learning.core.bundle import BundleError, bundle_open, bundle_writer
from learning.core.weights import load_matching_weights

KIND = "iqa-resnet"


class CoverageType(StrEnum):
    """Coverage types in the classifier's output order (the paper's five classes)."""

    PLANTING = "planting"
    NON_PLANTING = "non_planting"
    CLOUDY = "cloudy"
    SNOW_ICE = "snow_ice"
    NODATA = "nodata"


COVERAGE_TYPES: tuple[CoverageType, ...] = tuple(CoverageType)
CLASS_MAP = {i: c.value for i, c in enumerate(COVERAGE_TYPES)}


class IQAConfig(BaseModel):
    """What to build and how to train it; stored as ``config.json`` in the bundle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: Annotated[int, Field(ge=32)] = 224
    embedding_size: Annotated[int, Field(ge=4)] = 64
    hidden_sizes: tuple[int, ...] = (64, 128, 256, 512)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    layer_type: Literal["basic", "bottleneck"] = "basic"
    epochs: Annotated[int, Field(ge=1)] = 10
    batch_size: Annotated[int, Field(ge=1)] = 32
    lr: Annotated[float, Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1e-4
    seed: int = 0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    pretrained_path: str | None = None

    @model_validator(mode="after")
    def _check(self) -> IQAConfig:
        if not self.depths or len(self.depths) != len(self.hidden_sizes):
            raise ValueError("depths and hidden_sizes need the same, non-zero number of stages")
        return self

    @classmethod
    def tiny(cls, **overrides: Any) -> IQAConfig:
        base: dict[str, Any] = dict(input_size=32, embedding_size=8, hidden_sizes=(8, 16),
                                    depths=(1, 1), epochs=3, batch_size=8, lr=3e-3)
        base.update(overrides)
        return cls(**base)

    def build(self) -> ResNetForImageClassification:
        cfg = ResNetConfig(  # type: ignore[call-arg]  # num_labels etc. via **kwargs
                           num_channels=3, embedding_size=self.embedding_size,
                           hidden_sizes=list(self.hidden_sizes), depths=list(self.depths),
                           layer_type=self.layer_type, num_labels=len(COVERAGE_TYPES),
                           id2label=dict(CLASS_MAP),
                           label2id={v: k for k, v in CLASS_MAP.items()})
        torch.manual_seed(self.seed)
        model = ResNetForImageClassification(cfg)
        if self.pretrained_path:
            load_matching_weights(model, self.pretrained_path)
        return model


@dataclass(frozen=True)
class IQAPrediction:
    labels: list[CoverageType]
    probabilities: npt.NDArray[np.float32]  # N × 5, columns in COVERAGE_TYPES order


@dataclass(frozen=True)
class IQAEvaluation:
    accuracy: float
    confusion: npt.NDArray[np.int64]  # 5 × 5, rows true type, columns predicted type
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "confusion": self.confusion.tolist(), "n": self.n,
                "classes": [c.value for c in COVERAGE_TYPES]}


def _label_index(label: CoverageType | str | int) -> int:
    if isinstance(label, CoverageType):
        return COVERAGE_TYPES.index(label)
    if isinstance(label, str):
        try:
            return COVERAGE_TYPES.index(CoverageType(label))
        except ValueError:
            raise ValueError(f"unknown coverage type {label!r}") from None
    i = int(label)
    if not 0 <= i < len(COVERAGE_TYPES):
        raise ValueError(f"coverage type index {i} out of range")
    return i


class IQAClassifier:
    """Train, evaluate, predict and bundle the coverage-type ResNet."""

    def __init__(self, config: IQAConfig | None = None, *,
                 device: str | torch.device | None = None,
                 model: ResNetForImageClassification | None = None) -> None:
        self.config = config or IQAConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # Held as a plain Module: transformers' own annotations leave eval/to untyped.
        self.model = cast(torch.nn.Module, model or self.config.build())
        self.model.to(self.device)
        self.model.eval()

    def _prepare(self, images: Sequence[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8],
                 ) -> npt.NDArray[np.float32]:
        s = self.config.input_size
        out = np.empty((len(images), s, s, 3), dtype=np.float32)
        for i, img in enumerate(images):
            img = np.asarray(img)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"image {i} must be H×W×3 uint8, got {img.shape} {img.dtype}")
            shrink = img.shape[0] >= s and img.shape[1] >= s
            out[i] = cv2.resize(img, (s, s),
                                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        mean = np.asarray(self.config.mean, dtype=np.float32) * 255.0
        std = np.asarray(self.config.std, dtype=np.float32) * 255.0
        normed: npt.NDArray[np.float32] = (out - mean) / std
        return normed

    def _tensor(self, x: npt.NDArray[np.float32]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(self.device)

    def train(self, images: Sequence[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8],
              labels: Sequence[CoverageType | str | int], *,
              on_step: Callable[[int, int], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Fit with AdamW and cosine decay; flips and 90° rotations (coverage is orientation
        free). Seeded by ``config.seed``; returns per-step and per-epoch losses.
        ``on_step(done, total)`` is called after every optimiser step (a progress bar);
        ``should_stop()`` is asked before every step, and when it says yes training ends there
        (a round cancelled or its lease lost) with ``stopped`` true in the result."""
        if len(images) != len(labels) or not len(images):
            raise ValueError(f"need as many labels as images (got {len(images)} images, "
                             f"{len(labels)} labels)")
        x_all = self._prepare(images)
        y_all = np.array([_label_index(v) for v in labels], dtype=np.int64)
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = -(-len(x_all) // cfg.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch)
        step_losses: list[float] = []
        epoch_losses: list[float] = []
        stopped = False
        self.model.train()
        try:
            for _ in range(cfg.epochs):
                order = rng.permutation(len(x_all))
                losses = []
                for b in range(steps_per_epoch):
                    if should_stop is not None and should_stop():
                        stopped = True
                        break
                    idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                    xb = np.rot90(x_all[idx], int(rng.integers(4)), axes=(1, 2))
                    if rng.random() < 0.5:
                        xb = xb[:, :, ::-1]
                    logits = self.model(pixel_values=self._tensor(xb)).logits
                    loss = F.cross_entropy(logits, torch.from_numpy(y_all[idx]).to(self.device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()  # type: ignore[no-untyped-call]  # torch stub gap
                    opt.step()
                    sched.step()
                    losses.append(float(loss.detach()))
                    if on_step is not None:
                        on_step(len(step_losses) + len(losses), cfg.epochs * steps_per_epoch)
                step_losses += losses
                if losses:
                    epoch_losses.append(float(np.mean(losses)))
                if stopped:
                    break
        finally:
            self.model.eval()
        return {"step_losses": step_losses, "epoch_losses": epoch_losses, "stopped": stopped}

    @torch.no_grad()
    def predict(self, images: Sequence[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8],
                *, batch_size: int = 64) -> IQAPrediction:
        self.model.eval()
        x = self._prepare(images)
        probs = [F.softmax(self.model(pixel_values=self._tensor(x[i:i + batch_size])).logits, -1)
                 .cpu().numpy() for i in range(0, len(x), batch_size)]
        p = (np.concatenate(probs) if probs else np.zeros((0, len(COVERAGE_TYPES)))).astype(
            np.float32)
        return IQAPrediction(labels=[COVERAGE_TYPES[i] for i in p.argmax(axis=1)],
                             probabilities=p)

    def evaluate(self, images: Sequence[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8],
                 labels: Sequence[CoverageType | str | int]) -> IQAEvaluation:
        """Top-1 accuracy and the 5×5 confusion matrix (rows true, columns predicted)."""
        if len(images) != len(labels) or not len(images):
            raise ValueError("need the same, non-zero number of images and labels")
        truth = np.array([_label_index(v) for v in labels])
        pred = np.array([COVERAGE_TYPES.index(c) for c in self.predict(images).labels])
        k = len(COVERAGE_TYPES)
        confusion = np.bincount(truth * k + pred, minlength=k * k).reshape(k, k).astype(np.int64)
        return IQAEvaluation(accuracy=float((truth == pred).mean()), confusion=confusion,
                             n=len(truth))

    def save(self, dest: str | os.PathLike[str], *, metrics: dict[str, Any] | None = None,
             overwrite: bool = False) -> Path:
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with bundle_writer(dest, kind=KIND, overwrite=overwrite) as tmp:
            save_file(state, str(tmp / "weights.safetensors"))
            (tmp / "config.json").write_text(self.config.model_dump_json(indent=2))
            for name, obj in (("class_map.json", {str(k): v for k, v in CLASS_MAP.items()}),
                              ("normalisation.json", {"mean": list(self.config.mean),
                                                      "std": list(self.config.std),
                                                      "scale": 255.0, "channels": "RGB",
                                                      "input_size": self.config.input_size}),
                              ("metrics.json", metrics or {})):
                (tmp / name).write_text(json.dumps(obj, indent=2), encoding="utf-8")
        return Path(dest)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *,
             device: str | torch.device | None = None) -> IQAClassifier:
        bundle = bundle_open(path, kind=KIND)
        try:
            config = IQAConfig.model_validate_json(bundle.file("config.json").read_text())
        except ValueError as e:
            raise BundleError(f"{path}: invalid config.json ({e})") from e
        if bundle.read_json("class_map.json") != {str(k): v for k, v in CLASS_MAP.items()}:
            raise BundleError(f"{path}: class map differs from {CLASS_MAP}")
        model = config.model_copy(update={"pretrained_path": None}).build()
        try:
            model.load_state_dict(load_file(str(bundle.file("weights.safetensors"))))
        except (RuntimeError, OSError) as e:
            raise BundleError(f"{path}: weights do not fit the config ({e})") from e
        return cls(config, device=device, model=model)
