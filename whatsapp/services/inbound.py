"""Processing of a stored delivery: every entry, change, message and status in it.

Idempotent by construction — a WhatsApp message id is stored once (unique constraint), statuses
never go backwards, reactions keep the newest by WhatsApp's timestamp — so a delivery can be
processed any number of times (Celery retries, ``manage.py replay_webhooks``).
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from conversations import services as conversation_services
from conversations.models import (
    ConversationStatus,
    Customer,
    Message,
    MessageType,
    SenderKind,
)
from whatsapp.identity import e164, wa_id_variants
from whatsapp.models import (
    ChannelError,
    ChannelErrorKind,
    PendingStatus,
    WebhookEvent,
    WebhookStatus,
    WhatsAppAccount,
)

from .accounts import account_for_phone_number_id

logger = logging.getLogger(__name__)

MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
KNOWN_TYPES = frozenset(
    {*MEDIA_TYPES, "text", "location", "contacts", "interactive", "button", "reaction"}
)


class ProcessingError(Exception):
    """Some items of a delivery could not be processed; the task retries the delivery."""


class UnidentifiedSenderError(Exception):
    """A message with neither ``from`` nor ``from_user_id``: kept in the event, marked."""


def wa_time(value: Any) -> datetime | None:
    """Meta's Unix-seconds string as an aware datetime."""
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# --- Customers -------------------------------------------------------------------------------


def _lock_identity(key: str) -> None:
    """Serialise work on one customer across workers (PostgreSQL advisory lock, transaction-long).

    With the partial unique index on active conversations this makes concurrent deliveries for one
    customer converge on one customer row and one conversation.
    """
    if connection.vendor == "postgresql" and key:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def customer_upsert(*, wa_id: str = "", bsuid: str = "", name: str = "") -> Customer:
    """The customer with this WhatsApp id (either Brazilian form) or business-scoped user id.

    Created when new; the profile name and missing identifiers are filled in when they arrive.
    """
    variants = wa_id_variants(wa_id)
    bsuid = (bsuid or "").strip()[:64]
    if not variants and not bsuid:
        raise ValueError("a customer needs a WhatsApp id or a business-scoped user id")

    def find() -> Customer | None:
        found = None
        if variants:
            found = Customer.objects.filter(wa_id__in=variants).order_by("pk").first()
        if found is None and bsuid:
            found = Customer.objects.filter(bsuid=bsuid).first()
        return found

    customer = find()
    if customer is None:
        try:
            with transaction.atomic():
                return Customer.objects.create(
                    wa_id=variants[0] if variants else None,
                    bsuid=bsuid or None,
                    phone=e164(variants[0]) if variants else "",
                    name=name[:200],
                )
        except IntegrityError:
            customer = find()
            if customer is None:
                raise
    changed: list[str] = []
    if name and customer.name != name[:200]:
        customer.name = name[:200]
        changed.append("name")
    if bsuid and not customer.bsuid and not Customer.objects.filter(bsuid=bsuid).exists():
        customer.bsuid = bsuid
        changed.append("bsuid")
    # Meta's wa_id is canonical (it is what we send to): adopt the form Meta uses now.
    if (
        variants
        and customer.wa_id != variants[0]
        and not Customer.objects.filter(wa_id=variants[0]).exclude(pk=customer.pk).exists()
    ):
        customer.wa_id = variants[0]
        changed.append("wa_id")
    if variants and not customer.phone:
        customer.phone = e164(variants[0])
        changed.append("phone")
    if changed:
        customer.save(update_fields=[*changed, "updated_at"])
    return customer


# --- Messages --------------------------------------------------------------------------------


