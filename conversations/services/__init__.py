"""Every change to a conversation, its messages and its customer goes through here.

Each service is atomic, locks the conversation row it changes (``_lock``), checks the actor's
right to act, writes a :class:`ConversationEvent`, and emits its domain events (dispatched after
commit). Customers' identities: :mod:`.customers`; messages' delivery by a channel:
:mod:`.delivery`.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Value, When, prefetch_related_objects
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import AuditAction, User
from accounts.services import audit_log_record
from common.bulk import rows_update
from common.events import emit, emit_many
from common.exceptions import NotPermitted, ServiceError
from departments.models import Department

from .. import events, selectors
from ..channels import conversation_channel
from ..models import (
    Conversation,
    ConversationEvent,
    ConversationNote,
    ConversationStatus,
    ConversationTransfer,
    Customer,
    Direction,
    EventKind,
    Message,
    MessageReaction,
    MessageStatus,
    MessageType,
    SenderKind,
)
from ..serializers import conversation_payload, message_payload
from ._base import _assign, _event, _lock, _record, _state
from .capacity import capacity_check, capacity_lock
from .organise import priority_rules_for_messages


def _updated(conversation: Conversation, *, changes: list[str]) -> events.ConversationUpdated:
    return events.ConversationUpdated(
        conversation=conversation_payload(conversation), changes=changes
    )


def conversations_changed(*, conversations: Iterable[Conversation], changes: list[str]) -> None:
    """Tell everyone who sees them that these conversations changed (``conversation.updated``,
    one event each, dispatched together after commit)."""
    emit_many(_updated(c, changes=changes) for c in conversations)


def _with_bot(*, customer: Customer, whatsapp_account_id: int) -> Conversation:
    """A new (unsaved) conversation of the customer on that number, with the bot."""
    return Conversation(
        customer=customer,
        whatsapp_account_id=whatsapp_account_id,
        status=ConversationStatus.BOT,
        last_message_at=timezone.now(),
    )


def _require(allowed: bool, message: str) -> None:
    if not allowed:
        raise NotPermitted(message)


def _over(went_over: bool) -> dict[str, Any]:
    """What the event row adds when a supervisor gave an agent more than their capacity."""
    return {"over_capacity": True} if went_over else {}


@transaction.atomic
def conversation_take_over(*, conversation: Conversation, actor: User) -> Conversation:
    """The actor claims the conversation: assigned to them, status ``open``. An agent at their
    capacity is refused (``at_capacity``, :mod:`.capacity`)."""
    capacity_lock(user=actor)
    conversation = _lock(conversation)
    _require(
        selectors.user_can_take_over(user=actor, conversation=conversation),
        _("You cannot take over this conversation."),
    )
    capacity_check(conversation=conversation, actor=actor, to_user=actor)
    department = (
        actor.departments.order_by("name").first() if conversation.department_id is None else None
    )
    return _assign(
        conversation=conversation,
        actor=actor,
        to_user=actor,
        kind=EventKind.TAKEN_OVER,
        department=department,
    )


@transaction.atomic
def conversation_assign(
    *, conversation: Conversation, actor: User, to_user: User, over_capacity: bool = False
) -> Conversation:
    """A supervisor or admin gives the conversation to an agent (past the agent's capacity only
    with ``over_capacity``)."""
    if not to_user.is_active:
        raise ServiceError(_("That user is inactive."), code="inactive_user")
    capacity_lock(user=to_user)
    conversation = _lock(conversation)
    _require(
        actor.sees_everything and not conversation.is_closed,
        _("Only supervisors and admins assign conversations."),
    )
    went_over = capacity_check(
        conversation=conversation, actor=actor, to_user=to_user, over_capacity=over_capacity
    )
    return _assign(
        conversation=conversation,
        actor=actor,
        to_user=to_user,
        kind=EventKind.ASSIGNED,
        note=_over(went_over),
    )


@transaction.atomic
def conversation_transfer(
    *,
    conversation: Conversation,
    actor: User,
    to_user: User | None = None,
    to_department: Department | None = None,
    note: str = "",
    over_capacity: bool = False,
) -> Conversation:
    """Hand the conversation to another agent and/or department, with an optional note.

    To a department only: it goes back to that department's queue (``pending``, unassigned).
    To an agent: it is assigned to them and ``open``, within their capacity (past it only by a
    supervisor or admin, with ``over_capacity``).
    """
    if to_user is None and to_department is None:
        raise ServiceError(_("Choose an agent or a department to transfer to."), code="no_target")
    if to_user is not None and not to_user.is_active:
        raise ServiceError(_("That user is inactive."), code="inactive_user")
    if to_department is not None and not to_department.is_active:
        raise ServiceError(_("That department is inactive."), code="inactive_department")
    if (
        to_user is not None
        and to_department is not None
        and to_user.is_agent
        and not to_user.departments.filter(pk=to_department.pk).exists()
    ):
        raise ServiceError(
            _("%(user)s does not work in %(department)s.")
            % {"user": to_user.name, "department": to_department.name},
            code="user_not_in_department",
        )
    capacity_lock(user=to_user)
    conversation = _lock(conversation)
    _require(
        selectors.user_can_transfer(user=actor, conversation=conversation),
        _("You cannot transfer this conversation."),
    )
    went_over = to_user is not None and capacity_check(
        conversation=conversation, actor=actor, to_user=to_user, over_capacity=over_capacity
    )
    before = _state(conversation)
    from_user_id, from_department_id = conversation.assigned_to_id, conversation.department_id
    if to_department is not None:
        conversation.department = to_department
    if to_user is not None:
        conversation.assigned_to = to_user
        conversation.status = ConversationStatus.OPEN
        if (
            to_department is None
            and to_user.is_agent
            and not (
                conversation.department_id
                and to_user.departments.filter(pk=conversation.department_id).exists()
            )
        ):
            conversation.department = (
                to_user.departments.order_by("name").first() or conversation.department
            )
    else:
        conversation.assigned_to = None
        conversation.status = ConversationStatus.PENDING
    conversation.save(update_fields=["department", "assigned_to", "status", "updated_at"])
    ConversationTransfer.objects.create(
        conversation=conversation,
        actor=actor,
        from_user_id=from_user_id,
        to_user=to_user,
        from_department_id=from_department_id,
        to_department=conversation.department,
        note=note,
    )
    _record(
        conversation=conversation,
        actor=actor,
        kind=EventKind.TRANSFERRED,
        before=before,
        after={**_state(conversation), "note": note, **_over(went_over)},
    )
    audit_log_record(
        actor=actor,
        action=AuditAction.TRANSFER,
        target=conversation,
        before=before,
        after={**_state(conversation), "note": note, **_over(went_over)},
    )
    emit(
        events.ConversationTransferred(
            conversation=conversation_payload(conversation),
            actor_id=actor.pk,
            from_user_id=from_user_id,
            from_department_id=from_department_id,
            to_user_id=conversation.assigned_to_id,
            to_department_id=conversation.department_id,
            note=note,
        )
    )
    return conversation


@transaction.atomic
def conversation_close(
    *, conversation: Conversation, actor: User | None, reason: str = ""
) -> Conversation:
    """Close the conversation (``actor`` None: the desk itself; ``reason`` is kept on the event
    row, e.g. ``auto_close``)."""
    conversation = _lock(conversation)
    if actor is not None:
        _require(
            selectors.user_can_close(user=actor, conversation=conversation),
            _("You cannot close this conversation."),
        )
    elif conversation.is_closed:
        return conversation
    before = _state(conversation)
    conversation.status = ConversationStatus.CLOSED
    conversation.closed_at = timezone.now()
    conversation.unread_count = 0
    conversation.save(update_fields=["status", "closed_at", "unread_count", "updated_at"])
    _record(
        conversation=conversation,
        actor=actor,
        kind=EventKind.CLOSED,
        before=before,
        after={**_state(conversation), "reason": reason} if reason else _state(conversation),
    )
    emit(
        events.ConversationClosed(
            conversation=conversation_payload(conversation),
            actor_id=actor.pk if actor is not None else None,
        )
    )
    return conversation


@transaction.atomic
def conversation_reopen(
    *, conversation: Conversation, actor: User, over_capacity: bool = False
) -> Conversation:
    """Reopen a closed conversation: back to its assignee, or to its department's queue.

    Refused when the customer already has another conversation in progress on that number, and
    when its agent has no room (``at_capacity``; a supervisor or admin may, ``over_capacity``).
    """
    # the agent it goes back to (as stored now: the caller's copy may be older), locked first
    assignee = selectors.conversation_get_assignee(conversation_id=conversation.pk)
    capacity_lock(user=assignee)
    conversation = _lock(conversation)
    _require(
        selectors.user_can_reopen(user=actor, conversation=conversation),
        _("You cannot reopen this conversation."),
    )
    went_over = False
    if conversation.assigned_to is not None:
        if conversation.assigned_to_id != getattr(assignee, "pk", None):
            capacity_lock(user=conversation.assigned_to)  # reassigned in between (rare)
        went_over = capacity_check(
            conversation=conversation,
            actor=actor,
            to_user=conversation.assigned_to,
            over_capacity=over_capacity,
        )
    before = _state(conversation)
    conversation.status = (
        ConversationStatus.OPEN if conversation.assigned_to_id else ConversationStatus.PENDING
    )
    conversation.closed_at = None
    try:
        with transaction.atomic():
            conversation.save(update_fields=["status", "closed_at", "updated_at"])
    except IntegrityError as exc:
        raise ServiceError(
            _("This customer already has a conversation in progress on this number."),
            code="conversation_in_progress",
        ) from exc
    _record(
        conversation=conversation,
        actor=actor,
        kind=EventKind.REOPENED,
        before=before,
        after={**_state(conversation), **_over(went_over)},
    )
    emit(
        events.ConversationReopened(
            conversation=conversation_payload(conversation), actor_id=actor.pk
        )
    )
    return conversation


@transaction.atomic
def conversation_note_create(
    *, conversation: Conversation, actor: User, body: str
) -> ConversationNote:
    """An internal note by someone who may see the conversation; never sent to the customer."""
    conversation = _lock(conversation)
    _require(
        selectors.conversation_is_visible_to(user=actor, conversation=conversation),
        _("You cannot add notes to this conversation."),
    )
    body = body.strip()
    if not body:
        raise ServiceError(_("A note needs some text."), code="empty_note")
    return ConversationNote.objects.create(conversation=conversation, author=actor, body=body)


@transaction.atomic
def conversation_mark_read(*, conversation: Conversation, actor: User) -> Conversation:
    """The actor has read the conversation: unread count back to zero, inbound messages read."""
    conversation = _lock(conversation)
    _require(
        selectors.conversation_is_visible_to(user=actor, conversation=conversation),
        _("You cannot read this conversation."),
    )
    now = timezone.now()
    marked = conversation.messages.filter(direction=Direction.IN, read_at__isnull=True).update(
        read_at=now
    )
    if not marked and not conversation.unread_count:
        return conversation
    before = {"unread_count": conversation.unread_count}
    conversation.unread_count = 0
    conversation.save(update_fields=["unread_count", "updated_at"])
    _record(
        conversation=conversation,
        actor=actor,
        kind=EventKind.READ,
        before=before,
        after={"unread_count": 0, "messages": marked},
    )
    # ``messages``: the channel shows the customer their messages were read (the blue ticks).
    emit(
        events.ConversationRead(
            conversation=conversation_payload(conversation), actor_id=actor.pk, messages=marked
        )
    )
    return conversation


@transaction.atomic
def conversation_route_to_department(
    *,
    conversation: Conversation,
    department: Department | None,
    actor: User | None = None,
    reason: str = "",
) -> Conversation:
    """Put the conversation in a queue (``pending``, unassigned); ``department`` None: the general
    queue that supervisors see. Used by the bot (``actor`` None) when it hands over."""
    conversation = _lock(conversation)
    if conversation.is_closed:
        raise ServiceError(_("This conversation is closed."), code="conversation_closed")
    before = _state(conversation)
    from_user_id, from_department_id = conversation.assigned_to_id, conversation.department_id
    conversation.department = department
    conversation.assigned_to = None
    conversation.status = ConversationStatus.PENDING
    conversation.save(update_fields=["department", "assigned_to", "status", "updated_at"])
    _record(
        conversation=conversation,
        actor=actor,
        kind=EventKind.QUEUED,
        before=before,
        after={**_state(conversation), "reason": reason},
    )
    emit(
        events.ConversationTransferred(
            conversation=conversation_payload(conversation),
            actor_id=actor.pk if actor is not None else None,
            from_user_id=from_user_id,
            from_department_id=from_department_id,
            to_department_id=conversation.department_id,
            note=reason,
        )
    )
    return conversation


@transaction.atomic
def conversations_route_to_department_many(
    *, items: Sequence[tuple[Conversation, Department | None, str]]
) -> list[Conversation]:
    """:func:`conversation_route_to_department` by the bot (``actor`` None) for many
    conversations at once — (conversation, department, reason) — whose row locks the caller's
    transaction holds (read with what their payloads show): one UPDATE, one INSERT of their
    event rows, their tags read once and their events in one batch. Returns them, in order."""
    now = timezone.now()
    conversations, rows, moved = [], [], []
    for conversation, department, reason in items:
        if conversation.is_closed:
            raise ServiceError(_("This conversation is closed."), code="conversation_closed")
        before = _state(conversation)
        moved.append((conversation.assigned_to_id, conversation.department_id, reason))
        conversation.department = department
        conversation.assigned_to = None
        conversation.status = ConversationStatus.PENDING
        conversation.updated_at = now
        conversations.append(conversation)
        rows.append(
            _event(
                conversation=conversation,
                actor=None,
                kind=EventKind.QUEUED,
                before=before,
                after={**_state(conversation), "reason": reason},
            )
        )
    if not conversations:
        return []
    _conversations_queue(conversations, now=now)
    ConversationEvent.objects.bulk_create(rows)
    prefetch_related_objects(conversations, *selectors.CONVERSATION_PREFETCH)
    emit_many(
        events.ConversationTransferred(
            conversation=conversation_payload(conversation),
            actor_id=None,
            from_user_id=from_user_id,
            from_department_id=from_department_id,
            to_department_id=conversation.department_id,
            note=reason,
        )
        for conversation, (from_user_id, from_department_id, reason) in zip(
            conversations, moved, strict=True
        )
    )
    return conversations


def _conversations_queue(conversations: Sequence[Conversation], *, now: datetime) -> None:
    """Write the (locked) conversations' move to a queue: one statement."""
    if connection.vendor != "postgresql":
        Conversation.objects.bulk_update(
            conversations, ["department", "assigned_to", "status", "updated_at"]
        )
        return
    # bulk_update's CASE per field and row cost more to compile than the hand-overs themselves.
    rows_update(
        Conversation,
        ids=[c.pk for c in conversations],
        columns={"department_id": ("bigint", [c.department_id for c in conversations])},
        assignments="department_id = v.department_id, assigned_to_id = NULL, status = %s, "
        "updated_at = %s",
        params=[ConversationStatus.PENDING, now],
    )


