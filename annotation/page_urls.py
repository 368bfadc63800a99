"""HTML pages of the annotation app."""

from django.urls import path

from annotation import campaign_views, lead_views, offline, views

urlpatterns = [
    path("campaigns/<slug:slug>/", campaign_views.campaign_overview, name="campaign-overview"),
    path(
        "campaigns/<slug:slug>/agreement/",
        campaign_views.campaign_agreement_page,
        name="campaign-agreement",
    ),
    path("annotate/blocks/<int:block_id>/", views.block_workspace, name="block-workspace"),
    path("annotate/sw.js", offline.service_worker, name="workspace-service-worker"),
    path(
        "annotate/campaigns/<slug:slug>/next/",
        views.campaign_next_block,
        name="campaign-next-block",
    ),
    # Leads and admins.
    path("campaigns/<slug:slug>/samples/", lead_views.samples_page, name="samples-page"),
    path(
        "campaigns/<slug:slug>/samples/import/<uuid:import_id>/",
        lead_views.samples_import_preview_page,
        name="samples-import-preview",
    ),
    path(
        "campaigns/<slug:slug>/samples/import/<uuid:import_id>/commit/",
        lead_views.samples_import_commit_page,
        name="samples-import-commit",
    ),
    path("campaigns/<slug:slug>/assign/", lead_views.assign_blocks_page, name="assign-blocks"),
    path(
        "campaigns/<slug:slug>/assign/self-assign/",
        lead_views.self_assign_page,
        name="assign-self-assign",
    ),
]
