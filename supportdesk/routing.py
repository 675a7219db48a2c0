"""WebSocket routes (contract §6). ``supportdesk.asgi`` wraps them in the origin check and the
session auth stack; the token middleware here adds ``?token=<access JWT>`` for API clients."""

from typing import Any

from django.urls import path

from conversations.consumers import DeskConsumer, QueryStringTokenAuthMiddleware

websocket_urlpatterns: list[Any] = [
    path("ws/", QueryStringTokenAuthMiddleware(DeskConsumer.as_asgi())),
]
