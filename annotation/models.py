"""Sample blocks, their cropland polygons, block labels, assignments, the audit log and the
client operations seen."""

from __future__ import annotations

# shapely must be loaded before the first SpatiaLite connection: SQLite loads mod_spatialite
# (linked to the system GEOS) with RTLD_GLOBAL, and a shapely imported after it binds parts of
# its own, newer GEOS to the system one and corrupts memory ("free(): invalid size", or
# "WKB output dimension must be 2 or 3") on the next polygon write. Importing it here, while
# Django loads the apps, puts it first in every process (server, worker, commands, tests).
import shapely  # noqa: F401
from django.conf import settings
from django.contrib.gis.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from learning.core.integration_decision import IntegrationDecision as CoreIntegrationDecision


class SampleKind(models.TextChoices):
    POSITIVE = "positive", _("Positive (cropland polygons drawn)")
    NEGATIVE = "negative", _("Negative (looks like cropland, is not)")


class SampleSplit(models.TextChoices):
    TRAIN = "train", _("Training")
    VALIDATION = "validation", _("Validation (held out)")


class CroplandSubtype(models.TextChoices):
    """The paper's Table 2."""

    PADDY = "paddy", _("Paddy")
    IRRIGATED_DRY = "irrigated_dry", _("Irrigated and dry cropland")
    TERRACES = "terraces", _("Terraces")
    FALLOW = "fallow", _("Fallow land")
    GREENHOUSE = "greenhouse", _("Greenhouse")
    SCATTERED_TREES = "scattered_trees", _("Cropland with scattered trees")


class SampleBase(models.Model):
    """What a sample of a block on one imagery source holds, shared by the primary sample and an
    agreement copy (each names its own block and source, with its own reverse name)."""

    kind = models.CharField(max_length=10, choices=SampleKind.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(
        default=1,
        help_text=_("Bumped by every write to the sample or its polygons (optimistic locking)"),
    )

    class Meta:
        abstract = True


class Sample(SampleBase):
    """A block labelled on one imagery source: cropland polygons, or none (negative).

    This is THE sample of the block and source: the one training, export and the reviewers use.
    The independent second annotation of a block for agreement lives in ``AgreementSample``, so
    that ``Sample`` stays one row per block and source whoever worked on it.
    """

    block = models.ForeignKey("mapping.Block", on_delete=models.CASCADE, related_name="samples")
    source = models.ForeignKey(
        "mapping.ImagerySource", on_delete=models.PROTECT, related_name="samples"
    )
    split = models.CharField(max_length=12, choices=SampleSplit.choices, default=SampleSplit.TRAIN)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["block", "source"], name="sample_block_source"),
        ]

    def __str__(self) -> str:
        return f"{self.block} / {self.source.slug} ({self.kind}, {self.split})"


