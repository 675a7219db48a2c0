"""``manage.py reports_rebuild``: recompute the reports' segments and roll-ups from the stored
history (``ConversationEvent`` rows and messages), e.g. once after upgrading to a version with
reports, so the figures cover the conversations from before. Live changes keep them up to date
afterwards. Safe to run again: each chunk of conversations is replaced in one transaction.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports.services import segments_rebuild


class Command(BaseCommand):
    help = "Recompute report segments and per-conversation figures from conversation history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--conversation",
            type=int,
            action="append",
            dest="conversations",
            metavar="ID",
            help="only this conversation (repeatable)",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=500,
            help="conversations per transaction (default 500)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be 1 or more")

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"{done}/{total} conversations")

        count = segments_rebuild(
            conversation_ids=options["conversations"],
            chunk_size=options["chunk_size"],
            progress=progress,
        )
        self.stdout.write(self.style.SUCCESS(f"Rebuilt the figures of {count} conversations."))
