"""REST API routes of the mapping app (mounted under /api/)."""

from django.urls import path

from mapping import apis

urlpatterns = [
    path("campaigns/", apis.CampaignListApi.as_view(), name="api-campaign-list"),
    path(
        "campaigns/<slug:slug>/blocks.geojson",
        apis.CampaignBlocksGeoJsonApi.as_view(),
        name="api-campaign-blocks",
    ),
    path(
        "campaigns/<slug:slug>/statistics/",
        apis.CampaignStatisticsApi.as_view(),
        name="api-campaign-statistics",
    ),
    path("blocks/<int:block_id>/", apis.BlockDetailApi.as_view(), name="api-block-detail"),
    path(
        "blocks/<int:block_id>/imagery/<slug:source>/tilejson.json",
        apis.BlockTileJsonApi.as_view(),
        name="api-block-tilejson",
    ),
    path(
        "blocks/<int:block_id>/imagery/<slug:source>/<int:z>/<int:x>/<int:y>.png",
        apis.BlockTileApi.as_view(),
        name="api-block-tile",
    ),
]
