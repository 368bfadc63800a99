"""REST API routes of the annotation app (mounted under /api/)."""

from django.urls import path

from annotation.apis import (
    agreement,
    assignments,
    audit,
    labels,
    overview,
    overview_counts,
    overview_tiles,
    predictions,
    samples,
)

SAMPLE = "blocks/<int:block_id>/samples/<slug:source>/"

urlpatterns = [
    path(SAMPLE, samples.SampleDetailApi.as_view(), name="api-sample-detail"),
    path(f"{SAMPLE}polygons/", samples.PolygonCreateApi.as_view(), name="api-polygon-create"),
    path(
        f"{SAMPLE}polygons/<int:polygon_id>/",
        samples.PolygonDetailApi.as_view(),
        name="api-polygon-detail",
    ),
    path(f"{SAMPLE}negative/", samples.SampleNegativeApi.as_view(), name="api-sample-negative"),
    path("blocks/<int:block_id>/audit/", audit.BlockAuditApi.as_view(), name="api-block-audit"),
    path(
        "blocks/<int:block_id>/sources/<slug:source>/prediction/",
        predictions.BlockPredictionApi.as_view(),
        name="api-block-prediction",
    ),
]

BLOCK_LABELS = "blocks/<int:block_id>/labels/"
urlpatterns += [
    path(BLOCK_LABELS, labels.BlockLabelsApi.as_view(), name="api-block-labels"),
    path(
        f"{BLOCK_LABELS}verdict/<slug:source>/",
        labels.VerdictLabelApi.as_view(),
        name="api-label-verdict",
    ),
    path(
        f"{BLOCK_LABELS}coverage/<slug:source>/",
        labels.CoverageLabelApi.as_view(),
        name="api-label-coverage",
    ),
    path(
        f"{BLOCK_LABELS}integration/",
        labels.IntegrationLabelApi.as_view(),
        name="api-label-integration",
    ),
    path(
        "campaigns/<slug:slug>/assignments/",
        assignments.CampaignAssignmentCreateApi.as_view(),
        name="api-campaign-assignments",
    ),
    path(
        "campaigns/<slug:slug>/next-block/",
        assignments.CampaignNextBlockApi.as_view(),
        name="api-campaign-next-block",
    ),
    path(
        "campaigns/<slug:slug>/agreement/",
        agreement.CampaignAgreementApi.as_view(),
        name="api-campaign-agreement",
    ),
    path(
        "campaigns/<slug:slug>/agreement/assign/",
        agreement.CampaignAgreementAssignApi.as_view(),
        name="api-campaign-agreement-assign",
    ),
    path(
        "campaigns/<slug:slug>/overview.geojson",
        overview.CampaignOverviewApi.as_view(),
        name="api-campaign-overview",
    ),
    path(
        "campaigns/<slug:slug>/tiles/<int:z>/<int:x>/<int:y>.pbf",
        overview_tiles.CampaignOverviewTileApi.as_view(),
        name="api-campaign-tiles",
    ),
    path(
        "campaigns/<slug:slug>/overview-counts/",
        overview_counts.CampaignOverviewCountsApi.as_view(),
        name="api-campaign-overview-counts",
    ),
    path("assignments/", assignments.AssignmentListApi.as_view(), name="api-assignment-list"),
    path(
        "assignments/<int:assignment_id>/start/",
        assignments.AssignmentStartApi.as_view(),
        name="api-assignment-start",
    ),
    path(
        "assignments/<int:assignment_id>/submit/",
        assignments.AssignmentSubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    path(
        "assignments/<int:assignment_id>/review/",
        assignments.AssignmentReviewApi.as_view(),
        name="api-assignment-review",
    ),
]
