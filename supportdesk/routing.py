"""WebSocket routes. The live consumer arrives with the console (contract §6)."""

from typing import Any

websocket_urlpatterns: list[Any] = []