# --- Messages --------------------------------------------------------------------------------


@transaction.atomic
def conversation_open_for_customer(
    *, customer: Customer, whatsapp_account_id: int, actor: User | None = None
) -> tuple[Conversation, bool]:
    """The customer's conversation in progress on that number, or a new one with the bot.

    Safe under concurrency: the partial unique index decides, the loser reads the winner's row.
    """
    existing = selectors.conversation_get_active_for_customer(
        customer_id=customer.pk, whatsapp_account_id=whatsapp_account_id
    )
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            conversation = _with_bot(customer=customer, whatsapp_account_id=whatsapp_account_id)
            conversation.save(force_insert=True)
    except IntegrityError:
        existing = selectors.conversation_get_active_for_customer(
            customer_id=customer.pk, whatsapp_account_id=whatsapp_account_id
        )
        if existing is None:
            raise
        return existing, False
    _record(
        conversation=conversation, actor=actor, kind=EventKind.CREATED, after=_state(conversation)
    )
    emit(_created(conversation, actor=actor))
    return conversation, True


def _created(conversation: Conversation, *, actor: User | None) -> events.ConversationCreated:
    return events.ConversationCreated(
        conversation=conversation_payload(conversation),
        actor_id=actor.pk if actor is not None else None,
    )


@transaction.atomic
def conversations_open_for_customers(
    *, pairs: Sequence[tuple[Customer, int]]
) -> dict[tuple[int, int], Conversation]:
    """New conversations with the bot for (customer, number) pairs that have none in progress.

    What :func:`conversation_open_for_customer` does one by one, in five queries for them all
    (conversations, their ``created`` events, their tags and their contacts', the live
    updates). Should one appear meanwhile (the partial unique index refuses the batch), every
    pair goes through the one-by-one function.
    Returns {(customer id, number id): conversation}.
    """
    if not pairs:
        return {}
    if len(pairs) > 1:
        try:
            with transaction.atomic():
                created = Conversation.objects.bulk_create(
                    _with_bot(customer=customer, whatsapp_account_id=account_id)
                    for customer, account_id in pairs
                )
        except IntegrityError:
            pass
        else:
            ConversationEvent.objects.bulk_create(
                _event(conversation=c, actor=None, kind=EventKind.CREATED, after=_state(c))
                for c in created
            )
            # their payloads carry tags (the contacts' may have some) and name the number
            prefetch_related_objects(created, "whatsapp_account", *selectors.CONVERSATION_PREFETCH)
            emit_many(_created(c, actor=None) for c in created)
            return {(c.customer_id, c.whatsapp_account_id): c for c in created}
    return {
        (customer.pk, account_id): conversation_open_for_customer(
            customer=customer, whatsapp_account_id=account_id
        )[0]
        for customer, account_id in pairs
    }


