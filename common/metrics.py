"""Prometheus metrics (``GET /metrics``, contract §11), with prometheus-client.

Each app declares its own metrics in its ``metrics.py`` (the HTTP and WebSocket ones are here) and
may add a *collector*, computed when Prometheus scrapes (the intake lag from the database, queue
lengths from Redis), named in ``settings.METRICS_COLLECTORS``: no lower layer imports a higher one.

Several server processes and Celery workers: with ``PROMETHEUS_MULTIPROC_DIR`` set (a directory
shared by every process of the host, emptied when the deployment starts), each process writes its
counts there and a scrape of any one process adds up all of them (prometheus-client's multiprocess
mode). Without it (``make run``, one process) the counts are this process's own.
"""

import atexit
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

logger = logging.getLogger(__name__)

PREFIX = "supportdesk_"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_identifier() -> str:
    """Names this process's files in the multiprocess directory: the host name as well as the
    pid, so containers sharing one directory (each with its own pid 1, 7, ...) never collide."""
    host = socket.gethostname().replace("_", "-")  # "_" separates the parts of the file names
    return f"{host}-{os.getpid()}"


if multiprocess_dir():
    # Before any metric of the project exists (every app's metrics import this module first).
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
    # A process that ends takes its open-connections gauge with it (livesum); counters stay.
    atexit.register(lambda: mark_process_dead(process_identifier()))

HTTP_REQUESTS = Counter(
    f"{PREFIX}http_requests",
    "HTTP requests answered, by resolved route (the URL pattern, not the path) and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    f"{PREFIX}http_request_duration_seconds",
    "Time to answer an HTTP request, by resolved route.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
#: Open WebSocket connections (summed over the live processes in multiprocess mode).
WEBSOCKET_CONNECTIONS = Gauge(
    f"{PREFIX}websocket_connections",
    "WebSocket connections open now.",
    multiprocess_mode="livesum",
)
WEBSOCKET_OPENED = Counter(
    f"{PREFIX}websocket_connections_opened", "WebSocket connections accepted."
)

#: The route label of a request no URL pattern matched (a 404 or a redirect before routing).
UNMATCHED_ROUTE = "unmatched"


class ScrapeCollector(Protocol):  # pragma: no cover - what METRICS_COLLECTORS name
    """Computes metric families when Prometheus scrapes."""

    def collect(self) -> Iterable[Metric]: ...


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    """One unlabelled gauge family with its value (for collectors)."""
    return GaugeMetricFamily(f"{PREFIX}{name}", documentation, value=value)


def labelled_gauge(
    name: str,
    documentation: str,
    labels: Sequence[str],
    samples: Iterable[tuple[Sequence[str], float]],
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}{name}", documentation, labels=list(labels))
    for label_values, value in samples:
        family.add_metric(list(label_values), value)
    return family


class _Scrape:
    """What one scrape exposes: the processes' own metrics, then every collector's families.

    A collector that fails (the database or Redis down) is left out of that scrape and says so in
    ``supportdesk_metrics_collector_up``; the rest of the scrape still answers.
    """

    def __init__(self, collectors: Sequence[Any]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        path = multiprocess_dir()
        if path:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=path)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        up = GaugeMetricFamily(
            f"{PREFIX}metrics_collector_up",
            "Whether a scrape-time collector answered in this scrape (1) or failed (0).",
            labels=["collector"],
        )
        for collector in self.collectors:
            name = type(collector).__qualname__
            try:
                families = list(collector.collect())
            except Exception:
                logger.warning("metrics collector %s failed", name, exc_info=True)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def exposition(*, collectors: Sequence[Any] = ()) -> bytes:
    """The Prometheus text format of every metric, collectors' included."""
    return generate_latest(_Scrape(collectors))  # type: ignore[arg-type]
