"""The final product's data: integration decisions, exports and other products compared.

The tables were made by the ``mapping`` app and keep their names (``db_table``); the models
moved here with state-only migrations.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.gis.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from annotation.models import IntegrationDecision
from mapping.models import AdminUnit, Block, Campaign, JobStatus

# --- Comparison with existing cropland products (issue 6, the paper's section 3.4) -------------


class CroplandProduct(models.Model):
    """An existing land-cover or cropland raster (e.g. ESA WorldCover) with its cropland classes.

    The file is copied under DATA_DIR on import; any CRS and resolution is accepted.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="products")
    name = models.SlugField(max_length=80, help_text=_("e.g. esa-worldcover-2020"))
    description = models.CharField(max_length=300, blank=True)
    path = models.CharField(max_length=500, help_text=_("Relative to DATA_DIR"))
    original_name = models.CharField(max_length=300, blank=True)
    checksum = models.CharField(max_length=64)
    cropland_classes = models.JSONField(
        help_text=_('Raster values meaning cropland: {"values": [40], "ranges": [[lo, hi]]}')
    )
    crs = models.TextField(help_text=_("The raster's CRS as text (EPSG code or WKT)"))
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    dtype = models.CharField(max_length=20)
    resolution_x = models.FloatField()
    resolution_y = models.FloatField()
    bounds = models.JSONField(help_text=_("west, south, east, north in degrees"))
    nodata = models.FloatField(null=True, blank=True)
    sample_values = models.JSONField(
        default=list, blank=True, help_text=_("Distinct values found in a sample of the raster")
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "mapping_croplandproduct"  # made in mapping; moved with a state-only migration
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "name"], name="croplandproduct_campaign_name"
            ),
        ]
        ordering = ["campaign_id", "name"]

    def __str__(self) -> str:
        return self.name


class ProductComparison(models.Model):
    """One comparison run of a product against the final map: status, progress and results.

    ``results`` holds the summary (pixel IoU, block deviations, slope histograms, provinces);
    the per-block table is a CSV under ``folder`` (relative to DATA_DIR) with the PNG plots.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="comparisons")
    product = models.ForeignKey(
        CroplandProduct, on_delete=models.CASCADE, related_name="comparisons"
    )
    final_map = models.JSONField(
        default=dict, help_text=_("Which final map was compared: kind and reference")
    )
    provinces = models.JSONField(default=list, blank=True, help_text=_("Province adcodes"))
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=dict, blank=True)
    folder = models.CharField(max_length=500, blank=True, help_text=_("Relative to DATA_DIR"))
    failure_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "mapping_productcomparison"  # made in mapping; moved with a state-only migration
        ordering = ["-created_at"]

    @property
    def group(self) -> str:
        return f"job.compare-{self.pk}"

    def __str__(self) -> str:
        return f"comparison #{self.pk} {self.product_id} ({self.status})"


# --- Integration of the two sources and the final product (issue 6) ----------------------------


class IntegrationSource(models.TextChoices):
    MODEL = "model", _("Integration model")
    LEAD = "lead", _("Lead's decision")


class BlockIntegration(models.Model):
    """Which source(s) make a block's final map: the integration model's decision with its
    probability, or a lead's override (the model's own answer is kept beside it)."""

    block = models.OneToOneField(Block, on_delete=models.CASCADE, related_name="integration")
    decision = models.CharField(max_length=15, choices=IntegrationDecision.choices)
    source = models.CharField(
        max_length=10, choices=IntegrationSource.choices, default=IntegrationSource.MODEL
    )
    probability = models.FloatField(
        null=True, blank=True, help_text=_("The model's probability of the decision in force")
    )
    model_decision = models.CharField(
        max_length=15, choices=IntegrationDecision.choices, blank=True,
        help_text=_("What the integration model decided (kept when a lead overrides it)"),
    )
    model_probability = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(
        default=dict, blank=True, help_text=_("The model's probability of each decision")
    )
    model_version = models.ForeignKey(
        "learning.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("The integration model"),
    )
    mapbox_prediction = models.ForeignKey(
        "learning.BlockPrediction", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    google_prediction = models.ForeignKey(
        "learning.BlockPrediction", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    overridden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    overridden_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mapping_blockintegration"  # made in mapping; moved with a state-only migration
        constraints = [
            models.CheckConstraint(
                condition=Q(decision__in=IntegrationDecision.values),
                name="blockintegration_decision_valid",
            ),
        ]
        # The overview tiles' version reads the newest change (MAX(updated_at)) per request.
        indexes = [models.Index(fields=["updated_at"], name="blockintegration_updated")]

    def __str__(self) -> str:
        return f"{self.block}: {self.decision} ({self.source})"


class ExportKind(models.TextChoices):
    PROVINCE = "province", _("Province product (COG, GeoPackage, county shapefiles)")
    NATIONAL_AF = "national_af", _("National area-fraction map (GeoTIFF, PNG)")


class ProductExport(models.Model):
    """One export job: the row is its state machine (status, progress, heartbeat, files).

    Files are written in a hidden staging folder and renamed into ``folder`` at the very end,
    so ``folder`` exists only for a finished export.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="exports")
    kind = models.CharField(max_length=12, choices=ExportKind.choices)
    province = models.ForeignKey(
        AdminUnit, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        limit_choices_to={"level": "province"},
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    stage = models.CharField(max_length=40, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    folder = models.CharField(max_length=500, blank=True, help_text=_("Relative to DATA_DIR"))
    files = models.JSONField(
        default=dict, blank=True, help_text=_("File name -> size and sha256")
    )
    summary = models.JSONField(default=dict, blank=True)
    failure_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "mapping_productexport"  # made in mapping; moved with a state-only migration
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="national_af") | Q(province__isnull=False),
                name="productexport_province_needs_province",
            ),
        ]
        ordering = ["-created_at"]

    @property
    def group(self) -> str:
        return f"job.export-{self.pk}"

    def __str__(self) -> str:
        return f"export #{self.pk} {self.kind} ({self.status})"
