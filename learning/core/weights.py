"""Load pretrained weights from a configured local file (never from a hub)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def load_matching_weights(model: torch.nn.Module, path: str | Path) -> int:
    """Copy every tensor whose name and shape match (a backbone or a whole earlier model).

    A classifier or segmentation head rarely matches a checkpoint made for other classes; the
    backbone may. Returns how many tensors were loaded; none matching is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pretrained weights {path} do not exist")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"no tensor in {path} matches this model's names and shapes")
    model.load_state_dict(matched, strict=False)
    return len(matched)
