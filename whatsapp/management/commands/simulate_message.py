"""``manage.py simulate_message --from 5511987650002 "texto"``: be a customer from a shell.

The message is signed like Meta signs it and goes through the real intake (in-process), or to a
running desk with ``--url http://127.0.0.1:8000/api/v1/webhooks/whatsapp``.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from whatsapp.identity import digits
from whatsapp.services.accounts import app_secret
from whatsapp.services.sandbox import sandbox_send_text


class Command(BaseCommand):
    help = "Simulate a customer's WhatsApp message (a properly signed webhook)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text")
        parser.add_argument("--from", dest="sender", required=True, help="e.g. 5511987650002")
        parser.add_argument("--name", default="", help="the customer's profile name")
        parser.add_argument("--url", default="", help="POST to a running desk instead")

    def handle(self, *args: Any, **options: Any) -> None:
        sender = digits(options["sender"])
        if len(sender) < 8:
            raise CommandError("--from needs a phone number with country code, e.g. 5511987650002")
        if not app_secret():
            raise CommandError("set WHATSAPP_APP_SECRET (or SANDBOX_ENABLED) to sign the webhook")
        result = sandbox_send_text(
            wa_id=sender, text=options["text"], name=options["name"], url=options["url"]
        )
        if isinstance(result, int):
            if result != 200:
                raise CommandError(f"the desk answered HTTP {result}")
            self.stdout.write(f"delivered to {options['url']} (HTTP 200)")
        else:
            self.stdout.write(f"delivered as webhook event #{result.pk} ({result.status})")
