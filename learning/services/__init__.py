"""Writes of the learning app: rounds (``round/``), the model registry, the validation design.

Re-exported here so that ``from learning.services import round_start`` works.
"""

from learning.services.config import RoundConfig, RoundConfigError, round_config_parse
from learning.services.registry import (
    ModelVersionError,
    model_version_make_current,
    model_version_register,
    model_version_set_current,
)
from learning.services.round.lifecycle import (
    RoundConflict,
    RoundInputError,
    RoundNotActive,
    round_cancel,
    round_start,
)
from learning.services.round.progress import round_broadcast, round_event
from learning.services.validation import systematic_sample_create, validation_split_ensure

__all__ = [
    "ModelVersionError",
    "RoundConfig",
    "RoundConfigError",
    "RoundConflict",
    "RoundInputError",
    "RoundNotActive",
    "model_version_make_current",
    "model_version_register",
    "model_version_set_current",
    "round_broadcast",
    "round_cancel",
    "round_config_parse",
    "round_event",
    "round_start",
    "systematic_sample_create",
    "validation_split_ensure",
]
