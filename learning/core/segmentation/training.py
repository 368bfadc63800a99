"""A resumable training loop: per-epoch checkpoints, seeded epochs, time budget, CUDA AMP."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from learning.core.segmentation.data import CropSampler

CHECKPOINT = "checkpoint.pt"


class TrainOptions(BaseModel):
    """How to train (not what to build): the schedule, crops, seed and limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: Annotated[int, Field(ge=1)] = 10
    steps_per_epoch: Annotated[int, Field(ge=1)] = 100
    batch_size: Annotated[int, Field(ge=1)] = 8
    crop_size: Annotated[int, Field(ge=16)] = 256
    lr: Annotated[float, Field(gt=0)] = 1e-4
    weight_decay: Annotated[float, Field(ge=0)] = 0.05
    warmup_steps: Annotated[int, Field(ge=0)] = 50
    grad_clip: Annotated[float, Field(gt=0)] = 1.0
    seed: int = 0
    balance: bool = True
    jitter: Annotated[float, Field(ge=0, le=0.9)] = 0.2
    time_budget_s: Annotated[float | None, Field(gt=0)] = None
    # "wall": seconds on the clock (what a round waits for); "cpu": CPU seconds of this process
    # (with one torch thread, the wall seconds of an idle machine: benchmarks on a shared CPU).
    budget_clock: Literal["wall", "cpu"] = "wall"
    amp: bool = True
    # Evaluate with an exponential moving average of the weights (BatchNorm buffers included);
    # None trains and returns the raw weights.
    ema_decay: Annotated[float | None, Field(gt=0, lt=1)] = None
    # Random zoom of each crop, log-uniform in [min, max] (None: crops at the data's scale).
    scale_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] | None = None
    # Sensor-like photometric augmentation, 0–1 (see ``data.augment``); None: off.
    photometric: Annotated[float | None, Field(ge=0, le=1)] = None

    def sampler(self, samples: Any, *, sample_weights: Any = None) -> CropSampler:
        """The crop sampler these options describe."""
        return CropSampler(samples, crop_size=self.crop_size, balance=self.balance,
                           jitter=self.jitter, scale_range=self.scale_range,
                           photometric=self.photometric or 0.0,
                           sample_weights=sample_weights)

    def fingerprint(self) -> dict[str, Any]:
        # The time budget limits one run; it does not change what a resumed run must continue.
        # Options added later count only when set, so older checkpoints still resume.
        later = {k for k in _LATER_OPTIONS if getattr(self, k) is None}
        return self.model_dump(exclude={"time_budget_s", "budget_clock"} | later)


_LATER_OPTIONS = ("ema_decay", "scale_range", "photometric")


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _lr_factor(progress: float, step: int, warmup: int) -> float:
    warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class _Ema:
    """Exponential moving average of a model's state (parameters and float buffers); the
    decay ramps up over the first steps so the average is not dominated by the random init."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)
        self.updates += 1

    def state(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": self.shadow}

    def load(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


def checkpoint_epoch(work_dir: str | os.PathLike[str]) -> int:
    """The epoch a ``fit`` in ``work_dir`` resumes from: 0 without a checkpoint, or with a torn
    one (``fit`` refuses or restarts it; saying so is not this function's business)."""
    path = Path(work_dir) / CHECKPOINT
    if not path.is_file():
        return 0
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["epoch"]) + 1
    except Exception:  # a torn checkpoint: not fatal here
        return 0