@dataclass(frozen=True)
class InboundMessage:
    """One customer message to store (see :func:`message_record_inbound_many`)."""

    conversation: Conversation
    type: str = MessageType.TEXT
    body: str = ""
    wa_message_id: str | None = None
    wa_timestamp: datetime | None = None
    raw_payload: dict[str, Any] | None = None
    reply_to_id: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # media and Meta's error fields


@transaction.atomic
def message_record_inbound(
    *,
    conversation: Conversation,
    type: str = MessageType.TEXT,
    body: str = "",
    wa_message_id: str | None = None,
    wa_timestamp: datetime | None = None,
    raw_payload: dict[str, Any] | None = None,
    reply_to: Message | None = None,
    **media: Any,
) -> tuple[Message, bool]:
    """Store a customer's message once (``wa_message_id`` is unique) and bump the conversation."""
    if wa_message_id:
        existing = Message.objects.filter(wa_message_id=wa_message_id).first()
        if existing is not None:
            return existing, False
    item = InboundMessage(
        conversation=conversation,
        type=type,
        body=body,
        wa_message_id=wa_message_id,
        wa_timestamp=wa_timestamp,
        raw_payload=raw_payload,
        reply_to_id=reply_to.pk if reply_to is not None else None,
        fields=media,
    )
    try:
        with transaction.atomic():
            (message,) = message_record_inbound_many(items=[item])
    except IntegrityError:
        if wa_message_id:
            return Message.objects.get(wa_message_id=wa_message_id), False
        raise
    return message, True


