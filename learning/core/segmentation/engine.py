"""The segmentation engine protocol and a registry of engines by name and bundle kind."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from learning.core.bundle import BundleError, bundle_open
from learning.core.segmentation.engine_registry import ENGINES as _ENGINES


@runtime_checkable
class SegmentationEngine(Protocol):
    """A binary cropland segmenter (class 1 cropland, 0 background, 255 ignore in masks).

    Engines hold their own model; ``train`` fits it on (image, mask) samples, ``predict_proba``
    gives per-pixel cropland probability for a batch of equally sized RGB uint8 images, and
    ``save``/``load`` go through a model bundle so inference never needs the training code path.
    """

    name: str
    bundle_kind: str

    def train(self, samples: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]],
              **options: Any) -> dict[str, Any]: ...

    def predict_proba(self, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]: ...

    def save(self, dest: str | os.PathLike[str], *, metrics: dict[str, Any] | None = None,
             overwrite: bool = False) -> Path: ...

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SegmentationEngine: ...


def _ensure_builtin() -> None:
    # Importing registers the built-in engines (engine_registry); kept lazy so that the protocol
    # imports without torch.
    from learning.core.segmentation import mask2former, unet  # noqa: F401


def engine_names() -> list[str]:
    _ensure_builtin()
    return sorted(_ENGINES)


def get_engine(name: str) -> type[Any]:
    """The engine class registered as ``name``; ValueError lists the known names."""
    _ensure_builtin()
    try:
        return _ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(_ENGINES))
        raise ValueError(f"unknown segmentation engine {name!r}; known: {known}") from None


def load_segmenter(path: str | os.PathLike[str]) -> SegmentationEngine:
    """Load any registered engine from its bundle, chosen by the bundle's kind."""
    _ensure_builtin()
    kind = bundle_open(path, verify=False).kind
    for cls in _ENGINES.values():
        if getattr(cls, "bundle_kind", None) == kind:
            engine: SegmentationEngine = cls.load(path)
            return engine
    raise BundleError(f"{path} is a {kind!r} bundle, which no segmentation engine reads")


def default_engine_name(*, cuda: bool | None = None) -> str:
    """The engine that learns best on this hardware: Mask2Former where a CUDA GPU can train
    it, the U-Net on a CPU (where Mask2Former from scratch stays near a constant guess)."""
    if cuda is None:
        import torch

        cuda = bool(torch.cuda.is_available())
    return "mask2former" if cuda else "unet"


def engine_config_class(name: str) -> type[Any]:
    """The pydantic config class an engine is built from (its ``__init__``'s ``config``)."""
    import typing

    cls = get_engine(name)
    explicit = getattr(cls, "config_class", None)
    if explicit is not None:
        return cast(type[Any], explicit)
    hint = typing.get_type_hints(cls.__init__).get("config")
    for arg in (*typing.get_args(hint), hint):
        if isinstance(arg, type) and hasattr(arg, "model_validate"):
            return arg
    raise ValueError(f"segmentation engine {name!r} does not name its config class")


def engine_config(name: str, *, preset: str = "default", **overrides: Any) -> Any:
    """An engine's config from a preset (``default``, or a classmethod such as ``tiny``) with
    field overrides; ValueError names an unknown preset."""
    cfg_cls = engine_config_class(name)
    if preset == "default":
        return cfg_cls(**overrides)
    make = getattr(cfg_cls, preset, None)
    if not callable(make):
        raise ValueError(f"engine {name!r} has no preset {preset!r}")
    return make(**overrides)


def engine_build(name: str, *, preset: str = "default", device: str | None = None,
                 **overrides: Any) -> Any:
    """A fresh engine ``name`` built from ``preset`` with config ``overrides``."""
    return get_engine(name)(engine_config(name, preset=preset, **overrides), device=device)


def engine_train_defaults(name: str) -> dict[str, Any]:
    """TrainOptions values that suit the engine (learning rate, crops, batch, EMA)."""
    return dict(getattr(get_engine(name), "train_defaults", {}))
