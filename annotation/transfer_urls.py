"""REST routes for importing and exporting sample files (mounted under /api/)."""

from django.urls import path

from annotation import transfer_apis

SAMPLES = "campaigns/<slug:slug>/samples/"

urlpatterns = [
    path(
        f"{SAMPLES}import/preview",
        transfer_apis.SamplesImportPreviewApi.as_view(),
        name="api-samples-import-preview",
    ),
    path(
        f"{SAMPLES}import/<uuid:import_id>/commit",
        transfer_apis.SamplesImportCommitApi.as_view(),
        name="api-samples-import-commit",
    ),
    path(
        f"{SAMPLES}export",
        transfer_apis.SamplesExportApi.as_view(),
        name="api-samples-export",
    ),
]