@transaction.atomic
def message_record_inbound_many(*, items: Sequence[InboundMessage]) -> list[Message]:
    """Store customer messages in one INSERT, bump each conversation once, broadcast them.

    The caller has left out WhatsApp ids stored already; a duplicate raises ``IntegrityError``
    (nothing is kept). Order follows WhatsApp's timestamps, also for a delivery Meta retried hours
    later. The conversations' unread counts and last-message times move in the database itself
    (:func:`_conversations_bump`), so concurrent changes by agents are never overwritten.
    """
    if not items:
        return []
    rows = [
        Message(
            conversation=item.conversation,
            direction=Direction.IN,
            sender=SenderKind.CUSTOMER,
            type=item.type,
            body=item.body,
            status=MessageStatus.RECEIVED,
            wa_message_id=item.wa_message_id,
            wa_timestamp=item.wa_timestamp,
            raw_payload=item.raw_payload,
            reply_to_id=item.reply_to_id,
            **item.fields,
        )
        for item in items
    ]
    Message.objects.bulk_create(rows)
    earlier = [m for m in rows if m.wa_timestamp is not None and m.wa_timestamp < m.created_at]
    if earlier:
        Message.objects.filter(pk__in=[m.pk for m in earlier]).update(created_at=F("wa_timestamp"))
        for message in earlier:
            message.created_at = message.wa_timestamp  # type: ignore[assignment]
    by_conversation: dict[int, list[Message]] = {}
    for message in rows:
        by_conversation.setdefault(message.conversation_id, []).append(message)
    _conversations_bump(
        {
            conversation_id: (len(messages), max(m.wa_timestamp or m.created_at for m in messages))
            for conversation_id, messages in by_conversation.items()
        }
    )
    raised = priority_rules_for_messages(messages=rows)  # the admins' automatic priorities
    conversations = (
        Conversation.objects.select_related(
            "customer", "department", "assigned_to", "whatsapp_account"
        )
        .prefetch_related(*selectors.CONVERSATION_PREFETCH)
        .in_bulk(list(by_conversation))
    )
    emit_many(
        _updated(conversations[pk], changes=["priority"]) for pk in raised if pk in conversations
    )
    payloads = {pk: conversation_payload(c) for pk, c in conversations.items()}
    for message in rows:
        message.conversation = conversations[message.conversation_id]
    emit_many(
        events.MessageCreated(conversation=payloads[m.conversation_id], message=message_payload(m))
        for m in rows
    )
    return rows


