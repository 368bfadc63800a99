"""Sample blocks and their cropland polygons (the training and validation data)."""

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
    version = models.PositiveIntegerField(default=1)

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

    def __str__(self) -> str:
        return f"{self.subtype} polygon of {self.sample}"
