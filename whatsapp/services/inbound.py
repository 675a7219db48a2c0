"""Processing of a stored delivery: every entry, change, message and status in it.

Idempotent by construction — a WhatsApp message id is stored once (unique constraint), statuses
never go backwards, reactions keep the newest by WhatsApp's timestamp — so a delivery can be
processed any number of times (Celery retries, ``manage.py replay_webhooks``).
"""

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from conversations import services as conversation_services
from conversations.models import (
    Conversation,
    ConversationStatus,
    CsatStatus,
    Customer,
    Message,
    MessageType,
    SenderKind,
)
from conversations.replies import reply_choice
from conversations.services import csat
from conversations.services import customers as customer_services
from conversations.services.customers import CustomerIdentity
from whatsapp.identity import e164, wa_id_variants
from whatsapp.metrics import WEBHOOK_PROCESSED
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


def customer_identity(*, wa_id: str = "", bsuid: str = "", name: str = "") -> CustomerIdentity:
    """Who WhatsApp says wrote: every form of the number (Meta's first), its E.164 phone."""
    variants = wa_id_variants(wa_id)
    return CustomerIdentity(
        wa_ids=tuple(variants),
        bsuid=bsuid,
        name=name,
        phone=e164(variants[0]) if variants else "",
    )


def customer_upsert(*, wa_id: str = "", bsuid: str = "", name: str = "") -> Customer:
    """The customer with this WhatsApp id (either Brazilian form) or business-scoped user id,
    created when new (``conversations.services.customers.customer_upsert``)."""
    return customer_services.customer_upsert(
        identity=customer_identity(wa_id=wa_id, bsuid=bsuid, name=name)
    )


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


@dataclass
class _Item:
    """One customer message of a delivery, with the sender it names."""

    event_id: int
    account: WhatsAppAccount
    message: dict[str, Any]
    wa_message_id: str | None
    wa_id: str
    user_id: str
    name: str

    @cached_property
    def lock_key(self) -> str:
        variants = wa_id_variants(self.wa_id)
        return min(variants, key=len) if variants else self.user_id


def _item(*, event_id: int, account: WhatsAppAccount, value: dict[str, Any], message: Any) -> _Item:
    if not isinstance(message, dict):
        raise UnidentifiedSenderError("not an object")
    wa_message_id = str(message.get("id") or "")[:128] or None
    wa_id = str(message.get("from") or "")
    user_id = str(message.get("from_user_id") or "")
    contact = _contact_for(value, wa_id, user_id)
    wa_id = wa_id or str(contact.get("wa_id") or "")
    user_id = user_id or str(contact.get("user_id") or "")
    if not wa_id_variants(wa_id) and not user_id:
        raise UnidentifiedSenderError(str(wa_message_id))
    name = str((contact.get("profile") or {}).get("name") or "")
    return _Item(event_id, account, message, wa_message_id, wa_id, user_id, name)


def _customers_for(items: Sequence[_Item]) -> dict[str, Customer]:
    """The customer of every sender (by lock key), read in one query, created when new."""
    identities: dict[str, CustomerIdentity] = {}
    for item in items:  # the newest profile name wins
        identities[item.lock_key] = customer_identity(
            wa_id=item.wa_id, bsuid=item.user_id, name=item.name
        )
    return customer_services.customers_upsert_many(identities=identities)


def _answer_of(message: dict[str, Any]) -> tuple[str, str]:
    """(text, tapped button or list row id) of one of Meta's message objects."""
    reply_id, title = reply_choice(message)
    if reply_id:
        return title, reply_id
    text = message.get("text")
    return (str(text.get("body") or ""), "") if isinstance(text, dict) else ("", "")