def _conversations_bump(bumps: dict[int, tuple[int, datetime]]) -> None:
    """Add unread messages and move the last-message times forward, atomically in the database
    (never backwards, never overwriting an agent's concurrent change): {id: (count, latest)}."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One statement for the whole batch (an UPDATE per conversation was most of its queries).
        rows_update(
            Conversation,
            ids=list(bumps),
            columns={
                "n": ("integer", [n for n, _ in bumps.values()]),
                "latest": ("timestamptz", [t for _, t in bumps.values()]),
            },
            # A closed conversation (a survey's answer) waits for nobody: no unread badge.
            assignments="unread_count = CASE WHEN t.status = 'closed' THEN t.unread_count "
            "ELSE t.unread_count + v.n END, "
            "last_inbound_at = GREATEST(t.last_inbound_at, v.latest), "
            "last_message_at = GREATEST(t.last_message_at, v.latest), "
            "updated_at = %s",
            params=[now],
        )
        return
    for conversation_id, (count, moment) in bumps.items():
        latest = Value(moment)
        Conversation.objects.filter(pk=conversation_id).update(
            unread_count=Case(
                When(status=ConversationStatus.CLOSED, then=F("unread_count")),
                default=F("unread_count") + count,
            ),
            last_inbound_at=Greatest(Coalesce("last_inbound_at", latest), latest),
            last_message_at=Greatest(Coalesce("last_message_at", latest), latest),
            updated_at=now,
        )


def signature_line(*, user: User) -> str:
    """The first line of an agent's signed message: their name in WhatsApp's bold."""
    return f"*{user.name or user.get_short_name()}:*\n"


def message_sign(*, body: str, user: User) -> str:
    """``body`` with ``user``'s signature first when they sign their messages (once: a text sent
    again, e.g. a retried one, is not signed twice). Free-form text only: the caller leaves
    templates, media captions and the bot's messages alone."""
    if not user.signature_enabled or not body.strip():
        return body
    line = signature_line(user=user)
    return body if body.startswith(line) else line + body


