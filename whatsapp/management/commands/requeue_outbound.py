"""``manage.py requeue_outbound``: hand outbound messages left ``queued`` to the sender again.

Celery beat does this every minute (``whatsapp.tasks.outbound_requeue_stuck``); this is the same
sweep for operators, e.g. right after the broker came back. ``--dry-run`` lists what it would do,
``--older-than SECONDS`` (default 120) how long a message must have waited. Never sends twice:
the sender's claim decides.
"""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from conversations.models import Message
from whatsapp.services.outbound import STUCK_AFTER, outbound_requeue_stuck


class Command(BaseCommand):
    help = "Queue again outbound WhatsApp messages left 'queued' (e.g. after a broker outage)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=int(STUCK_AFTER.total_seconds()),
            metavar="SECONDS",
            help="only messages queued (or last re-queued) at least this long ago (default 120)",
        )
        parser.add_argument("--dry-run", action="store_true", help="list them, queue nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] < 0:
            raise CommandError("--older-than must be 0 or more seconds")
        dry_run: bool = options["dry_run"]
        now = timezone.now()

        def report(message: Message) -> None:
            waited = int((now - message.created_at).total_seconds())
            action = "would re-queue" if dry_run else "re-queued"
            self.stdout.write(
                f"message {message.pk} (conversation {message.conversation_id}, "
                f"queued {waited}s ago, {message.send_attempts} attempts): {action}"
            )

        found = outbound_requeue_stuck(
            older_than=timedelta(seconds=options["older_than"]), dry_run=dry_run, progress=report
        )
        if dry_run:
            self.stdout.write(f"{len(found)} messages would be re-queued (dry run)")
        else:
            self.stdout.write(self.style.SUCCESS(f"{len(found)} messages re-queued"))