def _conversations_for(
    items: Sequence[_Item], customers: dict[str, Customer]
) -> Callable[[_Item], Conversation]:
    """The conversation of every item: the customer's conversation in progress on that number,
    opened with the bot when none. An answer to a satisfaction survey (a score, then a comment)
    goes to the closed conversation that asked; anything else moves on and the survey expires."""
    pairs = {(customers[item.lock_key], item.account.pk) for item in items}
    active = Conversation.objects.filter(
        customer_id__in={customer.pk for customer, _account in pairs},
        whatsapp_account_id__in={account for _customer, account in pairs},
    ).exclude(status=ConversationStatus.CLOSED)
    found = {(c.customer_id, c.whatsapp_account_id): c for c in active}
    idle = [(c.pk, account) for c, account in pairs if (c.pk, account) not in found]
    surveys = csat.csat_pending_for(pairs=idle) if idle else {}
    routed: dict[int, Conversation] = {}
    answered: set[tuple[int, int]] = set()
    moved_on: set[tuple[int, int]] = set()
    for item in items:
        key = (customers[item.lock_key].pk, item.account.pk)
        survey = surveys.get(key)
        if key in found or survey is None or key in moved_on:
            moved_on.add(key)
            continue
        text, reply_id = _answer_of(item.message)
        if csat.csat_takes(survey=survey, text=text, reply_id=reply_id):
            routed[id(item)] = survey.conversation
            answered.add(key)
            # What the answers of this batch will make of it: a score, then a comment, then done.
            survey.status = (
                CsatStatus.AWAITING_COMMENT
                if survey.status == CsatStatus.REQUESTED
                else CsatStatus.COMPLETED
            )
        else:
            moved_on.add(key)
    csat.csat_expire(surveys=[s for k, s in surveys.items() if k in moved_on - answered])
    by_pk = {customer.pk: customer for customer, _account in pairs}
    found.update(
        conversation_services.conversations_open_for_customers(
            pairs=[(by_pk[c], account) for c, account in idle if (c, account) in moved_on]
        )
    )

    def conversation_of(item: _Item) -> Conversation:
        return routed.get(id(item)) or found[customers[item.lock_key].pk, item.account.pk]

    return conversation_of


def _fresh(items: Sequence[_Item]) -> list[_Item]:
    """The items not stored yet: redeliveries (also twice within one batch) are left out."""
    wamids = {item.wa_message_id for item in items if item.wa_message_id}
    seen = set(
        Message.objects.filter(wa_message_id__in=wamids).values_list("wa_message_id", flat=True)
        if wamids
        else ()
    )
    fresh: list[_Item] = []
    for item in items:
        if item.wa_message_id:
            if item.wa_message_id in seen:
                continue
            seen.add(item.wa_message_id)
        fresh.append(item)
    return fresh


def _referenced(items: Sequence[_Item]) -> dict[str, Message]:
    """The stored messages that these items quote or react to, by WhatsApp id."""
    references = set()
    for item in items:
        context, reaction = item.message.get("context"), item.message.get("reaction")
        if isinstance(context, dict) and context.get("id"):
            references.add(str(context["id"]))
        if item.message.get("type") == "reaction" and isinstance(reaction, dict):
            references.add(str(reaction.get("message_id") or ""))
    if not references:
        return {}
    found = Message.objects.select_related("conversation").filter(wa_message_id__in=references)
    return {m.wa_message_id: m for m in found if m.wa_message_id}


class _Writer:
    """Collects messages for one INSERT; a reaction or reply to one collected writes them first."""

    def __init__(self, known: dict[str, Message]) -> None:
        self.known = known
        self.pending: list[conversation_services.InboundMessage] = []
        self.stored: list[Message] = []

    def flush(self) -> None:
        saved = conversation_services.message_record_inbound_many(items=self.pending)
        self.known.update({m.wa_message_id: m for m in saved if m.wa_message_id})
        self.stored.extend(saved)
        self.pending.clear()

    def target(self, wa_message_id: Any) -> Message | None:
        if wa_message_id and any(p.wa_message_id == wa_message_id for p in self.pending):
            self.flush()
        return self.known.get(str(wa_message_id or ""))

    def add(self, item: _Item, conversation: Conversation) -> None:
        message = item.message
        kind = str(message.get("type") or "unknown")
        obj = message.get(kind)
        moment = wa_time(message.get("timestamp"))
        if kind == "reaction" and isinstance(obj, dict):
            reacted = self.target(obj.get("message_id"))
            if reacted is not None:
                conversation_services.message_react(
                    message=reacted,
                    sender=SenderKind.CUSTOMER,
                    emoji=str(obj.get("emoji") or ""),
                    wa_timestamp=moment,
                )
                return
            # The reacted-to message is unknown to us: keep the reaction as a message of its own.
            our_type: str = MessageType.REACTION
            body, media = str(obj.get("emoji") or ""), dict[str, Any]()
        else:
            our_type, body, media = _describe(kind, obj, message)
        context = message.get("context")
        quoted = self.target(context.get("id")) if isinstance(context, dict) else None
        self.pending.append(
            conversation_services.InboundMessage(
                conversation=conversation,
                type=our_type,
                body=body,
                wa_message_id=item.wa_message_id,
                wa_timestamp=moment,
                raw_payload=message,
                reply_to_id=quoted.pk if quoted is not None else None,
                fields={**media, **_message_error(message)},
            )
        )


