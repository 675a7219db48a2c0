"""``GET /health``: is this process able to serve? Used by load balancers and docker-compose.

Also each WhatsApp number's state (contract §11): last delivery received, last successful send,
last send error, token state, messages waiting to go out. A number in trouble does not make the
process unhealthy (the status stays ``ok``: a load balancer must not take servers out for it).
"""

import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from whatsapp.selectors import account_health

logger = logging.getLogger(__name__)


def _check_database() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": "down", "error": exc.__class__.__name__}
    return {
        "status": "up",
        "vendor": connection.vendor,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _check_redis() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"status": "not_configured", "mode": "in-memory"}
    import redis  # noqa: PLC0415 - only needed when Redis is configured

    started = time.perf_counter()
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except Exception as exc:
        return {"status": "down", "error": exc.__class__.__name__}
    finally:
        client.close()
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    database, redis_state = _check_database(), _check_redis()
    healthy = database["status"] == "up" and redis_state["status"] != "down"
    return JsonResponse(
        {
            "status": "ok" if healthy else "error",
            "database": database,
            "redis": redis_state,
            "whatsapp": _whatsapp_numbers() if database["status"] == "up" else None,
        },
        status=200 if healthy else 503,
    )


def _whatsapp_numbers() -> list[dict[str, Any]] | None:
    try:
        return account_health()
    except Exception:
        logger.warning("health: the WhatsApp numbers' state could not be read", exc_info=True)
        return None
