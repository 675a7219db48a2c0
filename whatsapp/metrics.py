"""The WhatsApp channel's metrics (``GET /metrics``, see :mod:`common.metrics`).

Counted where they happen: Meta's deliveries as the webhook answers them, their processing, the
messages the sender got out or gave up on (with Graph's error code). Computed at scrape time
(:class:`ChannelCollector`): the intake lag — how long the oldest delivery not yet processed has
waited — and what waits to be sent, per number.
"""

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric

from common.metrics import PREFIX, gauge, labelled_gauge

#: How the webhook answered a POST from Meta: ``stored`` (200), ``bad_signature`` (403),
#: ``bad_json`` (400), ``too_large`` (413), ``unavailable`` (503: Meta delivers it again).
WEBHOOK_RESULTS = ("stored", "bad_signature", "bad_json", "too_large", "unavailable")
WEBHOOK_DELIVERIES = Counter(
    f"{PREFIX}whatsapp_webhook_deliveries",
    "Deliveries posted by Meta to the webhook, by how they were answered.",
    ["result"],
)
#: What processing made of a stored delivery: ``processed``, ``unknown`` (kept, marked),
#: ``failed`` (retried).
PROCESSING_RESULTS = ("processed", "unknown", "failed")
WEBHOOK_PROCESSED = Counter(
    f"{PREFIX}whatsapp_webhook_processed",
    "Stored deliveries processed, by outcome.",
    ["result"],
)
OUTBOUND_MESSAGES = Counter(
    f"{PREFIX}whatsapp_outbound_messages",
    "Outbound messages the sender finished with: sent (Meta returned an id) or failed, with "
    "Graph's error code (empty when there is none).",
    ["status", "error_code"],
)

for _result in WEBHOOK_RESULTS:
    WEBHOOK_DELIVERIES.labels(_result)
for _result in PROCESSING_RESULTS:
    WEBHOOK_PROCESSED.labels(_result)
OUTBOUND_MESSAGES.labels("sent", "")


def webhook_delivery_counted(result: str) -> None:
    WEBHOOK_DELIVERIES.labels(result).inc()


def outbound_counted(*, status: str, error_code: int | None = None) -> None:
    OUTBOUND_MESSAGES.labels(status, "" if error_code is None else str(error_code)).inc()


class ChannelCollector:
    """Scrape time, from the database: the intake's lag and backlog, queued sends per number."""

    def collect(self) -> Iterator[Metric]:
        from .selectors import account_pending_outbound, webhook_intake_lag  # noqa: PLC0415

        lag = webhook_intake_lag()
        yield gauge(
            "whatsapp_intake_lag_seconds",
            "Age of the oldest stored delivery not processed yet (0 when none waits).",
            lag.seconds,
        )
        yield gauge(
            "whatsapp_intake_pending",
            "Stored deliveries not processed yet.",
            lag.pending,
        )
        yield labelled_gauge(
            "whatsapp_outbound_pending",
            "Outbound messages queued for sending, per WhatsApp number.",
            ["phone_number_id"],
            (([phone_number_id], count) for phone_number_id, count in account_pending_outbound()),
        )