@transaction.atomic
def message_create_outbound(
    *,
    conversation: Conversation,
    actor: User | None,
    body: str = "",
    type: str = MessageType.TEXT,
    sender: str | None = None,
    reply_to: Message | None = None,
    **media: Any,
) -> Message:
    """Record a message to the customer as ``queued``; the WhatsApp sender delivers it.

    ``actor`` None means the bot or the system is writing.
    """
    conversation = _lock(conversation)
    if actor is not None:
        _require(
            selectors.user_can_reply(user=actor, conversation=conversation),
            _("Only the agent assigned to this conversation can reply."),
        )
    elif conversation.is_closed:
        raise ServiceError(_("This conversation is closed."), code="conversation_closed")
    if reply_to is not None and reply_to.conversation_id != conversation.pk:
        raise ServiceError(
            _("The quoted message is not part of this conversation."), code="invalid_reply_to"
        )
    if actor is not None and type == MessageType.TEXT and sender in (None, SenderKind.AGENT):
        body = message_sign(body=body, user=actor)
    return _outbound(
        conversation=conversation,
        actor=actor,
        body=body,
        type=type,
        sender=sender,
        reply_to=reply_to,
        media=media,
    )


def _outbound(
    *,
    conversation: Conversation,
    actor: User | None,
    body: str,
    type: str,
    sender: str | None,
    reply_to: Message | None,
    media: dict[str, Any],
) -> Message:
    """Validate through the channel, write the ``queued`` row, emit ``message.created`` (the
    caller holds the conversation's lock and has checked the right to write)."""
    message_outbound_check(
        conversation=conversation, draft=OutboundDraft(body=body, type=type, media=media)
    )
    message = Message.objects.create(
        conversation=conversation,
        direction=Direction.OUT,
        sender=sender or (SenderKind.AGENT if actor else SenderKind.BOT),
        sender_user=actor,
        type=type,
        body=body,
        status=MessageStatus.QUEUED,
        reply_to=reply_to,
        **media,
    )
    conversation.last_message_at = message.created_at
    fields = ["last_message_at", "updated_at"]
    if actor is not None and conversation.first_response_at is None:
        conversation.first_response_at = message.created_at
        fields.append("first_response_at")
        _record(
            conversation=conversation,
            actor=actor,
            kind=EventKind.FIRST_RESPONSE,
            after={"message": message.pk},
        )
    conversation.save(update_fields=fields)
    # Once committed, the channel's handler sends the ``queued`` row (exactly once).
    emit(
        events.MessageCreated(
            conversation=conversation_payload(conversation),
            message=message_payload(message),
            actor_id=actor.pk if actor is not None else None,
        )
    )
    return message


def message_create_automated(
    *, conversation: Conversation, body: str, type: str = MessageType.TEXT, **media: Any
) -> Message:
    """A message the desk sends by itself (``sender`` bot), also on a closed conversation: the
    satisfaction survey after closing. The caller holds the conversation's lock."""
    return _outbound(
        conversation=conversation,
        actor=None,
        body=body,
        type=type,
        sender=SenderKind.BOT,
        reply_to=None,
        media=media,
    )


@dataclass(frozen=True)
class OutboundDraft:
    """A message the bot means to send, checked by :func:`message_outbound_check` and written
    with the turn's others by :func:`messages_create_bot`."""

    body: str
    type: str = MessageType.TEXT
    media: dict[str, Any] = field(default_factory=dict)


def message_outbound_check(*, conversation: Conversation, draft: OutboundDraft) -> None:
    """Raise the :class:`ServiceError` the channel would refuse ``draft`` with (the 24-hour
    window, an interactive message's limits…); nothing is written."""
    if not draft.body.strip() and not draft.media:
        raise ServiceError(_("A message needs text or an attachment."), code="empty_message")
    conversation_channel(conversation).outbound_validate(
        conversation=conversation, type=draft.type, body=draft.body, media=draft.media
    )


