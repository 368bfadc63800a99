"""Rounds, model versions, block predictions and scores, and each province's stop status.

A learning round is a database row that moves through states; every trained model is a
:class:`ModelVersion` pointing at a bundle folder (``learning.core.bundle``); every prediction of
a block on one source is a :class:`BlockPrediction`; what a round measured per province is a
:class:`ProvinceRoundResult`, and where each province stands is its :class:`ProvinceStatus`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.gis.db import models
from django.db.models import Func, Q
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _


class ModelKind(models.TextChoices):
    SEGMENTER = "segmenter", _("Cropland segmenter (Mask2Former)")
    IQA = "iqa", _("Image-quality classifier (ResNet)")
    CORRECTNESS = "correctness", _("Semantic-correctness model (XGBoost)")
    INTEGRATION = "integration", _("Integration model (XGBoost)")


class RoundState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    TRAINING = "training", _("Training")
    PREDICTING = "predicting", _("Predicting")
    SCORING = "scoring", _("Scoring")
    EVALUATING = "evaluating", _("Evaluating")
    SELECTING = "selecting", _("Selecting")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE_ROUND_STATES = (
    RoundState.QUEUED,
    RoundState.TRAINING,
    RoundState.PREDICTING,
    RoundState.SCORING,
    RoundState.EVALUATING,
    RoundState.SELECTING,
)
FINAL_ROUND_STATES = (RoundState.DONE, RoundState.FAILED, RoundState.CANCELLED)


class Round(models.Model):
    """One pass of train → predict → score → evaluate → select for some provinces."""

    campaign = models.ForeignKey(
        "mapping.Campaign", on_delete=models.CASCADE, related_name="rounds"
    )
    number = models.PositiveIntegerField(help_text=_("1, 2, ... within the campaign"))
    state = models.CharField(max_length=12, choices=RoundState.choices, default=RoundState.QUEUED)
    provinces = models.ManyToManyField(
        "mapping.AdminUnit",
        blank=True,
        related_name="rounds",
        limit_choices_to={"level": "province"},
    )
    config = models.JSONField(
        default=dict, blank=True, help_text=_("Model preset, batch sizes, blocks to select, ...")
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    stage_done = models.PositiveIntegerField(default=0)
    stage_total = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True, help_text=_("Seconds per stage"))
    checkpoint = models.JSONField(
        default=dict, blank=True, help_text=_("What is finished, so a new worker can resume")
    )
    log = models.TextField(blank=True)
    failure_reason = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    lease = models.CharField(
        max_length=40,
        blank=True,
        help_text=_("Token of the task running a single-flight stage (training, scoring)"),
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="round_campaign_number"),
            # Exactly one active round per campaign, enforced by the database.
            models.UniqueConstraint(
                fields=["campaign"],
                condition=Q(state__in=[s.value for s in ACTIVE_ROUND_STATES]),
                name="round_one_active_per_campaign",
            ),
        ]
        ordering = ["-campaign_id", "-number"]

    @property
    def group(self) -> str:
        """The Channels group that hears this round's progress."""
        return f"job.round-{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in {s.value for s in ACTIVE_ROUND_STATES}

    def __str__(self) -> str:
        return f"round {self.number} of {self.campaign_id} ({self.state})"


