"""ASGI wrappers shared by the project's entry point."""

from typing import Any

from .metrics import WEBSOCKET_CONNECTIONS, WEBSOCKET_OPENED


class WebSocketMetrics:
    """Counts the WebSocket connections the wrapped application accepts, while they are open
    (``supportdesk_websocket_connections``); whatever the application decides is left to it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "websocket":
            await self.app(scope, receive, send)
            return
        accepted = False

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal accepted
            if message.get("type") == "websocket.accept" and not accepted:
                accepted = True
                WEBSOCKET_OPENED.inc()
                WEBSOCKET_CONNECTIONS.inc()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if accepted:
                WEBSOCKET_CONNECTIONS.dec()