def messages_create_bot(
    *, conversation: Conversation, drafts: Sequence[OutboundDraft], locked: bool = False
) -> list[Message]:
    """The bot's replies of one turn, ``queued`` in order: one INSERT, one UPDATE of the
    conversation and their ``message.created`` events together (a turn sends two or three: the
    greeting and the menu, the hand-over and the place in line). ``locked``: the caller's
    transaction already holds the conversation's row lock, read with what its payload shows
    (customer, department, agent, number); else it is taken here."""
    if not drafts:
        return []
    if locked:
        return _bot_messages_write(conversation, drafts)
    with transaction.atomic():
        return _bot_messages_write(_lock(conversation), drafts)


def _bot_rows(conversation: Conversation, drafts: Sequence[OutboundDraft]) -> list[Message]:
    """The bot's ``queued`` rows for ``drafts``, unsaved, once the channel would take them."""
    if conversation.is_closed:
        raise ServiceError(_("This conversation is closed."), code="conversation_closed")
    for draft in drafts:
        message_outbound_check(conversation=conversation, draft=draft)
    return [
        Message(
            conversation=conversation,
            direction=Direction.OUT,
            sender=SenderKind.BOT,
            type=draft.type,
            body=draft.body,
            status=MessageStatus.QUEUED,
            **draft.media,
        )
        for draft in drafts
    ]


def _bot_messages_write(
    conversation: Conversation, drafts: Sequence[OutboundDraft]
) -> list[Message]:
    messages = Message.objects.bulk_create(_bot_rows(conversation, drafts))
    conversation.last_message_at = max(m.created_at for m in messages)
    conversation.save(update_fields=["last_message_at", "updated_at"])
    prefetch_related_objects([conversation], *selectors.CONVERSATION_PREFETCH)
    payload = conversation_payload(conversation)
    # Once committed, the channel's handler sends the ``queued`` rows (exactly once each).
    emit_many(
        events.MessageCreated(conversation=payload, message=message_payload(m)) for m in messages
    )
    return messages


def messages_create_bot_many(
    *, items: Sequence[tuple[Conversation, Sequence[OutboundDraft]]]
) -> list[Message]:
    """The bot's replies to many conversations at once (a batch of turns), ``queued`` in order
    within each conversation: one INSERT for them all, one UPDATE of the conversations, their
    payloads' tags read once and every ``message.created`` event in one batch. The caller's
    transaction holds each conversation's row lock (read with what its payload shows)."""
    items = [(conversation, drafts) for conversation, drafts in items if drafts]
    if not items:
        return []
    rows = [row for conversation, drafts in items for row in _bot_rows(conversation, drafts)]
    messages = Message.objects.bulk_create(rows)
    latest: dict[int, datetime] = {}
    for message in messages:
        moment = latest.get(message.conversation_id)
        latest[message.conversation_id] = (
            message.created_at if moment is None else max(moment, message.created_at)
        )
    conversations = {conversation.pk: conversation for conversation, _drafts in items}
    _conversations_last_message(latest)
    for pk, moment in latest.items():
        conversations[pk].last_message_at = moment
    prefetch_related_objects(list(conversations.values()), *selectors.CONVERSATION_PREFETCH)
    payloads = {pk: conversation_payload(c) for pk, c in conversations.items()}
    # Once committed, the channel's handler sends the ``queued`` rows (exactly once each).
    emit_many(
        events.MessageCreated(conversation=payloads[m.conversation_id], message=message_payload(m))
        for m in messages
    )
    return messages