def _ingest(items: Sequence[_Item]) -> list[Message]:
    """Store the customer messages of one or many deliveries; returns those new to us.

    Runs in the caller's transaction: the senders are locked first, then everything already stored
    is left out, customers and conversations are read in one query each, and the messages are
    written by one INSERT (split where a reaction or a reply quotes a message of the same batch).
    """
    customer_services.customers_lock(item.lock_key for item in items)
    fresh = _fresh(items)
    if not fresh:
        return []
    customers = _customers_for(fresh)
    conversation_of = _conversations_for(fresh, customers)
    writer = _Writer(_referenced(fresh))
    for item in fresh:
        writer.add(item, conversation_of(item))
    writer.flush()
    for saved in writer.stored:
        if saved.type == MessageType.SYSTEM:
            from .customers import customer_number_changed_from_system  # noqa: PLC0415 - cycle

            customer_number_changed_from_system(message=saved)
        if saved.type in MEDIA_TYPES and saved.media_id:
            transaction.on_commit(partial(_queue_media, saved.pk))
    return writer.stored


def _queue_media(message_id: int) -> None:
    from whatsapp.tasks import media_download  # noqa: PLC0415 - tasks import services

    try:
        media_download.delay(message_id)
    except Exception:
        logger.exception("could not queue the media download of message %s", message_id)


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


@dataclass
class _Outcome:
    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _payload(event: WebhookEvent) -> dict[str, Any]:
    if isinstance(event.payload, dict):
        return event.payload
    try:
        payload = json.loads(event.raw_body)
    except (ValueError, RecursionError):
        return {}
    if "\\u0000" in event.raw_body:  # PostgreSQL stores no NUL, in text nor in jsonb
        payload = _without_nul(payload)
    return payload if isinstance(payload, dict) else {}


def _without_nul(value: Any) -> Any:
    """``value`` with every U+0000 removed from its strings (keys included): a customer's
    message or profile name holding one is stored like any other, minus the NUL."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


class _Walk:
    """Walks Meta's nested shape, collecting customer messages and statuses of deliveries."""

    def __init__(self) -> None:
        self.accounts: dict[str, WhatsAppAccount | None] = {}
        self.items: list[_Item] = []
        self.statuses: list[tuple[WebhookEvent, dict[str, Any]]] = []

    def event(self, event: WebhookEvent, outcome: _Outcome) -> None:
        payload = _payload(event)
        if payload.get("object") != "whatsapp_business_account":
            outcome.unknown.append(f"object {payload.get('object')!r}")
        for entry in payload.get("entry") or []:
            for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
                value = change.get("value") if isinstance(change, dict) else None
                field_name = change.get("field") if isinstance(change, dict) else None
                if field_name != "messages" or not isinstance(value, dict):
                    outcome.unknown.append(f"field {field_name!r}")
                    continue
                self.change(event, outcome, value)

    def change(self, event: WebhookEvent, outcome: _Outcome, value: dict[str, Any]) -> None:
        phone_number_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
        if phone_number_id not in self.accounts:
            self.accounts[phone_number_id] = account_for_phone_number_id(phone_number_id)
        account = self.accounts[phone_number_id]
        if value.get("errors"):
            with transaction.atomic():
                _record_value_errors(value=value, account=account, event=event)
        if account is None:
            outcome.unknown.append(f"unknown phone_number_id {phone_number_id!r}")
            return
        for message in value.get("messages") or []:
            try:
                self.items.append(
                    _item(event_id=event.pk, account=account, value=value, message=message)
                )
            except UnidentifiedSenderError:
                message_id = message.get("id") if isinstance(message, dict) else None
                outcome.unknown.append(f"message {message_id} without a sender")
        self.statuses.extend((event, status) for status in value.get("statuses") or [])


def webhook_events_process(
    *, event_ids: Sequence[int], force: bool = False
) -> dict[int, WebhookEvent]:
    """Process every entry, change, message and status of stored deliveries (one or many).

    The customer messages of all the deliveries are stored together (:func:`_ingest`), in one
    transaction; should that fail, each message is tried again on its own, so one bad item never
    holds back the others. Statuses are applied one by one. An event with an item that failed is
    marked ``failed`` (the caller retries it); things we do not understand (other fields, unknown
    numbers) leave it ``unknown``. Returns the events as they are now, by id.
    """
    events = list(WebhookEvent.objects.filter(pk__in=event_ids).order_by("pk"))
    if not force:
        events = [e for e in events if e.status != WebhookStatus.PROCESSED]
    outcomes = {event.pk: _Outcome() for event in events}
    walk = _Walk()
    for event in events:
        walk.event(event, outcomes[event.pk])
    items, statuses = walk.items, walk.statuses
    _ingest_isolated(items, outcomes)
    for event, status in statuses:
        try:
            with transaction.atomic():
                status_apply(status=status, webhook_event=event)
        except Exception as exc:
            status_id = status.get("id") if isinstance(status, dict) else None
            logger.exception("webhook %s: status %s failed", event.pk, status_id)
            outcomes[event.pk].problems.append(f"status {status_id}: {exc!r}")
    _record_outcomes(events, outcomes)
    return WebhookEvent.objects.in_bulk([event.pk for event in events])


