"""Websocket routes of all apps: one consumer, authorising through the job registry."""

from django.urls import path

from croplayer_site.consumers import JobConsumer

websocket_urlpatterns = [
    path("ws/jobs/<str:job>/", JobConsumer.as_asgi()),
    # the rounds page's own route (static/learning/rounds.js): only rounds, only by id
    path(
        "ws/rounds/<int:round_id>/",
        JobConsumer.as_asgi(route="rounds", name="round", pk_kwarg="round_id"),
    ),
]
