"""HTML pages of the mapping app."""

from django.urls import path

from mapping import views

urlpatterns = [
    path("blocks/<int:block_id>/", views.block_view, name="block-view"),
]
