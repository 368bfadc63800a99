"""Pages of the learning app and the dashboard's export endpoints (mounted at the site root)."""

from django.urls import path

from learning import views

urlpatterns = [
    path("campaigns/<slug:slug>/dashboard/", views.dashboard, name="learning-dashboard"),
    path("campaigns/<slug:slug>/rounds/", views.rounds_page, name="learning-rounds"),
    path("campaigns/<slug:slug>/models/", views.models_page, name="learning-models"),
    path(
        "campaigns/<slug:slug>/rounds/demo-play/",
        views.demo_play_start,
        name="learning-demo-play",
    ),
    path(
        "campaigns/<slug:slug>/systematic-sample/",
        views.systematic_sample,
        name="learning-systematic-sample",
    ),
    path(
        "api/campaigns/<slug:slug>/dashboard/",
        views.DashboardApi.as_view(),
        name="api-learning-dashboard",
    ),
    path(
        "api/campaigns/<slug:slug>/province-status/",
        views.ProvinceStatusApi.as_view(),
        name="api-learning-province-status",
    ),
    path(
        "api/campaigns/<slug:slug>/provinces.geojson",
        views.ProvincesGeoJsonApi.as_view(),
        name="api-learning-provinces-geojson",
    ),
    path(
        "api/rounds/<int:round_id>/progress/",
        views.RoundProgressApi.as_view(),
        name="api-learning-round-progress",
    ),
]
