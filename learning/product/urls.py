"""Routes of the integration review and product exports (mounted at the site root)."""

from django.urls import path

from learning.product import views as v

urlpatterns = [
    path(
        "api/campaigns/<slug:slug>/integration/blocks.geojson",
        v.IntegrationBlocksGeoJsonApi.as_view(),
        name="api-integration-blocks",
    ),
    path(
        "api/campaigns/<slug:slug>/integration/run/",
        v.IntegrationRunApi.as_view(),
        name="api-integration-run",
    ),
    path(
        "api/blocks/<int:block_id>/integration/",
        v.BlockIntegrationApi.as_view(),
        name="api-block-integration",
    ),
    path(
        "api/campaigns/<slug:slug>/exports/",
        v.CampaignExportsApi.as_view(),
        name="api-campaign-exports",
    ),
    path("api/exports/<int:export_id>/", v.ExportDetailApi.as_view(), name="api-export-detail"),
    path("exports/<int:export_id>/files/<str:name>", v.export_file, name="product-export-file"),
    path("campaigns/<slug:slug>/integration/", v.integration_review, name="integration-review"),
    path("campaigns/<slug:slug>/products/", v.products_page, name="product-exports"),
]
