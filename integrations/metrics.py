"""Outgoing webhooks' metrics (``GET /metrics``, see :mod:`common.metrics`).

``supportdesk_outgoing_webhook_deliveries_total{result}`` counts attempts by what came of them:
``succeeded`` (a 2xx), ``retrying`` (failed, another attempt is scheduled), ``failed`` (given up:
the retry window passed, or the subscription was deleted or turned off). At scrape time
(:class:`OutboxCollector`): the deliveries still pending and the age of the oldest.
"""

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter
from prometheus_client.metrics_core import Metric

from common.metrics import PREFIX, gauge

from .models import DeliveryStatus, WebhookDelivery

RESULTS = ("succeeded", "retrying", "failed")
DELIVERIES = Counter(
    f"{PREFIX}outgoing_webhook_deliveries",
    "Outgoing webhook delivery attempts, by result.",
    ["result"],
)
for _result in RESULTS:
    DELIVERIES.labels(_result)


def delivery_counted(result: str, count: int = 1) -> None:
    if count:
        DELIVERIES.labels(result).inc(count)


class OutboxCollector:
    """Scrape time, from the database: what the outbox still has to deliver."""

    def collect(self) -> Iterator[Metric]:
        row = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).aggregate(
            n=Count("pk"), oldest=Min("created_at")
        )
        oldest = row["oldest"]
        yield gauge(
            "outgoing_webhook_pending",
            "Outgoing webhook deliveries not delivered yet (nor given up).",
            int(row["n"] or 0),
        )
        yield gauge(
            "outgoing_webhook_oldest_pending_seconds",
            "Age of the oldest outgoing webhook delivery still pending (0 when none).",
            (timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )
