"""``GET /metrics`` (contract §11): every app's metrics in Prometheus's text format.

``Authorization: Bearer <METRICS_TOKEN>`` is required; without ``METRICS_TOKEN`` the URL does not
exist (404). What the processes counted comes from :mod:`common.metrics` (all processes of the
host in multiprocess mode); what is computed at scrape time from the collectors named in
``settings.METRICS_COLLECTORS`` (one instance each, loaded once), such as
:class:`CeleryQueuesCollector` here.
"""

import functools
import hmac
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from common.metrics import exposition, labelled_gauge


@functools.cache
def _load(paths: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(import_string(path)() for path in paths)


def collectors() -> tuple[Any, ...]:
    return _load(tuple(settings.METRICS_COLLECTORS))


def _authorized(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404
    if not _authorized(request, token):
        refused = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    return HttpResponse(exposition(collectors=collectors()), content_type=CONTENT_TYPE_LATEST)


# --- Celery's queues, from Redis --------------------------------------------------------------

# kombu's Redis transport keeps a queue's messages of priority n > 0 in a list of their own,
# "<queue>\x06\x16<n>" (priority_steps 0, 3, 6, 9); the queue's length is the sum.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)


def celery_queue_names() -> list[str]:
    from .celery import app  # noqa: PLC0415 - the Celery app loads once Django is ready

    return [queue.name for queue in app.conf.task_queues or ()]


class CeleryQueuesCollector:
    """Scrape time: the messages waiting in each of the desk's Celery queues (``LLEN`` in the
    broker's Redis). Nothing without ``REDIS_URL`` (tasks run eagerly: no queue)."""

    def collect(self) -> Iterator[Metric]:
        if not settings.REDIS_URL:
            return
        import redis  # noqa: PLC0415 - only with Redis configured

        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1
        )
        names = celery_queue_names()
        try:
            with client.pipeline(transaction=False) as pipe:
                for name in names:
                    for step in _PRIORITY_STEPS:
                        pipe.llen(f"{name}{_PRIORITY_SEPARATOR}{step}" if step else name)
                lengths = pipe.execute()
        finally:
            client.close()
        per_queue = len(_PRIORITY_STEPS)
        yield labelled_gauge(
            "celery_queue_length",
            "Tasks waiting in a Celery queue (read from Redis at scrape time).",
            ["queue"],
            (
                ([name], float(sum(lengths[i * per_queue : (i + 1) * per_queue])))
                for i, name in enumerate(names)
            ),
        )