def _ingest_isolated(items: list[_Item], outcomes: dict[int, _Outcome]) -> None:
    if not items:
        return
    if len(items) > 1 and any(item.message.get("type") == "system" for item in items):
        # A system message may change who the customer is (a new number): what comes after it
        # must see that, so these items are stored one at a time, in order.
        for item in items:
            _ingest_isolated([item], outcomes)
        return
    try:
        with transaction.atomic():
            _ingest(items)
    except Exception as exc:
        if len(items) > 1:
            logger.warning("a batch of %s messages failed; storing them one by one", len(items))
            for item in items:
                _ingest_isolated([item], outcomes)
        else:
            logger.exception(
                "webhook %s: message %s failed", items[0].event_id, items[0].wa_message_id
            )
            outcomes[items[0].event_id].problems.append(
                f"message {items[0].wa_message_id}: {exc!r}"
            )


def _record_outcomes(events: list[WebhookEvent], outcomes: dict[int, _Outcome]) -> None:
    now = timezone.now()
    done: list[int] = []
    for event in events:
        outcome = outcomes[event.pk]
        if not outcome.problems and not outcome.unknown:
            done.append(event.pk)
            continue
        if outcome.problems:
            status, error = WebhookStatus.FAILED, "\n".join(outcome.problems)
        else:
            status, error = WebhookStatus.UNKNOWN, "Not understood: " + "; ".join(outcome.unknown)
        WEBHOOK_PROCESSED.labels(status).inc()
        WebhookEvent.objects.filter(pk=event.pk).update(
            status=status,
            error=error[:10000],
            processed_at=now,
            attempts=F("attempts") + 1,
        )
    if done:
        WebhookEvent.objects.filter(pk__in=done).update(
            status=WebhookStatus.PROCESSED, error="", processed_at=now, attempts=F("attempts") + 1
        )
        WEBHOOK_PROCESSED.labels(WebhookStatus.PROCESSED).inc(len(done))


def webhook_event_process(*, event_id: int, force: bool = False) -> WebhookEvent:
    """Process one stored delivery; raises :class:`ProcessingError` when some items failed."""
    event = webhook_events_process(event_ids=[event_id], force=force).get(event_id)
    if event is None:
        return WebhookEvent.objects.get(pk=event_id)  # processed already
    if event.status == WebhookStatus.FAILED:
        raise ProcessingError(event.error)
    return event


def _commit_without_waiting_for_disk() -> None:
    """What a drain writes is derived from deliveries stored durably by the request: should the
    database crash before this commit reaches the disk, they are simply ``received`` again and
    processed again (idempotently). So this transaction need not wait for the WAL flush, and does
    not slow down the webhook's own commits, which do."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def webhook_events_drain(
    *,
    batch_size: int,
    on_batch: Callable[[], None] | None = None,
    max_seconds: float | None = None,
) -> tuple[int, list[int]]:
    """Process the deliveries still ``received``, ``batch_size`` at a time, until none is left.

    Each batch is claimed with ``FOR UPDATE SKIP LOCKED`` for the length of its transaction, so
    several workers drain side by side without taking the same delivery. ``on_batch`` is called
    when a full batch was claimed (more may be waiting: the task wakes another worker). After
    ``max_seconds`` it stops between batches (the task re-queues itself, so that the bot's turns
    and the sends queued meanwhile get their turn under a sustained load). Returns how many
    deliveries were processed and the ids of those that failed (for the caller to retry).
    """
    total, failed = 0, list[int]()
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    while deadline is None or time.monotonic() < deadline:
        with transaction.atomic():
            _commit_without_waiting_for_disk()
            ids = list(
                WebhookEvent.objects.select_for_update(skip_locked=True)
                .filter(status=WebhookStatus.RECEIVED)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            if on_batch is not None and len(ids) == batch_size:
                on_batch()
            events = webhook_events_process(event_ids=ids)
        total += len(ids)
        failed += [pk for pk, e in events.items() if e.status == WebhookStatus.FAILED]
        if BUSY_BATCH <= len(ids) < batch_size:
            # Deliveries are streaming in: let the next batch fill up a little, so that its fixed
            # cost (locks, lookups, one commit, one trip to Redis) is shared by more of them.
            time.sleep(BUSY_PAUSE)
    return total, failed


# A batch this large (but not full) means a stream of deliveries: pause BUSY_PAUSE seconds before
# the next. A quiet desk (a delivery now and then) never waits.
BUSY_BATCH = 8
BUSY_PAUSE = 0.2


def webhook_events_waiting() -> bool:
    return WebhookEvent.objects.filter(status=WebhookStatus.RECEIVED).exists()
