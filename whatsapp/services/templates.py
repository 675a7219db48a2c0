"""Message templates, synced from the Graph API (``GET /{waba_id}/message_templates``)."""

from django.db import transaction
from django.utils import timezone

from whatsapp.client import GraphClient
from whatsapp.models import MessageTemplate, WhatsAppAccount

from .accounts import account_token


class TemplateSyncError(Exception):
    """The account cannot be synced (no WABA id or no token); the message says why."""


def templates_sync(*, account: WhatsAppAccount) -> tuple[int, int]:
    """Upsert every template Meta has for the account; those Meta no longer has are removed.

    Returns ``(synced, removed)``. Raises :class:`TemplateSyncError` or ``GraphError``.
    """
    if not account.waba_id:
        raise TemplateSyncError(f"{account}: set the WhatsApp Business account id first")
    token = account_token(account)
    if not token:
        raise TemplateSyncError(f"{account}: no access token (sandbox)")
    found = GraphClient(token=token).templates(waba_id=account.waba_id)
    now = timezone.now()
    seen: set[int] = set()
    with transaction.atomic():
        for item in found:
            name, language = str(item.get("name") or ""), str(item.get("language") or "")
            if not name or not language:
                continue
            template, _created = MessageTemplate.objects.update_or_create(
                account=account,
                name=name[:512],
                language=language[:16],
                defaults={
                    "meta_id": str(item.get("id") or "")[:64],
                    "status": str(item.get("status") or "")[:32],
                    "category": str(item.get("category") or "")[:32],
                    "components": item.get("components") or [],
                    "synced_at": now,
                },
            )
            seen.add(template.pk)
        removed, _detail = (
            MessageTemplate.objects.filter(account=account).exclude(pk__in=seen).delete()
        )
    return len(seen), removed
