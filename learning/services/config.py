"""The typed configuration of a learning round (stored as JSON on the round)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from learning.core.stopping import StoppingRules


class RoundConfigError(ValueError):
    """The round configuration is invalid; the message says which key and why."""


class SelectionWeights(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    p_incorrect: Annotated[float, Field(ge=0)] = 0.5
    low_confidence: Annotated[float, Field(ge=0)] = 0.25
    disagreement: Annotated[float, Field(ge=0)] = 0.25


class RoundConfig(BaseModel):
    """What a round trains and how it fans out. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Segmenter: the engine ("auto": the one that learns best on the worker's hardware, U-Net
    # on a CPU, Mask2Former with CUDA), a preset of its config, and TrainOptions; batch, crop,
    # learning rate and warm-up default to the engine's own (None). Training stops after
    # ``train_seconds`` or ``epochs`` x ``steps_per_epoch`` steps, whichever comes first.
    segmenter_engine: Literal["auto", "unet", "mask2former"] = "auto"
    segmenter_preset: Literal["tiny", "default"] = "default"
    # Per engine, field overrides of its config on top of the preset (e.g. ``{"unet":
    # {"widths": [8, 16, 32, 64]}}``): used when the round trains that engine; an unknown
    # field fails the round's training stage with the field's name.
    segmenter_model: dict[Literal["unet", "mask2former"], dict[str, Any]] = Field(
        default_factory=dict
    )
    train_seconds: Annotated[float | None, Field(gt=0, le=86_400)] = 600.0
    # What ``train_seconds`` counts: wall-clock seconds, or the training process's CPU seconds
    # (the same amount of training on a machine busy with other work).
    train_clock: Literal["wall", "cpu"] = "wall"
    epochs: Annotated[int, Field(ge=1, le=100_000)] = 10
    steps_per_epoch: Annotated[int, Field(ge=1, le=100_000)] = 100
    batch_size: Annotated[int | None, Field(ge=1, le=256)] = None
    crop_size: Annotated[int | None, Field(ge=32, le=2048)] = None
    lr: Annotated[float | None, Field(gt=0, le=1)] = None
    warmup_steps: Annotated[int | None, Field(ge=0)] = None
    warm_start: bool = True
    seed: int = 0
    # Inference on whole blocks.
    window: Annotated[int, Field(ge=32, le=4096)] = 512
    overlap: Annotated[int, Field(ge=0, le=2048)] = 128
    # Windows per model forward; None: the engine's own (2 for the U-Net, 4 for Mask2Former,
    # right for a CPU). On a GPU a whole block's windows (about 48) in one or two forwards.
    predict_batch_windows: Annotated[int | None, Field(ge=1, le=1024)] = None
    # Image-quality classifier.
    iqa_preset: Literal["tiny", "default"] = "default"
    iqa_epochs: Annotated[int | None, Field(ge=1, le=1000)] = None
    iqa_min_labels: Annotated[int, Field(ge=2)] = 10
    # Correctness model.
    correctness_min_verdicts: Annotated[int, Field(ge=4)] = 10
    # Integration model (trained on the leads' integration labels and overrides).
    integration_min_labels: Annotated[int, Field(ge=4)] = 8
    # Fan-out.
    # Predict tasks are sized by time: about ``batch_seconds`` of work each, from the seconds
    # per image the campaign's last round measured (``batch_blocks`` blocks per task when no
    # round has predicted yet, or when ``batch_seconds`` is None). Feature batches stay by count.
    batch_blocks: Annotated[int, Field(ge=1, le=1000)] = 8
    batch_seconds: Annotated[float | None, Field(gt=0, le=86_400)] = 120.0
    sources: list[str] | None = None
    fetch_missing_images: bool = True
    blocks_per_province_limit: Annotated[int | None, Field(ge=1)] = None
    # Validation and selection.
    validation_share: Annotated[float, Field(ge=0, lt=1)] = 0.25
    # At least this many held-out blocks per province (as far as finished, never-trained blocks
    # allow); pair it with stopping.min_iou_samples so that too few blocks leave IoU unknown.
    validation_min_blocks: Annotated[int, Field(ge=0, le=10_000)] = 0
    select_per_province: Annotated[int, Field(ge=0, le=10_000)] = 10
    spread_cell_deg: Annotated[float, Field(ge=0, le=10)] = 0.2
    weights: SelectionWeights = SelectionWeights()
    stopping: dict[str, Any] = Field(default_factory=dict)
    # Registry and robustness.
    make_current: bool = True
    stale_after_s: Annotated[float, Field(ge=2, le=86_400)] = 300.0
    max_duration_s: Annotated[float, Field(ge=10)] = 172_800.0
    max_resumes: Annotated[int, Field(ge=0, le=100)] = 3

    @field_validator("segmenter_model")
    @classmethod
    def _model_fields(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        reserved = {"init_seed", "pretrained_path"} & {k for fields in v.values() for k in fields}
        if reserved:
            raise ValueError(f"{', '.join(sorted(reserved))} is set by the round, not the config")
        return v

    @field_validator("stopping")
    @classmethod
    def _rules(cls, v: dict[str, Any]) -> dict[str, Any]:
        StoppingRules(**v)  # raises with the offending key
        return v

    @property
    def rules(self) -> StoppingRules:
        return StoppingRules(**self.stopping)

    @property
    def heartbeat_every_s(self) -> float:
        return max(1.0, self.stale_after_s / 5)


def round_config_parse(data: dict[str, Any] | None) -> RoundConfig:
    """Validate a JSON config; RoundConfigError names every bad key."""
    if data is not None and not isinstance(data, dict):
        raise RoundConfigError("config must be a JSON object")
    try:
        return RoundConfig(**(data or {}))
    except ValidationError as e:
        parts = [
            f"{'.'.join(str(x) for x in err['loc']) or 'config'}: {err['msg']}"
            for err in e.errors()
        ]
        raise RoundConfigError("; ".join(parts)) from e
    except TypeError as e:
        raise RoundConfigError(str(e)) from e


# Round presets offered on the rounds page (merged into the round config, which the engine
# validates). All train the engine that learns best on the worker's hardware ("auto": U-Net on
# a CPU, Mask2Former with CUDA). "demo" trains the full-size model for 90 s, long enough to
# learn; "tiny" trains a tiny model a few steps so a round finishes in a minute (tests, smoke
# runs); "small" trains the tiny model for 20 s.
ROUND_PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "segmenter_engine": "auto", "segmenter_preset": "default", "iqa_preset": "tiny",
        # Half the default U-Net's widths: predicting a ~600 px demo image takes 0.27 CPU-s
        # instead of 0.93 (predicting every block is most of a round's time on a CPU).
        "segmenter_model": {"unet": {"widths": [8, 16, 32, 64]}},
        # 90 CPU-s of training: as much on a busy machine as on an idle one.
        "train_seconds": 90, "train_clock": "cpu", "epochs": 100, "steps_per_epoch": 50,
        # One 704 px window covers a demo image (583 x 647-678 px at zoom 14): a 640 px window
        # took two overlapping windows (0.57 s a block instead of 0.39), four 512 px ones more.
        "window": 704, "overlap": 64, "iqa_epochs": 3,
    },
    "tiny": {
        "segmenter_engine": "auto", "segmenter_preset": "tiny", "iqa_preset": "tiny",
        "train_seconds": 30, "epochs": 1, "steps_per_epoch": 2, "batch_size": 2,
        "crop_size": 64, "warmup_steps": 0, "window": 128, "overlap": 16, "iqa_epochs": 1,
    },
    "small": {
        "segmenter_engine": "auto", "segmenter_preset": "tiny", "iqa_preset": "tiny",
        "train_seconds": 20, "epochs": 100, "steps_per_epoch": 25, "batch_size": 4,
        "crop_size": 128, "warmup_steps": 5, "window": 256, "overlap": 32, "iqa_epochs": 3,
    },
}
