"""``manage.py replay_webhooks``: re-process stored deliveries, idempotently.

The tool to reach for after a bug fix: ``--status failed``, ``--since``/``--until`` (ISO dates or
times), ``--id`` (repeatable). ``--queue`` hands them to the workers instead of processing here.
"""

from datetime import datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from whatsapp.models import WebhookEvent, WebhookStatus
from whatsapp.services.inbound import ProcessingError, webhook_event_process


def _moment(value: str) -> Any:
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"not a date or time: {value!r}")
        parsed = datetime.combine(day, time.min)
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


class Command(BaseCommand):
    help = "Re-process stored WhatsApp webhook deliveries (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status", action="append", choices=WebhookStatus.values, help="repeatable"
        )
        parser.add_argument("--since", help="received at or after (ISO date/time)")
        parser.add_argument("--until", help="received before (ISO date/time)")
        parser.add_argument("--id", action="append", type=int, dest="ids", help="repeatable")
        parser.add_argument("--queue", action="store_true", help="queue for the workers")
        parser.add_argument("--limit", type=int, default=100_000)

    def handle(self, *args: Any, **options: Any) -> None:
        events = WebhookEvent.objects.order_by("received_at", "id")
        if not (options["status"] or options["since"] or options["until"] or options["ids"]):
            raise CommandError("choose what to replay: --status, --since/--until or --id")
        if options["status"]:
            events = events.filter(status__in=options["status"])
        if options["since"]:
            events = events.filter(received_at__gte=_moment(options["since"]))
        if options["until"]:
            events = events.filter(received_at__lt=_moment(options["until"]))
        if options["ids"]:
            events = events.filter(pk__in=options["ids"])
        ids = list(events.values_list("pk", flat=True)[: options["limit"]])
        counts: dict[str, int] = {}
        for event_id in ids:
            if options["queue"]:
                from whatsapp.tasks import webhook_process  # noqa: PLC0415

                webhook_process.delay(event_id)
                counts["queued"] = counts.get("queued", 0) + 1
                continue
            try:
                event = webhook_event_process(event_id=event_id, force=True)
                status = str(event.status)
            except ProcessingError:
                status = WebhookStatus.FAILED
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing"
        self.stdout.write(f"{len(ids)} deliveries replayed: {summary}")
