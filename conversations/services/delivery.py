"""A channel's bookkeeping on the core's messages: sending, sent, failed, media stored.

The channel (``whatsapp``) decides *when*; these services write the rows. The sending ones take
the message the caller has locked (``select_for_update``) in its transaction, so the claim, the
channel's answer and the write stay one step; ``message.status`` is emitted when the status moved.
"""

import json
from collections.abc import Sequence
from typing import Any

from django.core.files.base import ContentFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, prefetch_related_objects
from django.utils import timezone

from common.bulk import rows_update
from common.events import emit, emit_many

from .. import events, selectors
from ..models import Message, MessageStatus
from ..serializers import conversation_payload, message_payload


def _history(message: Message, *, status: str, applied: bool, note: str = "") -> None:
    entry: dict[str, Any] = {"status": status, "at": timezone.now().isoformat(), "applied": applied}
    if note:
        entry["note"] = note
    message.status_history = [*message.status_history, entry]


def _status_moved(message: Message) -> None:
    emit(
        events.MessageStatusChanged(
            conversation=conversation_payload(message.conversation),
            message=message_payload(message),
        )
    )


@transaction.atomic
def message_sending_start(*, message: Message) -> Message:
    """A send of the (locked) queued message is in flight: one more attempt."""
    message.sending_since = timezone.now()
    message.send_attempts += 1
    message.save(update_fields=["sending_since", "send_attempts"])
    return message


@transaction.atomic
def messages_sending_start(*, messages: Sequence[Message]) -> list[Message]:
    """:func:`message_sending_start` for many (locked) queued messages, in one UPDATE."""
    now = timezone.now()
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(
        sending_since=now, send_attempts=F("send_attempts") + 1
    )
    for message in messages:
        message.sending_since = now
        message.send_attempts += 1
    return list(messages)


@transaction.atomic
def message_sending_release(*, message: Message, note: str) -> Message:
    """The (locked) message stays queued, free to be claimed again; ``note`` says why."""
    message.sending_since = None
    _history(message, status="retry", applied=False, note=note)
    message.save(update_fields=["sending_since", "status_history"])
    return message


@transaction.atomic
def message_history_note(*, message: Message, status: str, note: str) -> Message:
    """Only a line in the (locked) message's delivery history (e.g. handed to the sender again);
    an in-flight claim stays as it is."""
    _history(message, status=status, applied=False, note=note)
    message.save(update_fields=["status_history"])
    return message


@transaction.atomic
def message_sent(*, message: Message, channel_message_id: str) -> Message:
    """The channel accepted the (locked) message: ``sent``, with the channel's id."""
    message.wa_message_id = channel_message_id[:128]
    message.status = MessageStatus.SENT
    message.sending_since = None
    message.error, message.error_code, message.error_data = "", None, None
    _history(message, status=MessageStatus.SENT, applied=True)
    message.save(update_fields=_SENT_FIELDS)
    _status_moved(message)
    return message


_SENT_FIELDS = [
    "wa_message_id",
    "status",
    "sending_since",
    "error",
    "error_code",
    "error_data",
    "status_history",
    "updated_at",
]


@transaction.atomic
def messages_sent_many(*, sent: Sequence[tuple[Message, str]]) -> list[Message]:
    """:func:`message_sent` for many (locked) messages: (message, the channel's id). One UPDATE
    for them all, their conversations' tags read once, their ``message.status`` events in one
    batch (the messages come with their conversations loaded, as the sender claims them)."""
    if not sent:
        return []
    now = timezone.now()
    messages = []
    for message, channel_message_id in sent:
        message.wa_message_id = channel_message_id[:128]
        message.status = MessageStatus.SENT
        message.sending_since = None
        message.error, message.error_code, message.error_data = "", None, None
        _history(message, status=MessageStatus.SENT, applied=True)
        message.updated_at = now
        messages.append(message)
    _sent_write(messages, now=now)
    conversations = list({m.conversation_id: m.conversation for m in messages}.values())
    prefetch_related_objects(conversations, *selectors.CONVERSATION_PREFETCH)
    payloads = {c.pk: conversation_payload(c) for c in conversations}
    emit_many(
        events.MessageStatusChanged(
            conversation=payloads[m.conversation_id], message=message_payload(m)
        )
        for m in messages
    )
    return messages


def _sent_write(messages: Sequence[Message], *, now: Any) -> None:
    if connection.vendor != "postgresql":
        Message.objects.bulk_update(messages, _SENT_FIELDS)
        return
    # One statement, without the CASE per field and row that bulk_update builds (its SQL
    # compilation was most of the cost of a batch).
    rows_update(
        Message,
        ids=[m.pk for m in messages],
        columns={
            "wa": ("text", [m.wa_message_id for m in messages]),
            "history": (
                "text",
                [json.dumps(m.status_history, cls=DjangoJSONEncoder) for m in messages],
            ),
        },
        assignments="wa_message_id = v.wa, status = %s, sending_since = NULL, error = '', "
        "error_code = NULL, error_data = NULL, status_history = v.history::jsonb, "
        "updated_at = %s",
        params=[MessageStatus.SENT, now],
    )


@transaction.atomic
def message_send_failed(
    *, message: Message, error: str, code: int | None = None, data: Any = None
) -> Message:
    """The channel refused the (locked) message for good: ``failed`` with its reason."""
    message.status = MessageStatus.FAILED
    message.error = error[:2000]
    message.error_code = code
    message.error_data = data or None
    message.sending_since = None
    _history(message, status=MessageStatus.FAILED, applied=True, note=error)
    message.save(
        update_fields=[
            "status",
            "error",
            "error_code",
            "error_data",
            "sending_since",
            "status_history",
            "updated_at",
        ]
    )
    _status_moved(message)
    return message


def message_media_uploaded(*, message: Message, media_id: str) -> Message:
    """The channel holds the file under ``media_id``: a retry sends by it, no upload again."""
    Message.objects.filter(pk=message.pk).update(media_id=media_id)
    message.media_id = media_id
    return message


@transaction.atomic
def message_media_store(
    *, message_id: int, content: bytes, filename: str, mime_type: str
) -> Message:
    """Keep a downloaded file on its message, once (a concurrent download that won is kept)."""
    message = Message.objects.select_for_update().get(pk=message_id)
    if message.media_file:
        return message
    message.media_file.save(filename, ContentFile(content), save=False)
    message.media_size = len(content)
    message.media_mime_type = mime_type[:100]
    message.media_error = ""
    message.save(
        update_fields=["media_file", "media_size", "media_mime_type", "media_error", "updated_at"]
    )
    return message


def message_media_failed(*, message: Message, reason: str) -> Message:
    """The file cannot be had: the reason is shown on the message (its media id is kept)."""
    Message.objects.filter(pk=message.pk).update(media_error=reason[:255])
    message.media_error = reason[:255]
    return message
