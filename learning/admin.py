"""Admin pages of the learning app (read-mostly: rounds are driven by the pipeline)."""

from __future__ import annotations

from django.contrib import admin

from learning.models import (
    BlockSelection,
    ModelVersion,
    ProvinceRoundResult,
    ProvinceStatus,
    Round,
    SystematicSampleBlock,
)


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ("campaign", "number", "state", "stage_done", "stage_total", "heartbeat_at",
                    "created_at", "finished_at")
    list_filter = ("state", "campaign")
    readonly_fields = ("state", "stage_done", "stage_total", "heartbeat_at", "timings",
                       "checkpoint", "log", "failure_reason", "lease", "started_at",
                       "finished_at")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("campaign", "kind", "name", "is_current", "round", "created_at")
    list_filter = ("kind", "is_current", "campaign")
    readonly_fields = ("bundle_path", "metrics", "training_samples", "train_seconds")


@admin.register(ProvinceRoundResult)
class ProvinceRoundResultAdmin(admin.ModelAdmin):
    list_display = ("round", "province", "iou", "iou_samples", "correctness", "decision")
    list_filter = ("decision",)


@admin.register(ProvinceStatus)
class ProvinceStatusAdmin(admin.ModelAdmin):
    list_display = ("campaign", "province", "decision", "supplementary_rounds", "updated_at")
    list_filter = ("decision", "campaign")


@admin.register(BlockSelection)
class BlockSelectionAdmin(admin.ModelAdmin):
    list_display = ("round", "rank", "block", "province", "score")


@admin.register(SystematicSampleBlock)
class SystematicSampleBlockAdmin(admin.ModelAdmin):
    list_display = ("campaign", "block", "spacing_deg", "created_at")