def fit(model: torch.nn.Module, *,
        loss_fn: Callable[[torch.nn.Module, np.ndarray, np.ndarray], torch.Tensor],
        sampler: CropSampler, options: TrainOptions, device: torch.device,
        work_dir: str | os.PathLike[str] | None = None, identity: dict[str, Any] | None = None,
        progress: bool = False, should_stop: Callable[[], bool] | None = None,
        on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train ``model`` in place; return the loss history and how the run ended.

    Epoch ``e`` draws its crops from ``default_rng([seed, e])``, so a run resumed from the
    checkpoint of epoch ``e - 1`` sees exactly the crops the uninterrupted run would have.
    ``identity`` (model config, data description) is hashed with the options; a work dir whose
    checkpoint has another identity is refused rather than silently mixed.

    ``should_stop`` is asked before every step; when it says yes the run ends there
    (``stopped == "stop_requested"``) without checkpointing the unfinished epoch, so a resumed
    run repeats it from its start. ``on_step`` receives the number of steps done so far
    (resumed epochs included) after each step.
    """
    fp = hashlib.sha256(json.dumps({"options": options.fingerprint(), "identity": identity},
                                   sort_keys=True, default=str).encode()).hexdigest()[:16]
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    use_amp = options.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[float] = []
    step_losses: list[float] = []
    start_epoch = 0
    ema = _Ema(model, options.ema_decay) if options.ema_decay else None
    ckpt_path = Path(work_dir) / CHECKPOINT if work_dir is not None else None
    if ckpt_path is not None:
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        if ckpt_path.is_file():
            ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
            if ckpt.get("fingerprint") != fp:
                raise ValueError(f"{ckpt_path.parent} holds a checkpoint of a different training "
                                 "(config, options or data changed); use a fresh work dir")
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            scaler.load_state_dict(ckpt["scaler"])
            history = list(ckpt["history"])
            start_epoch = int(ckpt["epoch"]) + 1
            if ema is not None:
                ema.load(ckpt["ema"])
    total_steps = options.epochs * options.steps_per_epoch
    clock = time.process_time if options.budget_clock == "cpu" else time.monotonic
    t0 = time.monotonic()
    c0 = clock()
    stopped = "completed"
    epochs_done = start_epoch
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=start_epoch * options.steps_per_epoch,
                   unit="step", dynamic_ncols=True)
    model.train()
    try:
        for epoch in range(start_epoch, options.epochs):
            rng = np.random.default_rng([options.seed, epoch])
            torch.manual_seed(options.seed * 100_003 + epoch)
            epoch_losses: list[float] = []
            for s in range(options.steps_per_epoch):
                elapsed = clock() - c0
                if options.time_budget_s is not None and elapsed >= options.time_budget_s:
                    stopped = "time_budget"
                    break
                if should_stop is not None and should_stop():
                    stopped = "stop_requested"
                    break
                step = epoch * options.steps_per_epoch + s
                prog = step / total_steps
                if options.time_budget_s is not None:
                    prog = max(prog, elapsed / options.time_budget_s)
                for g in opt.param_groups:
                    g["lr"] = options.lr * _lr_factor(prog, step, options.warmup_steps)
                imgs, masks = sampler.draw(rng, options.batch_size)
                with torch.autocast(device_type=device.type, dtype=torch.float16,
                                    enabled=use_amp):
                    loss = loss_fn(model, imgs, masks)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # torch stub gap
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
                scaler.step(opt)
                scaler.update()
                if ema is not None:
                    ema.update(model)
                epoch_losses.append(float(loss.detach()))
                step_losses.append(epoch_losses[-1])
                if on_step is not None:
                    on_step(step + 1)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{epoch_losses[-1]:.3f}")
            if stopped != "completed":
                break
            history.append(float(np.mean(epoch_losses)))
            epochs_done = epoch + 1
            if ckpt_path is not None:
                _atomic_save({"fingerprint": fp, "epoch": epoch, "model": model.state_dict(),
                              "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                              "history": history,
                              **({"ema": ema.state()} if ema is not None else {})}, ckpt_path)
        if ema is not None and ema.updates:
            model.load_state_dict(ema.shadow)
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    return {"epoch_losses": history, "step_losses": step_losses, "epochs_completed": epochs_done,
            "resumed_from_epoch": start_epoch, "stopped": stopped,
            "seconds": round(time.monotonic() - t0, 2),
            "budget_seconds": round(clock() - c0, 2), "budget_clock": options.budget_clock}
