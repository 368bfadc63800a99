"""Load pretrained weights from a configured local file (never from a hub), with a report."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

log = logging.getLogger(__name__)

# Names listed in full in a report up to this many; beyond it only the count and the first ones.
REPORT_NAMES = 200


@dataclass(frozen=True)
class PretrainedReport:
    """Which of a model's tensors came from a pretrained checkpoint and which did not.

    ``loaded``: copied from the checkpoint. ``reheaded``: present in both but with another shape
    (a head made for other classes), so left newly initialised; each is ``(name, checkpoint
    shape, model shape)``. ``missing``: the model has them, the checkpoint does not (newly
    initialised). ``unused``: checkpoint tensors the model has no place for.
    """

    source: str
    kind: str
    loaded: tuple[str, ...]
    reheaded: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
    missing: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """Counts and the re-headed names: short enough for a metrics file or a log line."""
        return {"source": self.source, "kind": self.kind, "loaded": len(self.loaded),
                "reheaded": [r[0] for r in self.reheaded], "missing": len(self.missing),
                "unused": len(self.unused), "notes": list(self.notes)}

    def to_dict(self) -> dict[str, Any]:
        def names(xs: tuple[str, ...]) -> list[str]:
            return list(xs[:REPORT_NAMES])

        return {**self.summary(),
                "loaded_names": names(self.loaded),
                "reheaded_shapes": [{"name": n, "checkpoint": list(a), "model": list(b)}
                                    for n, a, b in self.reheaded],
                "missing_names": names(self.missing), "unused_names": names(self.unused),
                "names_truncated_at": REPORT_NAMES}

    def log(self) -> None:
        log.info("pretrained %s (%s): %d tensors loaded, %d re-headed %s, %d newly initialised, "
                 "%d unused", self.source, self.kind, len(self.loaded), len(self.reheaded),
                 [r[0] for r in self.reheaded], len(self.missing), len(self.unused))


def load_weights_report(model: torch.nn.Module, path: str | Path) -> PretrainedReport:
    """Copy every tensor whose name and shape match from a ``.safetensors``/``.pt`` state dict
    (a backbone or a whole earlier model) and report what loaded.

    A classifier or segmentation head rarely matches a checkpoint made for other classes; the
    backbone may. None matching is an error.
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
    report = PretrainedReport(
        source=str(path), kind="state_dict", loaded=tuple(sorted(matched)),
        reheaded=tuple((k, tuple(v.shape), tuple(own[k].shape)) for k, v in sorted(state.items())
                       if k in own and own[k].shape != v.shape),
        missing=tuple(sorted(k for k in own if k not in state)),
        unused=tuple(sorted(k for k in state if k not in own)))
    report.log()
    return report


def load_matching_weights(model: torch.nn.Module, path: str | Path) -> int:
    """:func:`load_weights_report`, returning how many tensors were loaded."""
    return len(load_weights_report(model, path).loaded)