class ModelVersion(models.Model):
    """A trained model: its bundle folder, metrics, config and the round that made it."""

    campaign = models.ForeignKey(
        "mapping.Campaign", on_delete=models.CASCADE, related_name="model_versions"
    )
    kind = models.CharField(max_length=12, choices=ModelKind.choices)
    name = models.CharField(max_length=100, help_text=_("e.g. seg-r3"))
    bundle_path = models.CharField(max_length=500, help_text=_("Relative to DATA_DIR"))
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(
        default=dict, blank=True, help_text=_("Overall and per-province numbers")
    )
    training_samples = models.JSONField(
        default=list, blank=True, help_text=_("Ids of the samples trained on")
    )
    train_seconds = models.FloatField(null=True, blank=True)
    round = models.ForeignKey(
        Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )
    is_current = models.BooleanField(
        default=False, help_text=_("Used for predictions shown to annotators and pre-annotation")
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "kind", "name"], name="modelversion_campaign_kind_name"
            ),
            models.UniqueConstraint(
                fields=["campaign", "kind"],
                condition=Q(is_current=True),
                name="modelversion_one_current_per_kind",
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class BlockPrediction(models.Model):
    """A segmenter's cropland mask for one block on one source."""

    block = models.ForeignKey("mapping.Block", on_delete=models.CASCADE, related_name="predictions")
    source = models.ForeignKey(
        "mapping.ImagerySource", on_delete=models.CASCADE, related_name="predictions"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="predictions"
    )
    round = models.ForeignKey(
        Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="predictions"
    )
    mask_path = models.CharField(
        max_length=500,
        help_text=_(
            "GeoTIFF on the block's grid, relative to DATA_DIR: band 1 the mask (0/1), "
            "band 2 the cropland probability"
        ),
    )
    geometry = models.MultiPolygonField(
        srid=4326, null=True, blank=True, help_text=_("The mask as polygons (WGS 84)")
    )
    cropland_fraction = models.FloatField(default=0.0)
    cropland_area_ha = models.FloatField(default=0.0)
    mean_confidence = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["block", "source", "model_version"], name="blockprediction_unique"
            ),
        ]
        indexes = [models.Index(fields=["model_version", "source"])]

    def __str__(self) -> str:
        return f"{self.block} / {self.source_id} by {self.model_version_id}"


@deconstructible(path="learning.models.JsonNumber")
class JsonNumber(Func):
    """A number stored under ``key`` of a JSON column, NULL when it is absent, null or not a
    number (so a generated column never fails the write that stores odd JSON)."""

    output_field = models.FloatField()

    def __init__(self, expression: Any, key: str) -> None:
        if not key.isidentifier():
            raise ValueError(f"not a plain JSON key: {key!r}")
        super().__init__(expression)
        self.key = key

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        k = self.key
        template = (
            f"(CASE WHEN jsonb_typeof(%(expressions)s -> '{k}') = 'number'"
            f" THEN (%(expressions)s ->> '{k}')::double precision END)"
        )
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        k = self.key
        template = (
            f"(CASE WHEN json_type(%(expressions)s, '$.{k}') IN ('integer', 'real')"
            f" THEN json_extract(%(expressions)s, '$.{k}') END)"
        )
        return self.as_sql(compiler, connection, template=template, **extra)


class BlockScore(models.Model):
    """Features, image quality and predicted semantic correctness of one prediction."""

    prediction = models.OneToOneField(
        BlockPrediction, on_delete=models.CASCADE, related_name="score"
    )
    round = models.ForeignKey(
        Round, null=True, blank=True, on_delete=models.SET_NULL, related_name="scores"
    )
    features = models.JSONField(default=dict, blank=True, help_text=_("The 16 block features"))
    coverage_type = models.CharField(
        max_length=15, blank=True, help_text=_("Predicted by the image-quality classifier")
    )
    verdict_probs = models.JSONField(
        default=dict, blank=True, help_text=_("TP / FP / Noise / Artifact probabilities")
    )
    p_incorrect = models.FloatField(
        null=True, blank=True, help_text=_("1 - P(TP): how likely the prediction is wrong")
    )
    correctness_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The sources' IoU feature as a column the database keeps from ``features``: the
    # selection ranks every block of a national round in SQL, and parsing 780,540 JSON
    # documents was a third of that query.
    iou_sources = models.GeneratedField(
        expression=JsonNumber(models.F("features"), "iou_sources"),
        output_field=models.FloatField(null=True),
        db_persist=True,
    )

    class Meta:
        indexes = [
            # The selection's pre-rank reads these of every score of a round: from the index
            # alone, not the rows with their features.
            models.Index(
                fields=["prediction", "p_incorrect", "iou_sources"], name="blockscore_selection"
            )
        ]

    def __str__(self) -> str:
        return f"score of {self.prediction_id}"


class ProvinceDecision(models.TextChoices):
    CONTINUE = "continue", _("Continue")
    CONVERGED = "converged", _("Converged")
    EXCLUDED = "excluded", _("Excluded")


