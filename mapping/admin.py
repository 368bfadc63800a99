"""Admin for campaigns, units, statistics, blocks and imagery sources (configs validated)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin

from mapping.models import (
    AdminUnit,
    Block,
    BlockImage,
    Campaign,
    CampaignDem,
    CampaignMember,
    FetchRun,
    ImagerySource,
    OfficialStatistic,
)
from mapping.services.imagery import ImageryConfigError, imagery_source_validate


class CampaignDemInline(admin.TabularInline):
    model = CampaignDem
    extra = 0


class CampaignMemberInline(admin.TabularInline):
    """The campaign's leads: a lead sees and manages only the campaigns they are a member of."""

    model = CampaignMember
    extra = 0
    readonly_fields = ["added_at"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "region", "year", "block_size_deg", "zoom"]
    filter_horizontal = ["provinces"]
    inlines = [CampaignMemberInline, CampaignDemInline]


@admin.register(CampaignMember)
class CampaignMemberAdmin(admin.ModelAdmin):
    list_display = ["campaign", "user", "added_at"]
    list_filter = ["campaign"]
    search_fields = ["user__username", "campaign__slug"]
    list_select_related = ["campaign", "user"]


@admin.register(AdminUnit)
class AdminUnitAdmin(GISModelAdmin):
    list_display = ["adcode", "level", "name_zh", "name_en", "parent"]
    list_filter = ["level"]
    search_fields = ["name_zh", "name_en", "adcode"]
    raw_id_fields = ["parent"]


@admin.register(OfficialStatistic)
class OfficialStatisticAdmin(admin.ModelAdmin):
    list_display = ["province", "campaign", "value", "unit", "status", "updated_at"]
    list_filter = ["campaign", "status"]
    raw_id_fields = ["province"]


@admin.register(Block)
class BlockAdmin(GISModelAdmin):
    list_display = ["code", "campaign", "province", "county", "land_fraction"]
    list_filter = ["campaign"]
    raw_id_fields = ["province", "county"]
    list_select_related = ["campaign", "province", "county"]
    show_full_result_count = False


class ImagerySourceForm(forms.ModelForm):
    class Meta:
        model = ImagerySource
        fields = ["slug", "name", "kind", "config", "enabled"]

    def clean(self):
        data = super().clean()
        if data.get("kind") and data.get("config") is not None:
            try:
                data["config"] = imagery_source_validate(
                    kind=data["kind"], config=data["config"], slug=data.get("slug") or "source"
                )
            except ImageryConfigError as e:
                raise forms.ValidationError({"config": str(e)}) from e
        return data


@admin.register(ImagerySource)
class ImagerySourceAdmin(admin.ModelAdmin):
    form = ImagerySourceForm
    list_display = ["slug", "name", "kind", "enabled"]


@admin.register(BlockImage)
class BlockImageAdmin(admin.ModelAdmin):
    list_display = ["block", "source", "status", "reason", "fetched_at"]
    list_filter = ["source", "status"]
    raw_id_fields = ["block"]
    show_full_result_count = False


@admin.register(FetchRun)
class FetchRunAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "source", "status", "total", "created_at", "finished_at"]