def _describe(  # noqa: PLR0911 - one return per message type
    kind: str, obj: Any, message: dict[str, Any]
) -> tuple[str, str, dict[str, Any]]:
    """(our type, readable body, media fields) for one Meta message."""
    obj = obj if isinstance(obj, dict) else {}
    media: dict[str, Any] = {}
    if kind == "text":
        return MessageType.TEXT, str(obj.get("body", "")), media
    if kind in MEDIA_TYPES:
        media = {
            "media_id": str(obj.get("id", ""))[:128],
            "media_mime_type": str(obj.get("mime_type", ""))[:100],
            "media_sha256": str(obj.get("sha256", ""))[:100],
            "media_filename": str(obj.get("filename", ""))[:255],
        }
        return kind, str(obj.get("caption", "")), media
    if kind == "location":
        place = " — ".join(str(obj[k]) for k in ("name", "address") if obj.get(k))
        coords = f"{obj.get('latitude')}, {obj.get('longitude')}"
        return MessageType.LOCATION, f"📍 {place} ({coords})" if place else f"📍 {coords}", media
    if kind == "contacts":
        contacts = message.get("contacts") or []
        lines = []
        for contact in contacts if isinstance(contacts, list) else []:
            contact_name = (contact.get("name") or {}).get("formatted_name", "")
            phones = ", ".join(str(p.get("phone", "")) for p in contact.get("phones") or [])
            lines.append(f"👤 {contact_name} {phones}".strip())
        return MessageType.CONTACTS, "\n".join(lines), media
    if kind == "interactive":
        reply = obj.get(str(obj.get("type", ""))) or {}
        return MessageType.INTERACTIVE, str(reply.get("title", "")), media
    if kind == "button":
        return MessageType.BUTTON, str(obj.get("text", "")), media
    if kind == "system":
        return MessageType.SYSTEM, str(obj.get("body", "")), media
    if kind == "order":
        items = obj.get("product_items") or []
        return MessageType.UNSUPPORTED, f"🛒 order ({len(items)} items)", media
    errors = message.get("errors") or []
    detail = ""
    if errors and isinstance(errors[0], dict):
        detail = errors[0].get("title") or errors[0].get("message") or ""
    return MessageType.UNSUPPORTED, detail or f"({kind or 'unknown'} message)", media


def _message_error(message: dict[str, Any]) -> dict[str, Any]:
    errors = message.get("errors") or []
    if not errors or not isinstance(errors[0], dict):
        return {}
    error = errors[0]
    details = (error.get("error_data") or {}).get("details", "")
    code = error.get("code")
    return {
        "error_code": code if isinstance(code, int) else None,
        "error": " — ".join(
            str(p) for p in (error.get("title") or error.get("message"), details) if p
        ),
        "error_data": error,
    }


def _contact_for(value: dict[str, Any], wa_id: str, user_id: str) -> dict[str, Any]:
    for contact in value.get("contacts") or []:
        if not isinstance(contact, dict):
            continue
        if (wa_id and contact.get("wa_id") == wa_id) or (
            user_id and contact.get("user_id") == user_id
        ):
            return contact
    contacts = value.get("contacts") or []
    return contacts[0] if len(contacts) == 1 and isinstance(contacts[0], dict) else {}


