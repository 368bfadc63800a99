from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin

from annotation.models import AuditEntry, ClientOperation, Sample, SamplePolygon


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
