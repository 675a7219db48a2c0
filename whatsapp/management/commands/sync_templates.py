"""``manage.py sync_templates [--account PHONE_NUMBER_ID]``: templates from the Graph API."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from whatsapp.client import GraphError
from whatsapp.models import WhatsAppAccount
from whatsapp.services.templates import TemplateSyncError, templates_sync


class Command(BaseCommand):
    help = "Sync message templates from Meta's Graph API for every active WhatsApp number."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", help="phone_number_id of one number (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = WhatsAppAccount.objects.filter(is_active=True)
        if options["account"]:
            accounts = accounts.filter(phone_number_id=options["account"])
            if not accounts.exists():
                raise CommandError(f"no active number with id {options['account']}")
        failures = 0
        for account in accounts:
            try:
                synced, removed = templates_sync(account=account)
            except (TemplateSyncError, GraphError) as exc:
                failures += 1
                self.stderr.write(f"{account}: {exc}")
                continue
            self.stdout.write(f"{account}: {synced} templates synced, {removed} removed")
        if failures:
            raise CommandError(f"{failures} number(s) could not be synced")
