"""Websocket routes of all apps."""

from django.urls import path

from learning.consumers import RoundProgressConsumer
from mapping.consumers import JobProgressConsumer

websocket_urlpatterns = [
    path("ws/jobs/<str:job>/", JobProgressConsumer.as_asgi()),
    path("ws/rounds/<int:round_id>/", RoundProgressConsumer.as_asgi()),
]