def _process_message(
    *, account: WhatsAppAccount, value: dict[str, Any], message: dict[str, Any]
) -> Message | None:
    wa_message_id = str(message.get("id") or "")[:128] or None
    if wa_message_id and Message.objects.filter(wa_message_id=wa_message_id).exists():
        return None  # redelivery: already stored
    wa_id = str(message.get("from") or "")
    user_id = str(message.get("from_user_id") or "")
    contact = _contact_for(value, wa_id, user_id)
    wa_id = wa_id or str(contact.get("wa_id") or "")
    user_id = user_id or str(contact.get("user_id") or "")
    name = str((contact.get("profile") or {}).get("name") or "")
    variants = wa_id_variants(wa_id)
    if not variants and not user_id:
        raise UnidentifiedSenderError(str(wa_message_id))
    _lock_identity(min(variants, key=len) if variants else user_id)
    if wa_message_id and Message.objects.filter(wa_message_id=wa_message_id).exists():
        return None  # stored by a concurrent worker while we waited for the lock
    customer = customer_upsert(wa_id=wa_id, bsuid=user_id, name=name)
    conversation, _created = conversation_services.conversation_open_for_customer(
        customer=customer, whatsapp_account_id=account.pk
    )
    kind = str(message.get("type") or "unknown")
    obj = message.get(kind)
    moment = wa_time(message.get("timestamp"))

    if kind == "reaction" and isinstance(obj, dict):
        target = Message.objects.filter(wa_message_id=obj.get("message_id")).first()
        if target is not None:
            conversation_services.message_react(
                message=target,
                sender=SenderKind.CUSTOMER,
                emoji=str(obj.get("emoji") or ""),
                wa_timestamp=moment,
            )
            return None
        # The reacted-to message is unknown to us: keep the reaction as a message of its own.
        body = str(obj.get("emoji") or "")
        our_type: str = MessageType.REACTION
        media: dict[str, Any] = {}
    else:
        our_type, body, media = _describe(kind, obj, message)

    reply_to = None
    context = message.get("context")
    if isinstance(context, dict) and context.get("id"):
        reply_to = Message.objects.filter(wa_message_id=context["id"]).first()
    error_fields = _message_error(message)
    stored, created = conversation_services.message_record_inbound(
        conversation=conversation,
        type=our_type,
        body=body,
        wa_message_id=wa_message_id,
        wa_timestamp=moment,
        raw_payload=message,
        reply_to=reply_to,
        **media,
        **error_fields,
    )
    if not created:
        return None
    if our_type == MessageType.SYSTEM:
        from .customers import customer_number_changed_from_system  # noqa: PLC0415 - cycle

        customer_number_changed_from_system(message=stored)
    if our_type in MEDIA_TYPES and stored.media_id:
        transaction.on_commit(lambda: _queue_media(stored.pk))
    if conversation.status == ConversationStatus.BOT and our_type != MessageType.SYSTEM:
        transaction.on_commit(lambda: _queue_bot(stored.pk))
    return stored


def _queue_media(message_id: int) -> None:
    from whatsapp.tasks import media_download  # noqa: PLC0415 - tasks import services

    try:
        media_download.delay(message_id)
    except Exception:
        logger.exception("could not queue the media download of message %s", message_id)


def _queue_bot(message_id: int) -> None:
    from botflows.tasks import bot_handle_message  # noqa: PLC0415

    try:
        bot_handle_message.delay(message_id)
    except Exception:
        logger.exception("could not queue the bot for message %s", message_id)


# --- Statuses --------------------------------------------------------------------------------


def status_apply(*, status: dict[str, Any], webhook_event: WebhookEvent | None = None) -> bool:
    """Apply one of Meta's statuses to our outbound message; kept for later when unknown yet.

    Returns whether the message was found.
    """
    wa_message_id = str(status.get("id") or "")
    if not wa_message_id:
        return False
    message = Message.objects.select_for_update().filter(wa_message_id=wa_message_id).first()
    if message is None:
        exists = PendingStatus.objects.filter(
            wa_message_id=wa_message_id, payload__status=status.get("status")
        ).exists()
        if not exists:
            PendingStatus.objects.create(
                wa_message_id=wa_message_id[:128], payload=status, webhook_event=webhook_event
            )
        return False
    errors = status.get("errors") or []
    conversation_services.message_update_status(
        message=message,
        status=str(status.get("status") or ""),
        timestamp=wa_time(status.get("timestamp")),
        error=errors[0] if errors and isinstance(errors[0], dict) else None,
    )
    return True


def pending_statuses_apply(*, message: Message) -> int:
    """Statuses that arrived before we knew ``message``'s wamid, applied in Meta's order."""
    if not message.wa_message_id:
        return 0
    pending = list(PendingStatus.objects.filter(wa_message_id=message.wa_message_id))
    pending.sort(key=lambda p: (int(str(p.payload.get("timestamp") or 0) or 0), p.pk))
    for item in pending:
        status_apply(status=item.payload)
    PendingStatus.objects.filter(pk__in=[p.pk for p in pending]).delete()
    return len(pending)


