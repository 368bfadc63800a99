"""Writes of the annotation app, one module per concept: samples, labels, workflow.

Everything is re-exported here so that ``from annotation.services import polygon_create`` (and
the helpers other modules share) keeps working.
"""

from annotation.services.labels import (
    LabelWrite,
    NothingToJudge,
    PredictionChanged,
    coverage_label_set,
    integration_label_set,
    verdict_label_set,
)
from annotation.services.samples import (
    OperationIdReused,
    PolygonNotFound,
    SampleWrite,
    StaleVersion,
    _audit,
    _fingerprint,
    _geos,
    _polygon_for_write,
    _replay,
    _sample_claim,
    _sample_write,
    _stale,
    polygon_create,
    polygon_delete,
    polygon_update,
    sample_mark_negative,
)
from annotation.services.workflow import (
    AssignmentRefused,
    TransitionRefused,
    agreement_blocks_choose,
    agreement_share_assign,
    assignment_create,
    assignment_review,
    assignment_self_claim,
    assignment_start,
    assignment_submit,
    block_next_for_user,
)

__all__ = [
    "AssignmentRefused",
    "LabelWrite",
    "NothingToJudge",
    "OperationIdReused",
    "PredictionChanged",
    "PolygonNotFound",
    "SampleWrite",
    "StaleVersion",
    "TransitionRefused",
    "_audit",
    "_fingerprint",
    "_geos",
    "_polygon_for_write",
    "_replay",
    "_sample_claim",
    "_sample_write",
    "_stale",
    "agreement_blocks_choose",
    "agreement_share_assign",
    "assignment_create",
    "assignment_review",
    "assignment_self_claim",
    "assignment_start",
    "assignment_submit",
    "block_next_for_user",
    "coverage_label_set",
    "integration_label_set",
    "polygon_create",
    "polygon_delete",
    "polygon_update",
    "sample_mark_negative",
    "verdict_label_set",
]
