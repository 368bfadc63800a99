"""REST routes for importing and exporting sample files (mounted under /api/)."""

from django.urls import path

from annotation.apis import transfer

SAMPLES = "campaigns/<slug:slug>/samples/"

urlpatterns = [
    path(
        f"{SAMPLES}import/preview",
        transfer.SamplesImportPreviewApi.as_view(),
        name="api-samples-import-preview",
    ),
    path(
        f"{SAMPLES}import/<uuid:import_id>/commit",
        transfer.SamplesImportCommitApi.as_view(),
        name="api-samples-import-commit",
    ),
    path(
        f"{SAMPLES}export",
        transfer.SamplesExportApi.as_view(),
        name="api-samples-export",
    ),
]