# --- Deliveries ------------------------------------------------------------------------------


def _record_value_errors(
    *, value: dict[str, Any], account: WhatsAppAccount | None, event: WebhookEvent
) -> None:
    for error in value.get("errors") or []:
        if not isinstance(error, dict):
            continue
        code = error.get("code") if isinstance(error.get("code"), int) else None
        title = str(error.get("title") or error.get("message") or "")[:255]
        if ChannelError.objects.filter(webhook_event=event, code=code, title=title).exists():
            continue  # replayed delivery: recorded already
        ChannelError.objects.create(
            kind=ChannelErrorKind.WEBHOOK,
            account=account,
            webhook_event=event,
            code=code,
            title=title,
            details=str(
                (error.get("error_data") or {}).get("details") or error.get("message") or ""
            ),
            data=error,
        )


def webhook_event_process(  # noqa: PLR0912, PLR0915 - walks Meta's nested shape
    *, event_id: int, force: bool = False
) -> WebhookEvent:
    """Process every entry, change, message and status of a stored delivery.

    Each item commits on its own, so one bad item never holds back the others; when some fail the
    event is marked ``failed`` and :class:`ProcessingError` is raised for the task to retry.
    Things we do not understand (other fields, unknown numbers) leave the event ``unknown``.
    """
    event = WebhookEvent.objects.get(pk=event_id)
    if event.status == WebhookStatus.PROCESSED and not force:
        return event
    payload = event.payload if isinstance(event.payload, dict) else None
    parsed_now = payload is None
    if payload is None:
        try:
            payload = json.loads(event.raw_body)
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
    problems: list[str] = []
    unknown: list[str] = []
    if payload.get("object") != "whatsapp_business_account":
        unknown.append(f"object {payload.get('object')!r}")
    for entry in payload.get("entry") or []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            field = change.get("field") if isinstance(change, dict) else None
            if field != "messages" or not isinstance(value, dict):
                unknown.append(f"field {field!r}")
                continue
            phone_number_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
            account = account_for_phone_number_id(phone_number_id)
            with transaction.atomic():
                _record_value_errors(value=value, account=account, event=event)
            if account is None:
                unknown.append(f"unknown phone_number_id {phone_number_id!r}")
                continue
            for message in value.get("messages") or []:
                try:
                    with transaction.atomic():
                        _process_message(account=account, value=value, message=message)
                except UnidentifiedSenderError:
                    unknown.append(f"message {message.get('id')} without a sender")
                except Exception as exc:
                    logger.exception("webhook %s: message %s failed", event.pk, message.get("id"))
                    problems.append(f"message {message.get('id')}: {exc!r}")
            for status in value.get("statuses") or []:
                try:
                    with transaction.atomic():
                        status_apply(status=status, webhook_event=event)
                except Exception as exc:
                    logger.exception("webhook %s: status %s failed", event.pk, status.get("id"))
                    problems.append(f"status {status.get('id')}: {exc!r}")
    if problems:
        new_status, error = WebhookStatus.FAILED, "\n".join(problems)
    elif unknown:
        new_status, error = WebhookStatus.UNKNOWN, "Not understood: " + "; ".join(unknown)
    else:
        new_status, error = WebhookStatus.PROCESSED, ""
    changes: dict[str, Any] = {
        "status": new_status,
        "error": error[:10000],
        "processed_at": timezone.now(),
        "attempts": F("attempts") + 1,
    }
    if parsed_now:
        changes["payload"] = payload
    WebhookEvent.objects.filter(pk=event.pk).update(**changes)
    event.refresh_from_db()
    if problems:
        raise ProcessingError(error)
    return event
