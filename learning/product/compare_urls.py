"""Routes of the product comparison: REST endpoints under api/ and the report pages."""

from django.urls import path

from learning.product import compare_views as v

urlpatterns = [
    path(
        "api/campaigns/<slug:slug>/products/",
        v.ProductListApi.as_view(),
        name="api-product-list",
    ),
    path(
        "api/campaigns/<slug:slug>/comparisons/",
        v.ComparisonListApi.as_view(),
        name="api-comparison-list",
    ),
    path(
        "api/campaigns/<slug:slug>/comparisons/<int:comparison_id>/",
        v.ComparisonDetailApi.as_view(),
        name="api-comparison-detail",
    ),
    path("campaigns/<slug:slug>/comparisons/", v.comparison_index, name="comparison-index"),
    path(
        "campaigns/<slug:slug>/comparisons/products/",
        v.product_upload_page,
        name="comparison-product-upload",
    ),
    path(
        "campaigns/<slug:slug>/comparisons/start/",
        v.comparison_start_page,
        name="comparison-start",
    ),
    path(
        "campaigns/<slug:slug>/comparisons/<int:comparison_id>/",
        v.comparison_report,
        name="comparison-report",
    ),
    path(
        "campaigns/<slug:slug>/comparisons/<int:comparison_id>/<slug:plot>.png",
        v.comparison_plot,
        name="comparison-plot",
    ),
    path(
        "campaigns/<slug:slug>/comparisons/<int:comparison_id>/<slug:table>.csv",
        v.comparison_csv,
        name="comparison-csv",
    ),
]
