"""REST API routes of the annotation app (mounted under /api/)."""

from django.urls import path

from annotation import apis

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
]
