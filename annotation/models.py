"""Sample blocks, their cropland polygons, the audit log and the client operations seen."""

from __future__ import annotations

from django.conf import settings
from django.contrib.gis.db import models
from django.utils.translation import gettext_lazy as _


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


class Sample(models.Model):
    """A block labelled on one imagery source: cropland polygons, or none (negative)."""

    block = models.ForeignKey("mapping.Block", on_delete=models.CASCADE, related_name="samples")
    source = models.ForeignKey(
        "mapping.ImagerySource", on_delete=models.PROTECT, related_name="samples"
    )
    kind = models.CharField(max_length=10, choices=SampleKind.choices)
    split = models.CharField(max_length=12, choices=SampleSplit.choices, default=SampleSplit.TRAIN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(
        default=1,
        help_text=_("Bumped by every write to the sample or its polygons (optimistic locking)"),
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["block", "source"], name="sample_block_source"),
        ]

    def __str__(self) -> str:
        return f"{self.block} / {self.source.slug} ({self.kind}, {self.split})"


class SamplePolygon(models.Model):
    """One cropland polygon, with its provenance."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="polygons")
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

    def __str__(self) -> str:
        return f"{self.subtype} polygon of {self.sample}"


class AuditAction(models.TextChoices):
    POLYGON_CREATE = "polygon_create", _("Polygon drawn")
    POLYGON_UPDATE = "polygon_update", _("Polygon edited")
    POLYGON_DELETE = "polygon_delete", _("Polygon deleted")
    SAMPLE_MARK_NEGATIVE = "sample_mark_negative", _("Block marked negative")
    SAMPLE_MARK_POSITIVE = "sample_mark_positive", _("Block marked positive")


class AuditEntry(models.Model):
    """One change to a block's samples, with the object as it was before and after."""

    block = models.ForeignKey(
        "mapping.Block", on_delete=models.CASCADE, related_name="audit_entries"
    )
    source = models.ForeignKey(
        "mapping.ImagerySource", on_delete=models.PROTECT, related_name="audit_entries"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the log still names the person after the account is deleted.
    username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=30, choices=AuditAction.choices)
    object_type = models.CharField(max_length=30, help_text=_("sample or sample_polygon"))
    object_id = models.PositiveBigIntegerField()
    version = models.PositiveIntegerField(help_text=_("Sample version after the change"))
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
