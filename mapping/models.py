"""Campaigns, administrative units, official statistics, blocks, imagery sources, block images."""

from __future__ import annotations

import decimal
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.gis.db import models
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from croplayer_site.roles import LEAD


class Campaign(models.Model):
    """One mapping effort: a region, a year, a block grid and an imagery zoom."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    region = models.CharField(max_length=200, help_text=_("e.g. China"))
    year = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1990), MaxValueValidator(2100)]
    )
    block_size_deg = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        default=Decimal("0.05"),
        help_text=_("Block edge in degrees (0.05 in CropLayer)."),
    )
    zoom = models.PositiveSmallIntegerField(
        default=16,
        validators=[MinValueValidator(1), MaxValueValidator(22)],
        help_text=_("XYZ zoom of the block imagery (16 is about 2.4 m)."),
    )
    provinces = models.ManyToManyField(
        "AdminUnit",
        blank=True,
        related_name="campaigns",
        limit_choices_to={"level": "province"},
        help_text=_("Provinces that make up the region; empty means every imported province."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(block_size_deg__gt=0), name="campaign_block_size_gt_0"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignMember(models.Model):
    """A lead who runs a campaign: leads see and manage only the campaigns they are members of
    (admins see every campaign; annotators work on the blocks given to them)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="campaign_memberships",
        limit_choices_to={"groups__name": LEAD},
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "user"], name="campaignmember_unique"),
        ]
        ordering = ["campaign", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.campaign}"


class AdminLevel(models.TextChoices):
    PROVINCE = "province", _("Province")
    CITY = "city", _("City")
    COUNTY = "county", _("County")


class AdminUnit(models.Model):
    """A province, city or county with its boundary (WGS 84)."""

    level = models.CharField(max_length=10, choices=AdminLevel.choices)
    adcode = models.PositiveIntegerField()
    name_zh = models.CharField(max_length=100)
    name_en = models.CharField(max_length=100, blank=True)
    short_name = models.CharField(max_length=50, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    geometry = models.MultiPolygonField(srid=4326)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "adcode"], name="adminunit_level_adcode"),
        ]
        ordering = ["level", "adcode"]

    def __str__(self) -> str:
        return f"{self.name_zh} ({self.name_en})" if self.name_en else self.name_zh


class StatisticStatus(models.TextChoices):
    """How well an official figure could be traced to its source."""

    VERIFIED = "VERIFIED", _("Verified")
    VERIFIED_ROUNDED = "VERIFIED_ROUNDED", _("Verified (rounded figure only)")
    WEAKLY_VERIFIED = "WEAKLY_VERIFIED", _("Weakly verified")
    UNVERIFIED = "UNVERIFIED", _("Unverified")
    OTHER_SOURCE = "OTHER_SOURCE", _("Other source (different definition)")
    # The demo's own figures for the land its blocks cover, from its synthetic ground truth:
    # not an official statistic, and marked so wherever shown.
    DEMO = "DEMO", _("Demo figure (synthetic ground truth)")


class AreaUnit(models.TextChoices):
    HA_10K = "10k_ha", _("10⁴ ha")
    MU_10K = "10k_mu", _("10⁴ mu")
    HA = "ha", _("ha")
    KM2 = "km2", _("km²")


# Hectares per one of each unit (1 mu = 1/15 ha).
HECTARES_PER_UNIT = {
    AreaUnit.HA_10K: Decimal(10000),
    AreaUnit.MU_10K: Decimal(10000) / Decimal(15),
    AreaUnit.HA: Decimal(1),
    AreaUnit.KM2: Decimal(100),
}


class _WideReadDecimalField(models.DecimalField):
    """A DecimalField that reads back a value wider than ``max_digits`` instead of raising.

    SQLite stores any number in a decimal column; Django then quantizes what it reads with a
    context of ``max_digits`` digits, which raises for 1e30, so one such row (stored before
    imports checked the range) made every page that lists statistics answer 500 for good. The
    import refuses such values; this keeps them readable so they can be seen and replaced.
    Deconstructs as a plain DecimalField: the column is the same, no migration.
    """

    @cached_property
    def context(self) -> decimal.Context:
        return decimal.Context(prec=self.max_digits + 400)  # 400: past float's 1.8e308

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DecimalField", args, kwargs


