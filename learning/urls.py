"""REST API routes of learning rounds and the model registry (mounted under /api/)."""

from django.urls import path

from learning import apis

urlpatterns = [
    path("campaigns/<slug:slug>/rounds/", apis.RoundListApi.as_view(), name="api-round-list"),
    path(
        "campaigns/<slug:slug>/rounds/<int:number>/",
        apis.RoundDetailApi.as_view(),
        name="api-round-detail",
    ),
    path(
        "campaigns/<slug:slug>/rounds/<int:number>/cancel/",
        apis.RoundCancelApi.as_view(),
        name="api-round-cancel",
    ),
    path(
        "campaigns/<slug:slug>/model-versions/",
        apis.ModelVersionListApi.as_view(),
        name="api-model-version-list",
    ),
    path(
        "campaigns/<slug:slug>/model-versions/<int:version_id>/set-current/",
        apis.ModelVersionSetCurrentApi.as_view(),
        name="api-model-version-set-current",
    ),
    path(
        "campaigns/<slug:slug>/stop-status/",
        apis.StopStatusApi.as_view(),
        name="api-stop-status",
    ),
    path(
        "campaigns/<slug:slug>/systematic-sample/",
        apis.SystematicSampleApi.as_view(),
        name="api-systematic-sample",
    ),
]