def _conversations_last_message(latest: dict[int, datetime]) -> None:
    """Set the (locked) conversations' last-message times: {id: moment}, one statement."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        rows_update(
            Conversation,
            ids=list(latest),
            columns={"latest": ("timestamptz", list(latest.values()))},
            assignments="last_message_at = v.latest, updated_at = %s",
            params=[now],
        )
        return
    for conversation_id, moment in latest.items():
        Conversation.objects.filter(pk=conversation_id).update(
            last_message_at=moment, updated_at=now
        )


# Meta's statuses in the order they happen; ``failed`` is handled apart.
_STATUS_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
    MessageStatus.PLAYED: 4,
}


@transaction.atomic
def message_update_status(
    *,
    message: Message,
    status: str,
    timestamp: datetime | None = None,
    error: dict[str, Any] | None = None,
    note: str = "",
) -> Message:
    """Apply a delivery status reported by WhatsApp; statuses never go backwards.

    ``sent < delivered < read < played``; a late ``delivered`` after ``read`` is recorded in the
    history only. ``failed`` keeps Meta's code, title and details; a ``delivered`` arriving after
    it (another device) is kept as a note, not a regression. Redeliveries change nothing.
    """
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation__customer", "conversation__department")
        .select_related("conversation__assigned_to")
        .get(pk=message.pk)
    )
    when = timestamp.isoformat() if timestamp else None
    if any(h.get("status") == status and h.get("at") == when for h in message.status_history):
        return message  # the same status delivered again
    current = message.status
    applied = False
    if status == MessageStatus.FAILED:
        if current not in (MessageStatus.READ, MessageStatus.PLAYED):
            applied = True
            error = error or {}
            details = (error.get("error_data") or {}).get("details", "")
            code = error.get("code")
            message.error_code = code if isinstance(code, int) else None
            message.error = " — ".join(
                str(p) for p in (error.get("title") or error.get("message"), details) if p
            ) or str(_("Meta reported a failure."))
            message.error_data = error or None
        else:
            note = note or "failed reported after the message was read"
    elif status in _STATUS_RANK:
        if current == MessageStatus.FAILED:
            note = note or f"{status} reported after the failure (another device)"
        elif _STATUS_RANK[MessageStatus(status)] > _STATUS_RANK.get(MessageStatus(current), -1):
            applied = True
        else:
            note = note or f"late {status} after {current}"
    else:
        note = note or f"unknown status {status!r}"
    entry: dict[str, Any] = {"status": status, "at": when, "applied": applied}
    if note:
        entry["note"] = note
    message.status_history = [*message.status_history, entry]
    fields = ["status_history", "updated_at"]
    if applied:
        message.status = status
        fields += ["status", "error", "error_code", "error_data"]
    message.save(update_fields=fields)
    if applied:
        emit(
            events.MessageStatusChanged(
                conversation=conversation_payload(message.conversation),
                message=message_payload(message),
            )
        )
    return message


MAX_EMOJI_LENGTH = 16  # one emoji, modifiers and joiners included


@transaction.atomic
def message_react(
    *,
    message: Message,
    sender: str,
    emoji: str,
    wa_timestamp: datetime | None = None,
    actor: User | None = None,
) -> MessageReaction | None:
    """Put (or, with an empty ``emoji``, remove) the ``sender`` side's reaction on ``message``.

    A reaction row with an empty ``emoji`` is a removal (kept to order late deliveries).

    Customer reactions come from WhatsApp (``wa_timestamp`` keeps the newest when Meta delivers
    out of order). A desk reaction (``actor``) is also sent to the customer.
    """
    if actor is not None:
        conversation = _lock(message.conversation)
        _require(
            selectors.user_can_reply(user=actor, conversation=conversation),
            _("Only the agent assigned to this conversation can reply."),
        )
        if not message.wa_message_id:
            raise ServiceError(
                _("This message has not reached WhatsApp yet."), code="not_on_whatsapp"
            )
        if len(emoji) > MAX_EMOJI_LENGTH or any(ch.isascii() and ch.isalnum() for ch in emoji):
            raise ServiceError(_("A reaction is one emoji."), code="invalid_emoji")
    existing = (
        MessageReaction.objects.select_for_update().filter(message=message, sender=sender).first()
    )
    if (
        existing is not None
        and wa_timestamp is not None
        and existing.wa_timestamp is not None
        and existing.wa_timestamp > wa_timestamp
    ):
        return existing  # an older reaction delivered late
    reaction: MessageReaction | None
    if not emoji and wa_timestamp is not None:
        # Removed on WhatsApp: keep an empty tombstone with the time, so that the older reaction
        # delivered late does not come back.
        reaction, _created = MessageReaction.objects.update_or_create(
            message=message,
            sender=sender,
            defaults={"emoji": "", "wa_timestamp": wa_timestamp},
        )
    elif not emoji:
        if existing is not None:
            existing.delete()
        reaction = None
    elif existing is None:
        reaction = MessageReaction.objects.create(
            message=message, sender=sender, emoji=emoji, wa_timestamp=wa_timestamp
        )
    else:
        existing.emoji, existing.wa_timestamp = emoji, wa_timestamp
        existing.save(update_fields=["emoji", "wa_timestamp", "updated_at"])
        reaction = existing
    if actor is not None:
        message_create_outbound(
            conversation=message.conversation,
            actor=actor,
            body=emoji,
            type=MessageType.REACTION,
            raw_payload={"reaction": {"message_id": message.wa_message_id, "emoji": emoji}},
        )
    emit(
        events.MessageReacted(
            conversation=conversation_payload(message.conversation),
            message=message_payload(message),
            actor_id=actor.pk if actor is not None else None,
            sender=sender,
            emoji=emoji,
        )
    )
    return reaction
