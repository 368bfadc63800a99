from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin

from annotation.models import (
    Assignment,
    AuditEntry,
    CampaignWorkflow,
    ClientOperation,
    CoverageLabel,
    IntegrationLabel,
    Sample,
    SamplePolygon,
    VerdictLabel,
)


class SamplePolygonInline(admin.TabularInline):
    model = SamplePolygon
    extra = 0
    fields = [
        "subtype",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
        "model_version",
        "round_number",
    ]
    readonly_fields = ["created_at"]


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ["block", "source", "kind", "split", "version", "created_by", "created_at"]
    list_filter = ["kind", "split", "source"]
    raw_id_fields = ["block"]
    inlines = [SamplePolygonInline]


@admin.register(SamplePolygon)
class SamplePolygonAdmin(GISModelAdmin):
    list_display = ["id", "sample", "subtype", "created_by", "created_at"]
    raw_id_fields = ["sample"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """The log is written by the services only; the admin may look, not change."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "username", "action", "block", "source", "object_id", "version"]
    list_filter = ["action", "source"]
    raw_id_fields = ["block", "user"]


@admin.register(ClientOperation)
class ClientOperationAdmin(ReadOnlyAdmin):
    list_display = ["op_id", "user", "action", "block", "created_at"]
    list_filter = ["action"]
    raw_id_fields = ["block", "user"]


@admin.register(VerdictLabel)
class VerdictLabelAdmin(ReadOnlyAdmin):
    """Labels are written through the API (which audits them); the admin looks."""

    list_display = ["block", "source", "verdict", "user", "updated_at", "model_version"]
    list_filter = ["verdict", "source"]
    raw_id_fields = ["block", "user"]


@admin.register(CoverageLabel)
class CoverageLabelAdmin(ReadOnlyAdmin):
    list_display = ["block", "source", "coverage_type", "user", "updated_at"]
    list_filter = ["coverage_type", "source"]
    raw_id_fields = ["block", "user"]


@admin.register(IntegrationLabel)
class IntegrationLabelAdmin(ReadOnlyAdmin):
    list_display = ["block", "decision", "user", "updated_at", "model_version", "round_number"]
    list_filter = ["decision"]
    raw_id_fields = ["block", "user"]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    """Statuses change through the services (conditional updates, audit), not by hand."""

    list_display = ["block", "user", "status", "priority", "self_claimed", "last_review"]
    list_filter = ["status", "last_review", "self_claimed"]
    raw_id_fields = ["block", "user", "assigned_by", "reviewed_by"]


@admin.register(CampaignWorkflow)
class CampaignWorkflowAdmin(admin.ModelAdmin):
    """Where a lead or admin turns self-assignment off for a campaign (on without a row)."""

    list_display = ["campaign", "self_assign"]
