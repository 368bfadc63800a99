"""HTML pages of the mapping app."""

from django.urls import path

from mapping import views

urlpatterns = [
    path("campaigns/<slug:slug>/", views.campaign_overview, name="campaign-overview"),
    path(
        "campaigns/<slug:slug>/agreement/",
        views.campaign_agreement_page,
        name="campaign-agreement",
    ),
    path("blocks/<int:block_id>/", views.block_view, name="block-view"),
]