class PolygonBase(models.Model):
    """One cropland polygon, with its provenance."""

    geometry = models.PolygonField(srid=4326)
    subtype = models.CharField(
        max_length=20, choices=CroplandSubtype.choices, default=CroplandSubtype.IRRIGATED_DRY
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    model_version = models.CharField(
        max_length=64, blank=True, help_text=_("Model whose prediction was shown, if any")
    )
    round_number = models.PositiveIntegerField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class SamplePolygon(PolygonBase):
    """One cropland polygon of the block's sample, with its provenance."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="polygons")

    def __str__(self) -> str:
        return f"{self.subtype} polygon of {self.sample}"


class AgreementSample(SampleBase):
    """The second, blind annotation of a block on one source, made for agreement.

    Decision: a block given to two people has ONE primary sample (``Sample``, made by the
    primary assignee and used for training and export) and, for the second person (the
    assignment with ``agreement=True``), a separate copy here. The second person reads and writes
    their copy through the same sample URLs (``annotation.access`` routes them), never sees the
    primary polygons, and the first never sees the copy; agreement compares the two. Keeping the
    copy in its own table means no reader of ``Sample`` (training, export, import) can pick up a
    second version of a block by mistake.
    """

    block = models.ForeignKey(
        "mapping.Block", on_delete=models.CASCADE, related_name="agreement_samples"
    )
    source = models.ForeignKey(
        "mapping.ImagerySource", on_delete=models.PROTECT, related_name="agreement_samples"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agreement_samples"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["block", "source", "annotator"],
                name="agreementsample_block_source_annotator",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.block} / {self.source.slug} by {self.annotator_id} ({self.kind}, agreement)"


class AgreementPolygon(PolygonBase):
    """One cropland polygon of an agreement copy."""

    sample = models.ForeignKey(AgreementSample, on_delete=models.CASCADE, related_name="polygons")

    def __str__(self) -> str:
        return f"{self.subtype} polygon of {self.sample}"


class Verdict(models.TextChoices):
    """How the current prediction of a block looks on one imagery source (the paper's labels)."""

    TP = "tp", _("True positive")
    FP = "fp", _("False positive")
    NOISE = "noise", _("Noise")
    ARTIFACT = "artifact", _("Artifact")


class CoverageType(models.TextChoices):
    """What the imagery of a block shows; trains the image quality classifier."""

    PLANTING = "planting", _("Planting")
    NON_PLANTING = "non_planting", _("Non-planting")
    CLOUDY = "cloudy", _("Cloudy")
    SNOW_ICE = "snow_ice", _("Snow/Ice")
    NODATA = "nodata", _("Nodata")


_INTEGRATION_DECISION_LABELS = {
    CoreIntegrationDecision.NEITHER: _("Neither"),
    CoreIntegrationDecision.ONLY_MAPBOX: _("Only Mapbox"),
    CoreIntegrationDecision.ONLY_GOOGLE: _("Only Google"),
    CoreIntegrationDecision.MERGE_BOTH: _("Merge both"),
}
# Which sources' predictions go into the block's final map: the core's enum with labels (one
# vocabulary for labels, block integrations and the integration model).
IntegrationDecision = models.TextChoices(
    "IntegrationDecision",
    [(d.name, (d.value, _INTEGRATION_DECISION_LABELS[d])) for d in CoreIntegrationDecision],
)


class LabelProvenance(models.Model):
    """Who labelled, when, and against which model version and round (the imagery source, where
    a label has one, is its ``source`` field)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    model_version = models.CharField(
        max_length=64, blank=True, help_text=_("Model whose prediction was shown, if any")
    )
    round_number = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class VerdictLabel(LabelProvenance):
    """One person's current verdict on a block's prediction on one source (history: audit)."""

    block = models.ForeignKey(
        "mapping.Block", on_delete=models.CASCADE, related_name="verdict_labels"
    )
    source = models.ForeignKey(
        "mapping.ImagerySource", on_delete=models.PROTECT, related_name="verdict_labels"
    )
    verdict = models.CharField(max_length=10, choices=Verdict.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["block", "source", "user"], name="verdictlabel_block_source_user"
            ),
            models.CheckConstraint(
                condition=Q(verdict__in=Verdict.values), name="verdictlabel_verdict_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.block} / {self.source_id}: {self.verdict}"


class CoverageLabel(LabelProvenance):
    """One person's current coverage type of a block's image on one source."""

    block = models.ForeignKey(
        "mapping.Block", on_delete=models.CASCADE, related_name="coverage_labels"
    )
    source = models.ForeignKey(
        "mapping.ImagerySource", on_delete=models.PROTECT, related_name="coverage_labels"
    )
    coverage_type = models.CharField(max_length=15, choices=CoverageType.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["block", "source", "user"], name="coveragelabel_block_source_user"
            ),
            models.CheckConstraint(
                condition=Q(coverage_type__in=CoverageType.values),
                name="coveragelabel_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.block} / {self.source_id}: {self.coverage_type}"


class IntegrationLabel(LabelProvenance):
    """The block's integration decision: one per block, made by a lead (history: audit)."""

    block = models.OneToOneField(
        "mapping.Block", on_delete=models.CASCADE, related_name="integration_label"
    )
    decision = models.CharField(max_length=15, choices=IntegrationDecision.choices)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(decision__in=IntegrationDecision.values),
                name="integrationlabel_decision_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.block}: {self.decision}"


class AssignmentStatus(models.TextChoices):
    TODO = "todo", _("To do")
    IN_PROGRESS = "in_progress", _("In progress")
    SUBMITTED = "submitted", _("Submitted")
    ACCEPTED = "accepted", _("Accepted")
    REJECTED = "rejected", _("Rejected")


# Rejected work goes straight back to in progress (the lead's comment stays on the row), so
# REJECTED is a review outcome (``last_review``), never a resting status; it is listed so that
# the audit and the API can name it.
ACTIVE_STATUSES = (AssignmentStatus.TODO, AssignmentStatus.IN_PROGRESS, AssignmentStatus.SUBMITTED)
EDITABLE_STATUSES = (AssignmentStatus.TODO, AssignmentStatus.IN_PROGRESS)
MAX_ASSIGNEES = 2  # a block is given to at most two people at once (agreement)


class Assignment(models.Model):
    """A block given to a person, with where their work on it stands."""

    block = models.ForeignKey("mapping.Block", on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(
        max_length=12, choices=AssignmentStatus.choices, default=AssignmentStatus.TODO
    )
    priority = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Queue rank: 1 is served first, empty last (defaults to the seed order)"),
    )
    self_claimed = models.BooleanField(default=False)
    agreement = models.BooleanField(
        default=False,
        help_text=_(
            "The second person on the block: draws blind into an agreement copy, not the sample"
        ),
    )
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_review = models.CharField(
        max_length=12,
        blank=True,
        choices=[
            (AssignmentStatus.ACCEPTED, _("Accepted")),
            (AssignmentStatus.REJECTED, _("Rejected")),
        ],
    )
    review_comment = models.TextField(blank=True)
    rejections = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["block", "user"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="assignment_one_active_per_block_user",
            ),
            models.UniqueConstraint(
                fields=["block"],
                condition=Q(agreement=True, status__in=ACTIVE_STATUSES),
                name="assignment_one_active_agreement_per_block",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in ACTIVE_STATUSES] + ["accepted"]),
                name="assignment_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(last_review="rejected") | ~Q(review_comment=""),
                name="assignment_rejection_has_comment",
            ),
        ]
        indexes = [models.Index(fields=["user", "status"], name="assignment_user_status")]

    def __str__(self) -> str:
        return f"{self.block} -> {self.user_id} ({self.status})"


