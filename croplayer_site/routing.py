"""Websocket routes of all apps."""

from django.urls import path

from mapping.consumers import JobProgressConsumer

websocket_urlpatterns = [
    path("ws/jobs/<str:job>/", JobProgressConsumer.as_asgi()),
]
