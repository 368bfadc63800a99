"""Admin for the final product: products compared, comparisons, integration decisions, exports."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin

from learning.product.models import (
    BlockIntegration,
    CroplandProduct,
    ProductComparison,
    ProductExport,
)
from learning.product.services.compare import ProductImportError, product_import


class CroplandProductAddForm(forms.ModelForm):
    """Upload a product raster; the import service validates and stores it (all or nothing)."""

    file = forms.FileField(help_text="GeoTIFF (any raster GDAL reads) with a CRS")
    classes = forms.CharField(
        label="Cropland classes", help_text="values meaning cropland: 40, or 10,11, or 1-3"
    )

    class Meta:
        model = CroplandProduct
        fields = ["campaign", "name", "description"]

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if self.errors or upload is None:
            return data
        tmp_dir = Path(settings.DATA_DIR) / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=tmp_dir, suffix=Path(upload.name).suffix.lower()[:10] or ".tif"
        ) as tmp:
            for chunk in upload.chunks():
                tmp.write(chunk)
            tmp.flush()
            try:
                self.instance = product_import(
                    campaign=data["campaign"],
                    name=data["name"],
                    path=Path(tmp.name),
                    cropland_classes=data.get("classes", ""),
                    description=data.get("description", ""),
                    original_name=upload.name,
                    user=getattr(self, "user", None),
                )
            except ProductImportError as e:
                raise forms.ValidationError({"file": str(e)}) from e
        return data


@admin.register(CroplandProduct)
class CroplandProductAdmin(admin.ModelAdmin):
    list_display = ["name", "campaign", "crs", "width", "height", "created_at"]
    list_filter = ["campaign"]
    readonly_fields = [
        "campaign", "name", "path", "original_name", "checksum", "cropland_classes", "crs",
        "width", "height", "dtype", "resolution_x", "resolution_y", "bounds", "nodata",
        "sample_values", "uploaded_by", "created_at",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            # A subclass per request, so that concurrent uploads do not share the user.
            return type("CroplandProductAddForm", (CroplandProductAddForm,), {"user": request.user})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["campaign", "name", "description", "file", "classes"]
        return ["description", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if change:  # only the description is editable
            obj.save(update_fields=["description"])
        # On add, the import service already saved the row and its file.


@admin.register(ProductComparison)
class ProductComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "product", "status", "done", "total", "created_at"]
    list_filter = ["campaign", "status"]
    readonly_fields = ["results", "final_map", "folder", "failure_reason"]


@admin.register(BlockIntegration)
class BlockIntegrationAdmin(admin.ModelAdmin):
    """Read-only: decisions are made by the integration model or on the review page (where an
    override also writes the integration label that trains the next model)."""

    list_display = ["block", "decision", "source", "probability", "model_decision", "updated_at"]
    list_filter = ["decision", "source", "block__campaign"]
    raw_id_fields = ["block", "mapbox_prediction", "google_prediction"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(ProductExport)
class ProductExportAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "kind", "province", "status", "done", "total", "created_at"]
    list_filter = ["campaign", "kind", "status"]
    readonly_fields = ["files", "summary", "folder", "failure_reason", "heartbeat_at"]
