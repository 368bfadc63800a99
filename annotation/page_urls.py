"""HTML pages of the annotation app."""

from django.urls import path

from annotation import views

urlpatterns = [
    path("annotate/blocks/<int:block_id>/", views.block_workspace, name="block-workspace"),
    path(
        "annotate/campaigns/<slug:slug>/next/",
        views.campaign_next_block,
        name="campaign-next-block",
    ),
]