class ProvinceRoundResult(models.Model):
    """What one round measured for one province and what the stopping rules decided."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="province_results")
    province = models.ForeignKey(
        "mapping.AdminUnit", on_delete=models.CASCADE, related_name="round_results"
    )
    iou = models.FloatField(null=True, blank=True)
    iou_samples = models.PositiveIntegerField(default=0)
    correctness = models.FloatField(null=True, blank=True)
    correctness_samples = models.PositiveIntegerField(default=0)
    area_mapbox_ha = models.FloatField(null=True, blank=True)
    area_google_ha = models.FloatField(null=True, blank=True)
    official_ha = models.FloatField(null=True, blank=True)
    official_status = models.CharField(max_length=20, blank=True)
    supplementary_rounds = models.PositiveIntegerField(default=0)
    decision = models.CharField(max_length=10, choices=ProvinceDecision.choices)
    reasons = models.JSONField(
        default=dict, blank=True, help_text=_("Per criterion: outcome and reason with numbers")
    )
    thresholds = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "province"], name="provinceresult_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.province_id} in {self.round_id}: {self.decision}"


class ProvinceStatus(models.Model):
    """Where a province of a campaign stands now (the latest decision, kept with its reason)."""

    campaign = models.ForeignKey(
        "mapping.Campaign", on_delete=models.CASCADE, related_name="province_statuses"
    )
    province = models.ForeignKey("mapping.AdminUnit", on_delete=models.CASCADE, related_name="+")
    decision = models.CharField(
        max_length=10, choices=ProvinceDecision.choices, default=ProvinceDecision.CONTINUE
    )
    supplementary_rounds = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True)
    last_result = models.ForeignKey(
        ProvinceRoundResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "province"], name="provincestatus_campaign_province"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.province_id}: {self.decision}"


class BlockSelection(models.Model):
    """A block a round picked for labelling next; annotators' queue serves low ranks first."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="selections")
    block = models.ForeignKey("mapping.Block", on_delete=models.CASCADE, related_name="selections")
    province = models.ForeignKey(
        "mapping.AdminUnit", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    rank = models.PositiveIntegerField(help_text=_("1 is labelled first (over the whole round)"))
    score = models.FloatField(help_text=_("Combined priority, higher is more useful to label"))
    scores = models.JSONField(
        default=dict, blank=True, help_text=_("p_incorrect, low confidence, disagreement")
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "block"], name="blockselection_round_block"),
            models.UniqueConstraint(fields=["round", "rank"], name="blockselection_round_rank"),
        ]
        ordering = ["round", "rank"]

    def __str__(self) -> str:
        return f"{self.block_id} #{self.rank} in {self.round_id}"


class SystematicSampleBlock(models.Model):
    """A block of the systematic validation grid (every 0.5° by default, as the paper's 3,891
    points), labelled with verdicts and an integration decision on both sources."""

    campaign = models.ForeignKey(
        "mapping.Campaign", on_delete=models.CASCADE, related_name="systematic_blocks"
    )
    block = models.ForeignKey(
        "mapping.Block", on_delete=models.CASCADE, related_name="systematic_entries"
    )
    spacing_deg = models.FloatField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "block"], name="systematicblock_campaign_block"
            ),
        ]

    def __str__(self) -> str:
        return f"systematic {self.block_id} ({self.spacing_deg}°)"


class RoundBatch(models.Model):
    """One unit of a round's fanned-out work (blocks to predict, predictions to featurise).

    The batch table is how a round knows what is left: a batch is done once, whichever worker
    (or redelivery) gets there first; resuming a round re-queues only the batches not done.
    """

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="batches")
    stage = models.CharField(max_length=12, choices=RoundState.choices)
    index = models.PositiveIntegerField()
    items = models.JSONField(default=list, help_text=_("Block ids or prediction ids"))
    weight = models.PositiveIntegerField(default=1, help_text=_("Progress units it counts for"))
    done_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["round", "stage", "index"], name="roundbatch_round_stage_index"
            ),
        ]
        indexes = [models.Index(fields=["round", "stage", "done_at"])]

    def __str__(self) -> str:
        return f"{self.stage} batch {self.index} of {self.round_id}"