class OfficialStatistic(models.Model):
    """Cultivated land of a province (or a county) for a campaign, e.g. from the Third National
    Land Survey. County figures (``import_statistics --level county``) let a campaign that
    covers only part of a province compare its mapped area with the counties it covers."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="statistics")
    province = models.ForeignKey(
        AdminUnit,
        on_delete=models.PROTECT,
        related_name="statistics",
        limit_choices_to={"level__in": ["province", "county"]},
        help_text=_("The province, or the county for a county-level figure"),
    )
    value = _WideReadDecimalField(max_digits=14, decimal_places=4)
    unit = models.CharField(max_length=10, choices=AreaUnit.choices, default=AreaUnit.HA_10K)
    status = models.CharField(max_length=20, choices=StatisticStatus.choices)
    source = models.TextField(help_text=_("Citation: publication, URL or office"))
    evidence = models.TextField(
        blank=True, help_text=_("The quoted sentence that gives the figure")
    )
    campaign_part = models.BooleanField(
        default=False,
        help_text=_(
            "The figure counts only the part of the unit inside the campaign's blocks (the "
            "demo's figures from its ground truth), not the whole unit"
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "province"], name="statistic_campaign_province"
            ),
            models.CheckConstraint(condition=Q(value__gte=0), name="statistic_value_gte_0"),
        ]

    @property
    def hectares(self) -> Decimal:
        return self.value * HECTARES_PER_UNIT[AreaUnit(self.unit)]

    def __str__(self) -> str:
        return f"{self.province} {self.value} {self.unit} ({self.status})"


class Block(models.Model):
    """A 0.05° x 0.05° cell of a campaign's grid; (row, col) on the global grid is its id."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="blocks")
    row = models.PositiveIntegerField()
    col = models.PositiveIntegerField()
    geometry = models.PolygonField(srid=4326)
    province = models.ForeignKey(
        AdminUnit, null=True, on_delete=models.SET_NULL, related_name="province_blocks"
    )
    county = models.ForeignKey(
        AdminUnit, null=True, on_delete=models.SET_NULL, related_name="county_blocks"
    )
    land_fraction = models.FloatField(
        default=1.0, help_text=_("Share of the block inside the region's land boundary")
    )
    seed_order = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Queue order before the first learning round")
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "row", "col"], name="block_campaign_row_col"
            ),
        ]
        indexes = [models.Index(fields=["campaign", "province"])]

    @property
    def code(self) -> str:
        return f"R{self.row:04d}C{self.col:04d}"

    def __str__(self) -> str:
        return self.code


class SourceKind(models.TextChoices):
    XYZ = "xyz", _("XYZ tiles")
    GEOTIFF = "geotiff", _("Local GeoTIFF/COG files")
    MBTILES = "mbtiles", _("MBTiles file")
    SYNTHETIC = "synthetic", _("Synthetic (demo)")


class ImagerySource(models.Model):
    """Where block images come from. Tokens live in the environment, named by ``token_env``."""

    slug = models.SlugField(unique=True, help_text=_("e.g. mapbox, google"))
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=SourceKind.choices)
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("Kind-specific settings, validated on save (see the README)."),
    )
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class BlockImageStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    OK = "ok", _("OK")
    MISSING = "missing", _("Missing (no imagery upstream)")
    FAILED = "failed", _("Failed")


class BlockImage(models.Model):
    """A block's image from one source: a GeoTIFF on the block's lon/lat grid."""

    block = models.ForeignKey(Block, on_delete=models.CASCADE, related_name="images")
    source = models.ForeignKey(ImagerySource, on_delete=models.CASCADE, related_name="images")
    status = models.CharField(
        max_length=10, choices=BlockImageStatus.choices, default=BlockImageStatus.PENDING
    )
    reason = models.TextField(blank=True)
    path = models.CharField(max_length=500, blank=True, help_text=_("Relative to DATA_DIR"))
    checksum = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    quality = models.JSONField(
        default=dict,
        blank=True,
        help_text=_(
            "The image's quality statistics (sharpness, median hue, saturation, lightness), "
            "computed once by the first round that predicts it, with the path and checksum "
            "they belong to"
        ),
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["block", "source"], name="blockimage_block_source"),
        ]
        indexes = [models.Index(fields=["source", "status"])]

    def __str__(self) -> str:
        return f"{self.block} / {self.source.slug}: {self.status}"


class CampaignDem(models.Model):
    """One DEM GeoTIFF (or tile of a DEM) for a campaign; blocks read their window from these."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="dems")
    path = models.CharField(max_length=500, help_text=_("Absolute, or relative to DATA_DIR"))
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "path"], name="campaigndem_campaign_path"),
        ]

    def __str__(self) -> str:
        return self.path


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class FetchRun(models.Model):
    """One ``imagery_fetch`` request: which blocks of which source, and how far it got."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="fetch_runs")
    source = models.ForeignKey(ImagerySource, on_delete=models.CASCADE, related_name="fetch_runs")
    provinces = models.JSONField(default=list, blank=True, help_text=_("Province adcodes"))
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    @property
    def group(self) -> str:
        return f"job.fetch-{self.pk}"

    def __str__(self) -> str:
        return f"fetch #{self.pk} {self.source.slug} ({self.status})"
