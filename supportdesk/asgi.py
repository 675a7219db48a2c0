"""ASGI entry point: HTTP through Django, WebSockets through Channels (``/ws/``).

The WhatsApp webhook's POSTs are answered ahead of Django by :class:`whatsapp.asgi.WebhookIntake`.
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from common.asgi import WebSocketMetrics  # noqa: E402
from whatsapp.asgi import WebhookIntake  # noqa: E402

from .routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Meta's deliveries are stored at the edge (whatsapp/asgi.py); the rest is Django's.
        "http": WebhookIntake(django_asgi_app),
        # Open connections counted (supportdesk_websocket_connections), nothing else changed.
        "websocket": WebSocketMetrics(
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)

# Everything loaded so far (settings, apps, URL patterns, templates' code) lives as long as the
# process: moved out of the collector's reach, the full collections that stall every request in
# flight get much shorter (https://docs.python.org/3/library/gc.html#gc.freeze).
gc.freeze()
