"""REST API routes of the annotation app (mounted under /api/)."""

from django.urls import path

from annotation import apis, legend_apis, prediction_apis, tile_apis

SAMPLE = "blocks/<int:block_id>/samples/<slug:source>/"

urlpatterns = [
    path(SAMPLE, apis.SampleDetailApi.as_view(), name="api-sample-detail"),
    path(f"{SAMPLE}polygons/", apis.PolygonCreateApi.as_view(), name="api-polygon-create"),
    path(
        f"{SAMPLE}polygons/<int:polygon_id>/",
        apis.PolygonDetailApi.as_view(),
        name="api-polygon-detail",
    ),
    path(f"{SAMPLE}negative/", apis.SampleNegativeApi.as_view(), name="api-sample-negative"),
    path("blocks/<int:block_id>/audit/", apis.BlockAuditApi.as_view(), name="api-block-audit"),
    path(
        "blocks/<int:block_id>/sources/<slug:source>/prediction/",
        prediction_apis.BlockPredictionApi.as_view(),
        name="api-block-prediction",
    ),
]

BLOCK_LABELS = "blocks/<int:block_id>/labels/"
urlpatterns += [
    path(BLOCK_LABELS, apis.BlockLabelsApi.as_view(), name="api-block-labels"),
    path(
        f"{BLOCK_LABELS}verdict/<slug:source>/",
        apis.VerdictLabelApi.as_view(),
        name="api-label-verdict",
    ),
    path(
        f"{BLOCK_LABELS}coverage/<slug:source>/",
        apis.CoverageLabelApi.as_view(),
        name="api-label-coverage",
    ),
    path(
        f"{BLOCK_LABELS}integration/",
        apis.IntegrationLabelApi.as_view(),
        name="api-label-integration",
    ),
    path(
        "campaigns/<slug:slug>/assignments/",
        apis.CampaignAssignmentCreateApi.as_view(),
        name="api-campaign-assignments",
    ),
    path(
        "campaigns/<slug:slug>/next-block/",
        apis.CampaignNextBlockApi.as_view(),
        name="api-campaign-next-block",
    ),
    path(
        "campaigns/<slug:slug>/agreement/",
        apis.CampaignAgreementApi.as_view(),
        name="api-campaign-agreement",
    ),
    path(
        "campaigns/<slug:slug>/agreement/assign/",
        apis.CampaignAgreementAssignApi.as_view(),
        name="api-campaign-agreement-assign",
    ),
    path(
        "campaigns/<slug:slug>/overview.geojson",
        apis.CampaignOverviewApi.as_view(),
        name="api-campaign-overview",
    ),
    path(
        "campaigns/<slug:slug>/tiles/<int:z>/<int:x>/<int:y>.pbf",
        tile_apis.CampaignOverviewTileApi.as_view(),
        name="api-campaign-tiles",
    ),
    path(
        "campaigns/<slug:slug>/overview-counts/",
        legend_apis.CampaignOverviewCountsApi.as_view(),
        name="api-campaign-overview-counts",
    ),
    path("assignments/", apis.AssignmentListApi.as_view(), name="api-assignment-list"),
    path(
        "assignments/<int:assignment_id>/start/",
        apis.AssignmentStartApi.as_view(),
        name="api-assignment-start",
    ),
    path(
        "assignments/<int:assignment_id>/submit/",
        apis.AssignmentSubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    path(
        "assignments/<int:assignment_id>/review/",
        apis.AssignmentReviewApi.as_view(),
        name="api-assignment-review",
    ),
]