class CampaignWorkflow(models.Model):
    """How a campaign hands out work. A campaign without a row uses the defaults below."""

    campaign = models.OneToOneField(
        "mapping.Campaign", on_delete=models.CASCADE, related_name="workflow"
    )
    self_assign = models.BooleanField(
        default=True,
        help_text=_("Annotators may claim the next unassigned block themselves"),
    )

    def __str__(self) -> str:
        return f"{self.campaign}: self-assign {'on' if self.self_assign else 'off'}"


class AuditAction(models.TextChoices):
    POLYGON_CREATE = "polygon_create", _("Polygon drawn")
    POLYGON_UPDATE = "polygon_update", _("Polygon edited")
    POLYGON_DELETE = "polygon_delete", _("Polygon deleted")
    SAMPLE_MARK_NEGATIVE = "sample_mark_negative", _("Block marked negative")
    SAMPLE_MARK_POSITIVE = "sample_mark_positive", _("Block marked positive")
    VERDICT_SET = "verdict_set", _("Verdict labelled")
    COVERAGE_SET = "coverage_set", _("Coverage type labelled")
    INTEGRATION_SET = "integration_set", _("Integration decided")
    ASSIGNMENT_CREATE = "assignment_create", _("Block assigned")
    ASSIGNMENT_CLAIM = "assignment_claim", _("Block self-assigned")
    ASSIGNMENT_START = "assignment_start", _("Work started")
    ASSIGNMENT_SUBMIT = "assignment_submit", _("Work submitted")
    ASSIGNMENT_ACCEPT = "assignment_accept", _("Work accepted")
    ASSIGNMENT_REJECT = "assignment_reject", _("Work rejected")


class AuditEntry(models.Model):
    """One change to a block's samples, with the object as it was before and after."""

    block = models.ForeignKey(
        "mapping.Block", on_delete=models.CASCADE, related_name="audit_entries"
    )
    source = models.ForeignKey(
        "mapping.ImagerySource",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_entries",
        help_text=_("Empty for changes of the whole block (integration, assignments)"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the log still names the person after the account is deleted.
    username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=30, choices=AuditAction.choices)
    object_type = models.CharField(
        max_length=30,
        help_text=_(
            "sample, sample_polygon, verdict_label, coverage_label, integration_label or assignment"
        ),
    )
    object_id = models.PositiveBigIntegerField()
    version = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Sample version after the change; empty for labels and assignments"),
    )
    op_id = models.UUIDField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["block", "-id"], name="auditentry_block_recent")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.object_id}"


class ClientOperation(models.Model):
    """A write the browser sent with its operation id, kept with its result so that a retry
    (offline outbox, lost response) returns the same result instead of writing again."""

    op_id = models.UUIDField(unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    block = models.ForeignKey(
        "mapping.Block", on_delete=models.CASCADE, related_name="client_operations"
    )
    action = models.CharField(max_length=30, choices=AuditAction.choices)
    fingerprint = models.CharField(
        max_length=64, help_text=_("Hash of the request, to tell a retry from a reused id")
    )
    result = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.op_id} {self.action}"


class OverviewCellSums(models.Model):
    """A lead's low-zoom map sums of one campaign and segmenter (``annotation.tile_sums``):
    per cell of 2 x 2 blocks the block count and the predicted fractions' sum and count, with
    which prediction ids they hold. Kept so that a process that starts, or a new prediction,
    does not sum every prediction of the campaign again; rebuilt from the predictions at will."""

    campaign = models.ForeignKey("mapping.Campaign", on_delete=models.CASCADE, related_name="+")
    segmenter_id = models.BigIntegerField(help_text=_("The segmenter's ModelVersion id"))
    data = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "segmenter_id"], name="overviewcellsums_campaign_segmenter"
            )
        ]

    def __str__(self) -> str:
        return f"cell sums of {self.campaign_id} / {self.segmenter_id}"
