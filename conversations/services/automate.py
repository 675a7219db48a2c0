"""The desk's timers (contract §10): scheduled messages and auto-close.

- A **scheduled message** is written at once as ``scheduled`` with its ``send_at``, checked by
  the channel for everything but the time (WhatsApp's 24-hour window is checked when it goes).
  Only the desk sees it until then (internal ``message.scheduled`` event). When ``send_at`` comes,
  :func:`messages_send_due` (Celery beat, or the in-process beat of the embedded default) turns it
  into an ordinary ``queued`` message — ``message.created``, and the channel sends it — or, when
  the channel refuses it by then (the window closed), ``failed`` with the reason.
- **Auto-close**: a conversation of a department with ``auto_close_minutes`` whose last message
  was ours (agent or bot) and that has been idle that long is closed through
  :func:`conversation_close` (event row, ``conversation.closed``, CSAT), after the department's
  closing message. One whose customer wrote last is never closed, nor one with a message still
  scheduled.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from common.events import emit
from common.exceptions import NotPermitted, ServiceError
from departments.models import Department

from .. import events, selectors
from ..channels import conversation_channel
from ..models import (
    Conversation,
    ConversationStatus,
    Direction,
    EventKind,
    Message,
    MessageStatus,
    MessageType,
    SenderKind,
)
from ..serializers import conversation_payload, message_payload
from . import conversation_close, message_create_automated
from ._base import _lock, _record
from .delivery import message_send_failed

logger = logging.getLogger(__name__)

# How far ahead a message may be scheduled.
SCHEDULE_MAX_AHEAD = timedelta(days=60)
# At most this many due messages per run of the sender (the next run takes the rest).
SEND_DUE_BATCH = 200
AUTO_CLOSE_BATCH = 200
AUTO_CLOSE_REASON = "auto_close"


# --- Scheduled messages -------------------------------------------------------------------------


def send_at_check(send_at: datetime) -> datetime:
    """``send_at`` if it is a moment to schedule for: in the future, at most 60 days away."""
    if timezone.is_naive(send_at):
        send_at = timezone.make_aware(send_at)
    now = timezone.now()
    if send_at <= now:
        raise ServiceError(_("Choose a moment in the future."), code="send_at_past")
    if send_at > now + SCHEDULE_MAX_AHEAD:
        raise ServiceError(
            _("A message can be scheduled at most %(days)s days ahead.")
            % {"days": SCHEDULE_MAX_AHEAD.days},
            code="send_at_too_far",
        )
    return send_at


@transaction.atomic
def message_schedule(
    *,
    conversation: Conversation,
    actor: User,
    send_at: datetime,
    body: str = "",
    type: str = MessageType.TEXT,
    reply_to: Message | None = None,
    **media: Any,
) -> Message:
    """Record a message to be sent at ``send_at`` (status ``scheduled``); only whoever may reply
    schedules, and the channel checks it now for all but the 24-hour window."""
    send_at = send_at_check(send_at)
    conversation = _lock(conversation)
    if not selectors.user_can_reply(user=actor, conversation=conversation):
        raise NotPermitted(_("Only the agent assigned to this conversation can reply."))
    if reply_to is not None and reply_to.conversation_id != conversation.pk:
        raise ServiceError(
            _("The quoted message is not part of this conversation."), code="invalid_reply_to"
        )
    if type == MessageType.REACTION:
        raise ServiceError(_("Reactions cannot be scheduled."), code="invalid")
    if not body.strip() and not media:
        raise ServiceError(_("A message needs text or an attachment."), code="empty_message")
    conversation_channel(conversation).outbound_validate(
        conversation=conversation, type=type, body=body, media=media, window=False
    )
    message = Message.objects.create(
        conversation=conversation,
        direction=Direction.OUT,
        sender=SenderKind.AGENT,
        sender_user=actor,
        type=type,
        body=body,
        status=MessageStatus.SCHEDULED,
        send_at=send_at,
        reply_to=reply_to,
        **media,
    )
    emit(
        events.MessageScheduled(
            conversation=conversation_payload(conversation),
            message=message_payload(message),
            actor_id=actor.pk,
        )
    )
    return message


def _lock_scheduled(message_id: int, *, skip_locked: bool) -> Message | None:
    return (
        Message.objects.select_for_update(of=("self",), skip_locked=skip_locked)
        .filter(pk=message_id)
        .first()
    )


@transaction.atomic
def message_schedule_cancel(*, message: Message, actor: User) -> Message:
    """Cancel a message still ``scheduled`` (its author, the assignee or an admin): the row is
    removed. One that went already (or is going right now) is refused (``not_scheduled``)."""
    locked = _lock_scheduled(message.pk, skip_locked=False)
    gone = ServiceError(
        _("This message is no longer scheduled: it was sent or cancelled already."),
        code="not_scheduled",
    )
    if locked is None:
        raise gone
    conversation = _lock(locked.conversation)
    if not (
        actor.is_admin
        or locked.sender_user_id == actor.pk
        or selectors.user_can_reply(user=actor, conversation=conversation)
    ):
        raise NotPermitted(_("You cannot cancel this scheduled message."))
    if locked.status != MessageStatus.SCHEDULED:
        raise gone
    payload = message_payload(locked)
    locked.delete()
    emit(
        events.MessageScheduleCancelled(
            conversation=conversation_payload(conversation), message=payload, actor_id=actor.pk
        )
    )
    locked.pk = payload["id"]
    return locked


def messages_list_due(*, now: datetime | None = None, limit: int = SEND_DUE_BATCH) -> list[int]:
    """Ids of the scheduled messages whose moment has come, the earliest first."""
    return list(
        Message.objects.filter(status=MessageStatus.SCHEDULED, send_at__lte=now or timezone.now())
        .order_by("send_at", "id")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def message_send_scheduled(*, message_id: int) -> Message | None:
    """Send one due scheduled message: ``queued`` for the channel, or ``failed`` with the reason
    the channel gives now. None when it is not (or no longer) due, or another run holds it."""
    message = _lock_scheduled(message_id, skip_locked=True)
    if (
        message is None
        or message.status != MessageStatus.SCHEDULED
        or message.send_at is None
        or message.send_at > timezone.now()
    ):
        return None
    conversation = _lock(message.conversation)
    message.conversation = conversation
    media = {"raw_payload": message.raw_payload} if message.raw_payload else {}
    if message.media_file or message.media_id:
        media["media_file"] = message.media_file
    try:
        if conversation.is_closed:
            raise ServiceError(
                _("The conversation was closed before the scheduled time."),
                code="conversation_closed",
            )
        conversation_channel(conversation).outbound_validate(
            conversation=conversation, type=message.type, body=message.body, media=media
        )
    except ServiceError as exc:
        return message_send_failed(message=message, error=exc.message, data={"code": exc.code})
    now = timezone.now()
    message.status = MessageStatus.QUEUED
    message.created_at = now  # it takes its place in the timeline when it goes
    message.save(update_fields=["status", "created_at", "updated_at"])
    conversation.last_message_at = now
    fields = ["last_message_at", "updated_at"]
    if message.sender_user_id is not None and conversation.first_response_at is None:
        conversation.first_response_at = now
        fields.append("first_response_at")
        _record(
            conversation=conversation,
            actor=message.sender_user,
            kind=EventKind.FIRST_RESPONSE,
            after={"message": message.pk},
        )
    conversation.save(update_fields=fields)
    # Now a message like any other: the channel's handler sends the ``queued`` row.
    emit(
        events.MessageCreated(
            conversation=conversation_payload(conversation),
            message=message_payload(message),
            actor_id=message.sender_user_id,
        )
    )
    return message


def messages_send_due(*, now: datetime | None = None) -> int:
    """Send every due scheduled message (the beat task); returns how many went or failed."""
    done = 0
    for message_id in messages_list_due(now=now):
        if message_send_scheduled(message_id=message_id) is not None:
            done += 1
    return done


# --- Auto-close ---------------------------------------------------------------------------------


def _waiting_for_customer(now: datetime, department: Department) -> Q:
    """Idle ``auto_close_minutes`` since our last message, the customer silent since before it."""
    minutes = department.auto_close_minutes or 0
    return Q(
        department=department,
        status__in=[ConversationStatus.OPEN, ConversationStatus.PENDING],
        last_message_at__lte=now - timedelta(minutes=minutes),
    ) & (Q(last_inbound_at__isnull=True) | Q(last_inbound_at__lt=F("last_message_at")))


def conversations_list_to_auto_close(*, now: datetime | None = None) -> list[int]:
    """Ids of the conversations due to be closed automatically (one query per department that
    has auto-close on; departments are few)."""
    now = now or timezone.now()
    scheduled = Message.objects.filter(conversation=OuterRef("pk"), status=MessageStatus.SCHEDULED)
    ids: list[int] = []
    for department in Department.objects.filter(is_active=True, auto_close_minutes__isnull=False):
        ids += (
            Conversation.objects.filter(_waiting_for_customer(now, department))
            .exclude(Exists(scheduled))
            .order_by("last_message_at", "id")
            .values_list("pk", flat=True)[:AUTO_CLOSE_BATCH]
        )
    return ids


def _last_message_is_ours(conversation: Conversation) -> bool:
    last = (
        conversation.messages.exclude(status=MessageStatus.SCHEDULED)
        .exclude(type=MessageType.REACTION)
        .order_by("-created_at", "-id")
        .only("direction")
        .first()
    )
    return last is not None and last.direction == Direction.OUT


@transaction.atomic
def conversation_auto_close(*, conversation_id: int) -> Conversation | None:
    """Close one conversation idle while waiting for the customer, after its department's
    closing message; checked again under the lock (None: not, or no longer, to be closed)."""
    conversation = (
        Conversation.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        return None
    conversation = _lock(conversation)
    department = conversation.department
    now = timezone.now()
    if (
        department is None
        or not department.auto_close_minutes
        or not Conversation.objects.filter(_waiting_for_customer(now, department))
        .filter(pk=conversation.pk)
        .exists()
        or conversation.messages.filter(status=MessageStatus.SCHEDULED).exists()
        or not _last_message_is_ours(conversation)
    ):
        return None
    if department.auto_close_message.strip():
        try:
            with transaction.atomic():
                message_create_automated(
                    conversation=conversation, body=department.auto_close_message.strip()
                )
        except ServiceError as exc:  # e.g. the 24-hour window closed: closed all the same
            logger.info("auto-close of %s without its message: %s", conversation.pk, exc.message)
    return conversation_close(conversation=conversation, actor=None, reason=AUTO_CLOSE_REASON)


def conversations_auto_close(*, now: datetime | None = None) -> int:
    """Close every conversation due for auto-close (the beat task); returns how many."""
    closed = 0
    for conversation_id in conversations_list_to_auto_close(now=now):
        if conversation_auto_close(conversation_id=conversation_id) is not None:
            closed += 1
    return closed
