from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin

from annotation.models import Sample, SamplePolygon


class SamplePolygonInline(admin.TabularInline):
    model = SamplePolygon
    extra = 0
    fields = ["subtype", "created_by", "created_at", "model_version", "round_number"]
    readonly_fields = ["created_at"]


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ["block", "source", "kind", "split", "created_by", "created_at"]
    list_filter = ["kind", "split", "source"]
    raw_id_fields = ["block"]
    inlines = [SamplePolygonInline]


@admin.register(SamplePolygon)
class SamplePolygonAdmin(GISModelAdmin):
    list_display = ["id", "sample", "subtype", "created_by", "created_at"]
    raw_id_fields = ["sample"]
