"""A segmenter's bundle on disk: weights, config, class map, normalisation and metrics.

Every engine writes the same files, so a bundle is read the same way whatever built it; only
the config class and the model differ.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file

from learning.core.bundle import BundleError, bundle_open, bundle_writer

CLASS_MAP = {0: "background", 1: "cropland"}
ConfigT = TypeVar("ConfigT", bound=BaseModel)


def _class_map_json() -> dict[str, str]:
    return {str(k): v for k, v in CLASS_MAP.items()}


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def segmenter_bundle_write(dest: str | os.PathLike[str], *, kind: str, engine: str,
                           model: torch.nn.Module, config: BaseModel,
                           normalisation: Mapping[str, Any], metrics: Mapping[str, Any],
                           extra_files: Mapping[str, Any] | None = None,
                           overwrite: bool = False) -> Path:
    """Write the bundle atomically (``bundle_writer``); ``extra_files`` are more JSON files."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with bundle_writer(dest, kind=kind, overwrite=overwrite, extra={"engine": engine}) as tmp:
        save_file(state, str(tmp / "weights.safetensors"))
        (tmp / "config.json").write_text(config.model_dump_json(indent=2))
        write_json(tmp / "class_map.json", _class_map_json())
        write_json(tmp / "normalisation.json", dict(normalisation))
        for name, obj in (extra_files or {}).items():
            write_json(tmp / name, obj)
        write_json(tmp / "metrics.json", dict(metrics))
    return Path(dest)


def segmenter_bundle_config(path: str | os.PathLike[str], *, kind: str,
                            config_cls: type[ConfigT]) -> ConfigT:
    """The bundle's config, checked against its class map; weights come from the bundle, never
    from the pretrained path the config was first built with."""
    bundle = bundle_open(path, kind=kind)
    try:
        text = bundle.file("config.json").read_text(encoding="utf-8")
        config = config_cls.model_validate_json(text)
    except ValueError as e:
        raise BundleError(f"{path}: invalid config.json ({e})") from e
    if bundle.read_json("class_map.json") != _class_map_json():
        raise BundleError(f"{path}: class map is not {CLASS_MAP}")
    if "pretrained_path" in type(config).model_fields:
        config = config.model_copy(update={"pretrained_path": None})
    return config


def segmenter_bundle_weights(path: str | os.PathLike[str], *, kind: str,
                             model: torch.nn.Module) -> None:
    """Load the bundle's weights into ``model``; BundleError when they do not fit it."""
    bundle = bundle_open(path, kind=kind, verify=False)
    try:
        model.load_state_dict(load_file(str(bundle.file("weights.safetensors"))))
    except (RuntimeError, OSError) as e:
        raise BundleError(f"{path}: weights do not fit the config ({e})") from e
