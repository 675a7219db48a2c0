"""The one sender: every outbound message goes to Meta from here, exactly once.

``conversations.services.message_create_outbound`` writes the row (``queued``) and, on commit,
:func:`outbound_queue` hands its id to the ``whatsapp.tasks.message_send`` task, which calls
:func:`message_deliver`. The row is claimed under a lock (``sending_since``) before the HTTP call,
so a redelivered or duplicated task never sends twice; the wamid Meta returns is recorded and the
status moves on with Meta's webhooks.

Content convention: ``type="interactive"`` carries Meta's ``interactive`` object in
``raw_payload["interactive"]``, ``type="template"`` Meta's ``template`` object in
``raw_payload["template"]`` (a template whose media header names neither a link nor an id
carries the file in ``media_file``: uploaded like a media message's, its id goes in the header),
``type="reaction"`` ``raw_payload["reaction"]``; ``body`` is the human-readable text the console
shows.
"""

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from common import context
from common.breaker import BROKER
from common.exceptions import ServiceError
from conversations.models import (
    Conversation,
    Direction,
    Message,
    MessageStatus,
    MessageType,
)
from conversations.services import delivery
from whatsapp.client import ErrorKind, GraphClient, GraphError
from whatsapp.metrics import outbound_counted
from whatsapp.models import ChannelError, ChannelErrorKind, PendingStatus, WhatsAppAccount

from . import health
from .accounts import account_token
from .inbound import pending_statuses_apply
from .templates import template_check, template_with_media_id

logger = logging.getLogger(__name__)

MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
CAPTION_TYPES = frozenset({"image", "video", "document"})
# Only these may be sent outside the 24-hour customer-service window.
WINDOW_FREE_TYPES = frozenset({MessageType.TEMPLATE})
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_SEND_ATTEMPTS = 6
# A claim older than this means the worker died mid-request: Meta may have the message.
STALE_CLAIM = timedelta(minutes=5)
# A message still queued this long after it was written (or last re-queued) lost its task.
STUCK_AFTER = timedelta(minutes=2)
# Longer than any retry the sender schedules (backoff cap 300 s, pair limit 4^5 s ~ 17 min).
RETRY_GRACE = timedelta(minutes=30)


@dataclass
class RetryLater(Exception):  # noqa: N818 - a signal to the task, not an error
    countdown: float
    reason: str = ""


def _text_limit(value: Any, limit: int, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ServiceError(_("%(what)s is required.") % {"what": what}, code="invalid_interactive")
    if len(value) > limit:
        raise ServiceError(
            _("%(what)s is longer than %(limit)s characters.") % {"what": what, "limit": limit},
            code="invalid_interactive",
        )


def _optional_limit(container: dict[str, Any], key: str, limit: int, what: str) -> None:
    value = container.get(key)
    if value is None:
        return
    if isinstance(value, dict):  # header {"type": "text", "text": ...}, footer {"text": ...}
        value = value.get("text", "")
    if isinstance(value, str) and len(value) > limit:
        raise ServiceError(
            _("%(what)s is longer than %(limit)s characters.") % {"what": what, "limit": limit},
            code="invalid_interactive",
        )


def interactive_validate(interactive: Any) -> None:  # noqa: PLR0912 - one check per rule
    """Meta's limits for reply buttons and lists, as clear errors before anything is sent."""
    if not isinstance(interactive, dict):
        raise ServiceError(
            _("An interactive message needs its content."), code="invalid_interactive"
        )
    kind = interactive.get("type")
    body = (interactive.get("body") or {}).get("text")
    action = interactive.get("action") or {}
    _optional_limit(interactive, "header", 60, _("The header"))
    _optional_limit(interactive, "footer", 60, _("The footer"))
    if kind == "button":
        _text_limit(body, 1024, _("The text"))
        buttons = action.get("buttons") or []
        if not 1 <= len(buttons) <= 3:
            raise ServiceError(_("Use 1 to 3 buttons."), code="invalid_interactive")
        ids = set()
        for button in buttons:
            reply = (button or {}).get("reply") or {}
            _text_limit(reply.get("title"), 20, _("A button title"))
            _text_limit(reply.get("id"), 256, _("A button id"))
            ids.add(reply["id"])
        if len(ids) != len(buttons):
            raise ServiceError(_("Button ids must be unique."), code="invalid_interactive")
    elif kind == "list":
        _text_limit(body, 4096, _("The text"))
        _text_limit(action.get("button"), 20, _("The list button label"))
        sections = action.get("sections") or []
        if not 1 <= len(sections) <= 10:
            raise ServiceError(_("Use 1 to 10 sections."), code="invalid_interactive")
        rows = 0
        for section in sections:
            if len(sections) > 1 or section.get("title"):
                _text_limit(section.get("title"), 24, _("A section title"))
            for row in section.get("rows") or []:
                rows += 1
                _text_limit(row.get("id"), 200, _("A row id"))
                _text_limit(row.get("title"), 24, _("A row title"))
                if row.get("description") is not None and len(str(row["description"])) > 72:
                    raise ServiceError(
                        _("A row description is longer than 72 characters."),
                        code="invalid_interactive",
                    )
        if not 1 <= rows <= 10:
            raise ServiceError(_("A list has 1 to 10 rows in all."), code="invalid_interactive")
    else:
        raise ServiceError(
            _("Interactive messages are reply buttons or lists."), code="invalid_interactive"
        )


def window_is_open(conversation: Conversation) -> bool:
    expires = conversation.window_expires_at
    return expires is not None and expires > timezone.now()


def outbound_validate(
    *,
    conversation: Conversation,
    type: str,
    body: str,
    media: dict[str, Any],
    window: bool = True,
) -> None:
    """Refuse, before the row is written, what WhatsApp would refuse (``window`` False: all but
    the 24-hour window, which a scheduled message meets when it goes)."""
    raw = media.get("raw_payload") or {}
    if window and type not in WINDOW_FREE_TYPES and not window_is_open(conversation):
        raise ServiceError(
            _(
                "More than 24 hours have passed since the customer's last message: WhatsApp only "
                "accepts an approved template now."
            ),
            code="window_closed",
        )
    if type == MessageType.TEXT and len(body) > MAX_TEXT_LENGTH:
        raise ServiceError(_("A message has at most 4096 characters."), code="too_long")
    if type in CAPTION_TYPES and len(body) > MAX_CAPTION_LENGTH:
        raise ServiceError(_("A caption has at most 1024 characters."), code="too_long")
    if type == MessageType.INTERACTIVE:
        interactive_validate(raw.get("interactive"))
    if type == MessageType.TEMPLATE:
        template_check(
            account_id=conversation.whatsapp_account_id,
            payload=raw.get("template"),
            has_file=bool(media.get("media_file") or media.get("media_id")),
        )
    if type == MessageType.REACTION and not isinstance(raw.get("reaction"), dict):
        raise ServiceError(_("A reaction needs the message it reacts to."), code="invalid")


# --- Queueing --------------------------------------------------------------------------------


# Messages this process could not hand to the sender (the broker down): handed over as soon as
# a publish succeeds again (common.breaker.BROKER's recovery). Per process and bounded; the
# sweeper (outbound_requeue_stuck) is there for whatever a process never hands over.
_unpublished: set[int] = set()
_UNPUBLISHED_MAX = 10_000
_unpublished_lock = threading.Lock()


def _remember_unpublished(message_id: int) -> None:
    with _unpublished_lock:
        if len(_unpublished) < _UNPUBLISHED_MAX:
            _unpublished.add(message_id)


def outbound_queue_unpublished() -> int:
    """Hand over what this process could not while the broker was down; how many it did."""
    with _unpublished_lock:
        waiting = sorted(_unpublished)
        _unpublished.clear()
    done = 0
    for message_id in waiting:
        if not outbound_queue(message_id=message_id):
            break  # down again: the rest is remembered again below, or by the failed call
        done += 1
    with _unpublished_lock:
        for message_id in waiting[done + 1 :]:
            if len(_unpublished) < _UNPUBLISHED_MAX:
                _unpublished.add(message_id)
    if done:
        logger.warning("%s messages queued while the broker was down handed to the sender", done)
    return done


BROKER.on_recovery(outbound_queue_unpublished)


def outbound_queue(*, message_id: int, countdown: float | None = None) -> bool:
    """Hand a queued message to the sender task; a broker outage leaves it ``queued``.

    Returns whether the task was published. What a broker outage kept back is handed over by this
    process when a publish succeeds again (:func:`outbound_queue_unpublished`), or else by
    :func:`outbound_requeue_stuck`. Publishing one twice is harmless: the sender's claim decides.
    """
    from whatsapp.tasks import message_send  # noqa: PLC0415 - tasks import services

    def publish() -> None:
        if countdown:
            message_send.apply_async((message_id,), countdown=countdown)
        else:
            message_send.delay(message_id)

    return _hand_to_sender([message_id], publish)


def _hand_to_sender(message_ids: list[int], publish: Callable[[], Any]) -> bool:
    """Publish the sender's task for ``message_ids``; a broker outage (known, or met now) leaves
    them ``queued`` and remembered for :func:`outbound_queue_unpublished`. Whether it went."""
    broker = not current_app.conf.task_always_eager  # embedded mode sends in this process
    if broker and not BROKER.allow():  # Redis unreachable a moment ago
        logger.warning("messages %s stay queued: the broker is unreachable", message_ids)
        for message_id in message_ids:
            _remember_unpublished(message_id)
        return False
    try:
        publish()
    except Exception:
        if broker:
            BROKER.failed()
            for message_id in message_ids:
                _remember_unpublished(message_id)
        logger.exception("could not queue messages %s for sending; they stay queued", message_ids)
        return False
    if broker:
        BROKER.succeeded()
    return True


def outbound_queue_many(*, message_ids: Sequence[int]) -> bool:
    """Hand many queued messages (a commit's) to the sender in one task
    (``whatsapp.tasks.message_send_batch``); one message goes as :func:`outbound_queue` does.
    A broker outage leaves them ``queued``, remembered like one message's."""
    from whatsapp.tasks import message_send_batch  # noqa: PLC0415 - tasks import services

    ids = list(dict.fromkeys(message_ids))
    if len(ids) <= 1:
        return bool(ids) and outbound_queue(message_id=ids[0])
    return _hand_to_sender(ids, lambda: message_send_batch.delay(ids))


def outbound_deliver_now(*, message_ids: Sequence[int]) -> None:
    """Send queued messages in this process now (a worker's own commit), the retries queued as
    tasks of their own; should that fail, the messages go to the sender's task instead (the
    claims decide: nothing is sent twice)."""
    try:
        retries = messages_deliver(message_ids=message_ids)
    except Exception:
        logger.exception("sending %s messages in place failed; queued", len(message_ids))
        outbound_queue_many(message_ids=message_ids)
        return
    for message_id, countdown in retries:
        outbound_queue(message_id=message_id, countdown=countdown)


def _last_activity(message: Message) -> datetime | None:
    """When the sender (or the sweeper) last touched the message, from its status history."""
    for entry in reversed(message.status_history or []):
        moment = parse_datetime(str((entry or {}).get("at") or ""))
        if moment is not None:
            return moment
    return None


def outbound_list_stuck(*, older_than: timedelta = STUCK_AFTER) -> list[Message]:
    """Outbound messages still ``queued`` that no task will deliver, oldest first.

    - never claimed (``send_attempts`` 0) and untouched for ``older_than``: the publish on commit
      was lost (broker down) or the task vanished;
    - released for a retry but untouched for :data:`RETRY_GRACE` (longer than any backoff the
      sender schedules), so the retry task was lost;
    - claimed longer ago than :data:`STALE_CLAIM` (the worker died and its task is gone): queued
      again so that the sender marks it failed ("may or may not have been delivered") — a claim
      is never sent a second time.
    Messages in a retry backoff or being sent right now are left alone.
    """
    now = timezone.now()
    candidates = (
        Message.objects.filter(
            direction=Direction.OUT,
            status=MessageStatus.QUEUED,
            created_at__lt=now - older_than,
        )
        .filter(Q(wa_message_id__isnull=True) | Q(wa_message_id=""))
        .filter(
            Q(sending_since__isnull=True) | Q(sending_since__lt=now - max(STALE_CLAIM, older_than))
        )
        .only("conversation_id", "created_at", "send_attempts", "sending_since", "status_history")
        .order_by("created_at", "id")
    )
    stuck = []
    for message in candidates:
        if message.sending_since is None:
            wait = older_than if not message.send_attempts else max(older_than, RETRY_GRACE)
            last = _last_activity(message)
            if last is not None and now - last < wait:
                continue  # in a retry backoff, or queued again a moment ago
        stuck.append(message)
    return stuck


def outbound_requeue_stuck(
    *,
    older_than: timedelta = STUCK_AFTER,
    dry_run: bool = False,
    progress: Callable[[Message], None] | None = None,
) -> list[Message]:
    """Queue again what :func:`outbound_list_stuck` finds (Celery beat, ``requeue_outbound``).

    Safe to run at any time and any number of times: the sender's claim under a row lock still
    decides, so a message is never sent twice; each re-queue is noted in ``status_history`` so the
    next sweep waits ``older_than`` before trying it again. Returns the messages found.
    """
    found = outbound_list_stuck(older_than=older_than)
    if dry_run:
        for message in found:
            if progress is not None:
                progress(message)
        return found
    requeued: list[Message] = []
    for message in found:
        with transaction.atomic():
            locked = (
                Message.objects.select_for_update(skip_locked=True)
                .filter(pk=message.pk, status=MessageStatus.QUEUED)
                .first()
            )
            if locked is None or locked.sending_since != message.sending_since:
                continue  # a worker took it meanwhile
            delivery.message_history_note(
                message=locked, status="requeued", note="still queued: handed to the sender again"
            )
            transaction.on_commit(partial(outbound_queue, message_id=locked.pk))
        requeued.append(locked)
        if progress is not None:
            progress(locked)
    if requeued:
        logger.warning("re-queued %s outbound messages left queued", len(requeued))
    return requeued


def outbound_queue_mark_read(*, conversation_id: int) -> None:
    from whatsapp.tasks import conversation_mark_read_on_whatsapp  # noqa: PLC0415

    try:
        conversation_mark_read_on_whatsapp.delay(conversation_id)
    except Exception:
        logger.exception("could not queue mark-as-read for conversation %s", conversation_id)


# --- Payloads --------------------------------------------------------------------------------


def _recipient(conversation: Conversation) -> dict[str, str]:
    customer = conversation.customer
    if customer.wa_id:
        return {"to": customer.wa_id}
    if customer.bsuid:
        return {"recipient": customer.bsuid}
    raise GraphError("the customer has neither a WhatsApp id nor a user id")


def build_payload(message: Message) -> dict[str, Any]:
    """Meta's ``/messages`` body for one of our outbound messages."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        **_recipient(message.conversation),
    }
    raw = message.raw_payload or {}
    kind = message.type
    if kind == MessageType.TEXT:
        payload.update(type="text", text={"preview_url": False, "body": message.body})
    elif kind in MEDIA_TYPES:
        media: dict[str, Any] = {"id": message.media_id}
        if kind in CAPTION_TYPES and message.body:
            media["caption"] = message.body
        if kind == MessageType.DOCUMENT and message.media_filename:
            media["filename"] = message.media_filename
        payload.update({"type": kind, kind: media})
    elif kind == MessageType.INTERACTIVE:
        payload.update(type="interactive", interactive=raw["interactive"])
    elif kind == MessageType.TEMPLATE:
        template = raw["template"]
        if message.media_id:  # the header's file, uploaded when the message went
            template = template_with_media_id(template, message.media_id)
        payload.update(type="template", template=template)
    elif kind == MessageType.REACTION:
        payload.update(type="reaction", reaction=raw["reaction"])
        return payload  # a reaction carries no reply context
    else:
        raise GraphError(f"messages of type {kind!r} cannot be sent")
    if message.reply_to_id and message.reply_to and message.reply_to.wa_message_id:
        payload["context"] = {"message_id": message.reply_to.wa_message_id}
    return payload


# --- Sending ---------------------------------------------------------------------------------


def _backoff(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter (``attempt`` starts at 1)."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def _pair_key(conversation: Conversation) -> str:
    return f"wa:pair-limit:{conversation.customer_id}"


def _fail(message_id: int, *, error: str, code: int | None = None, data: Any = None) -> Message:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        failed = delivery.message_send_failed(message=message, error=error, code=code, data=data)
    # the conversation is loaded already (the status event carries it)
    account_id = failed.conversation.whatsapp_account_id
    health.account_send_error_note(account_id=account_id, code=code, reason=error)
    outbound_counted(status="failed", error_code=code)
    return failed


def _claim(message_id: int, *, respect_backoff: bool) -> Message | None:
    """Lock the row and mark a send in flight; None when there is nothing (more) to send."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related("conversation__customer", "conversation__whatsapp_account", "reply_to")
            .get(pk=message_id)
        )
        if (
            message.direction != Direction.OUT
            or message.status != MessageStatus.QUEUED
            or message.wa_message_id
        ):
            return None
        if message.sending_since is not None:
            if timezone.now() - message.sending_since < STALE_CLAIM:
                return None  # another worker is sending it right now
            raise _Interrupted
        if message.type not in WINDOW_FREE_TYPES and not window_is_open(message.conversation):
            raise _WindowClosed
        if respect_backoff:
            blocked_until = cache.get(_pair_key(message.conversation))
            remaining = (blocked_until or 0) - timezone.now().timestamp()
            if remaining > 0:
                raise RetryLater(remaining + random.uniform(0, 1), "pair rate limit")  # noqa: S311
        return delivery.message_sending_start(message=message)


class _Interrupted(Exception):  # noqa: N818
    pass


class _WindowClosed(Exception):  # noqa: N818
    pass


def _record_sent(message_id: int, *, wa_message_id: str, only_if_queued: bool = False) -> Message:
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if only_if_queued and (
            message.direction != Direction.OUT
            or message.status != MessageStatus.QUEUED
            or message.wa_message_id
        ):
            return message
        delivery.message_sent(message=message, channel_message_id=wa_message_id)
        pending_statuses_apply(message=message)
    # the conversation is loaded already (the status event carries it)
    health.account_sent_note(account_id=message.conversation.whatsapp_account_id)
    outbound_counted(status="sent")
    return message


def _release(message_id: int, *, note: str) -> None:
    """A retryable answer: the message stays queued, free to be claimed again."""
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        delivery.message_sending_release(message=message, note=note)


def _alert_admins(error: GraphError, message: Message) -> None:
    """Recorded every time (the admin's channel errors); e-mailed once per incident."""
    account = message.conversation.whatsapp_account
    ChannelError.objects.create(
        kind=ChannelErrorKind.TOKEN,
        account=account,
        code=error.code,
        title=error.reason[:255],
        details=error.details,
        data=error.data or None,
    )
    health.account_token_error_alert(account=account, code=error.code, reason=error.reason)


def _upload_if_needed(client: GraphClient, message: Message) -> None:
    """Upload the message's file (a media message's, or a template's header file) once."""
    if message.media_id:
        return
    if message.type == MessageType.TEMPLATE and not message.media_file:
        return
    if message.type not in MEDIA_TYPES and message.type != MessageType.TEMPLATE:
        return
    if not message.media_file:
        raise GraphError("no file to send", kind=ErrorKind.FAIL)
    with message.media_file.open("rb") as handle:
        content = handle.read()
    media_id = client.upload_media(
        phone_number_id=message.conversation.whatsapp_account.phone_number_id,
        content=content,
        mime_type=message.media_mime_type or "application/octet-stream",
        filename=message.media_filename or str(message.media_file.name).rsplit("/", 1)[-1],
    )
    # Kept at once: a retry sends by this id instead of uploading again.
    delivery.message_media_uploaded(message=message, media_id=media_id)


def message_deliver(  # noqa: PLR0911 - every outcome returns the message
    *, message_id: int, respect_backoff: bool = True
) -> Message | None:
    """Send one queued outbound message to WhatsApp, at most once.

    Raises :class:`RetryLater` for retryable answers (the task schedules the retry); everything
    else ends with the message ``sent`` (wamid recorded) or ``failed`` (Meta's code and reason).
    """
    account = WhatsAppAccount.objects.filter(conversations__messages__pk=message_id).first()
    if account is not None and not account_token(account):
        # Sandbox transport: no Meta account needed to see the whole flow (one transaction).
        return _record_sent(
            message_id, wa_message_id=f"wamid.SANDBOX.{uuid.uuid4().hex}", only_if_queued=True
        )
    try:
        message = _claim(message_id, respect_backoff=respect_backoff)
    except _Interrupted:
        return _fail(
            message_id,
            error=_(
                "Sending was interrupted before Meta answered; the message may or may not have "
                "been delivered, so it is not sent again."
            ),
        )
    except _WindowClosed:
        return _fail(
            message_id,
            error=_("The 24-hour window closed before the message could be sent."),
            code=131047,
        )
    if message is None:
        return None
    context.bind(conversation_id=message.conversation_id)  # the send's log lines (task-scoped)
    account = message.conversation.whatsapp_account
    token = account_token(account)
    if not token:  # the token was removed meanwhile
        return _record_sent(message_id, wa_message_id=f"wamid.SANDBOX.{uuid.uuid4().hex}")
    client = graph_client(token)
    try:
        _upload_if_needed(client, message)
        answer = client.send(
            phone_number_id=account.phone_number_id, payload=build_payload(message)
        )
        wa_message_id = str(((answer.get("messages") or [{}])[0] or {}).get("id") or "")
        if not wa_message_id:
            return _fail(message_id, error=_("Meta accepted the message without returning an id."))
        return _record_sent(message_id, wa_message_id=wa_message_id)
    except GraphError as error:
        return _handle_error(message, error)
    except RetryLater:
        raise
    except Exception as exc:  # a bug or a storage error: never leave the claim dangling
        logger.exception("sending message %s failed unexpectedly", message_id)
        return _fail(message_id, error=f"{type(exc).__name__}: {exc}")


# --- Sending many --------------------------------------------------------------------------

# Kept-alive connections to the Graph API: one client (a requests.Session) per thread, token and
# base URL, reused by the sends of this process. One left idle longer than this gets a fresh
# connection: a POST on a connection the server is closing at that moment would be ambiguous
# (Meta may have the message), and is never retried.
_clients = threading.local()
KEEP_ALIVE_IDLE = 10.0
# Conversations sent to at once by one batch (each conversation's messages one after another).
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def graph_client(token: str) -> GraphClient:
    """This thread's client for ``token`` (its connection kept alive between sends)."""
    cache_key = (token, settings.WHATSAPP_API_URL)
    clients: dict[tuple[str, str], tuple[GraphClient, float]] | None = getattr(
        _clients, "by_key", None
    )
    if clients is None:
        clients = _clients.by_key = {}
    now = time.monotonic()
    client, used = clients.get(cache_key, (None, 0.0))
    if client is not None and now - used > KEEP_ALIVE_IDLE:
        client.session.close()
        client = None
    if client is None:
        client = GraphClient(token=token)
    clients[cache_key] = (client, now)
    return client


def _send_pool() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one pool per process, made on first use (after the fork)
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, int(settings.WHATSAPP_SEND_CONCURRENCY)),
                thread_name_prefix="whatsapp-send",
            )
        return _pool


class _NoMessageId(Exception):  # noqa: N818
    pass


@dataclass
class _ChainResult:
    sent: list[tuple[Message, str]] = field(default_factory=list)
    refused: tuple[Message, GraphError] | None = None
    broken: tuple[Message, Exception] | None = None
    unsent: list[Message] = field(default_factory=list)  # after a refusal: in order, later


def _send_chain(token: str, phone_number_id: str, chain: list[Message]) -> _ChainResult:
    """One conversation's claimed messages, in order, over this thread's kept-alive connection;
    the first refusal stops the chain (what follows waits for it: the order is kept). No
    database here: the caller writes every outcome."""
    result = _ChainResult()
    client = graph_client(token)
    for index, message in enumerate(chain):
        try:
            answer = client.send(phone_number_id=phone_number_id, payload=build_payload(message))
        except GraphError as error:
            result.refused = (message, error)
        except Exception as exc:  # a bug: the claim must not dangle
            result.broken = (message, exc)
        else:
            wa_message_id = str(((answer.get("messages") or [{}])[0] or {}).get("id") or "")
            if wa_message_id:
                result.sent.append((message, wa_message_id))
                continue
            result.broken = (message, _NoMessageId())
        result.unsent = chain[index + 1 :]
        break
    return result


def _record_sent_many(
    sent: Sequence[tuple[int, str]], *, only_if_queued: bool = False
) -> list[Message]:
    """:func:`_record_sent` for many messages: one lock, one write, one event batch."""
    if not sent:
        return []
    wamids = dict(sent)
    with transaction.atomic():
        locked = list(
            Message.objects.select_for_update(of=("self",))
            .select_related(
                "conversation__customer",
                "conversation__department",
                "conversation__assigned_to",
                "conversation__whatsapp_account",
            )
            .filter(pk__in=list(wamids))
            .order_by("pk")
        )
        if only_if_queued:
            locked = [
                m
                for m in locked
                if m.direction == Direction.OUT
                and m.status == MessageStatus.QUEUED
                and not m.wa_message_id
            ]
        messages = delivery.messages_sent_many(sent=[(m, wamids[m.pk]) for m in locked])
        waiting = set(
            PendingStatus.objects.filter(
                wa_message_id__in=[m.wa_message_id for m in messages]
            ).values_list("wa_message_id", flat=True)
        )
        for message in messages:
            if message.wa_message_id in waiting:
                pending_statuses_apply(message=message)
    for account_id in {m.conversation.whatsapp_account_id for m in messages}:
        health.account_sent_note(account_id=account_id)
    for _message in messages:
        outbound_counted(status="sent")
    return messages


def _claim_many(
    messages: Sequence[Message], *, respect_backoff: bool
) -> tuple[list[Message], list[int], list[int], list[tuple[int, float]]]:
    """:func:`_claim` for many: (claimed, interrupted, window closed, (id, wait) in a pair
    backoff). Rows someone else holds are left to them."""
    interrupted: list[int] = []
    window_closed: list[int] = []
    retries: list[tuple[int, float]] = []
    with transaction.atomic():
        locked = list(
            Message.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related(
                "conversation__customer",
                "conversation__department",
                "conversation__assigned_to",
                "conversation__whatsapp_account",
                "reply_to",
            )
            .filter(
                pk__in=[m.pk for m in messages],
                direction=Direction.OUT,
                status=MessageStatus.QUEUED,
            )
            .filter(Q(wa_message_id__isnull=True) | Q(wa_message_id=""))
            .order_by("pk")
        )
        blocked = (
            cache.get_many({_pair_key(m.conversation) for m in locked}) if respect_backoff else {}
        )
        now = timezone.now()
        claimable = []
        for message in locked:
            if message.sending_since is not None:
                if now - message.sending_since >= STALE_CLAIM:
                    interrupted.append(message.pk)
                continue  # else another worker is sending it right now
            if message.type not in WINDOW_FREE_TYPES and not window_is_open(message.conversation):
                window_closed.append(message.pk)
                continue
            remaining = (blocked.get(_pair_key(message.conversation)) or 0) - now.timestamp()
            if remaining > 0:
                retries.append((message.pk, remaining + random.uniform(0, 1)))  # noqa: S311
                continue
            claimable.append(message)
        claimed = delivery.messages_sending_start(messages=claimable)
    return claimed, interrupted, window_closed, retries


def _needs_upload(message: Message) -> bool:
    return not message.media_id and (
        message.type in MEDIA_TYPES
        or (message.type == MessageType.TEMPLATE and bool(message.media_file))
    )


def messages_deliver(
    *, message_ids: Sequence[int], respect_backoff: bool = True
) -> list[tuple[int, float]]:
    """Send many queued outbound messages (a commit's) at most once each, as
    :func:`message_deliver` does one: claimed in one transaction, sent over kept-alive
    connections (conversations at once, each conversation's messages in order), their outcomes
    written together. Returns the (message id, seconds) to retry on their own later: Meta's
    retryable answers, and what waited behind one in its conversation."""
    rows = list(
        Message.objects.filter(pk__in=list(message_ids))
        .select_related("conversation__whatsapp_account")
        .only("conversation__whatsapp_account", "media_id", "media_file", "type")
        .order_by("pk")
    )
    sandbox = [m.pk for m in rows if not account_token(m.conversation.whatsapp_account)]
    _record_sent_many(
        [(pk, f"wamid.SANDBOX.{uuid.uuid4().hex}") for pk in sandbox], only_if_queued=True
    )
    # A file to upload first: the one-by-one path (it records the upload at once).
    uploads = [m.pk for m in rows if m.pk not in set(sandbox) and _needs_upload(m)]
    retries: list[tuple[int, float]] = []
    for message_id in uploads:
        try:
            message_deliver(message_id=message_id, respect_backoff=respect_backoff)
        except RetryLater as later:
            retries.append((message_id, later.countdown))
    skip = {*sandbox, *uploads}
    others = [m for m in rows if m.pk not in skip]
    if not others:
        return retries
    claimed, interrupted, window_closed, waiting = _claim_many(
        others, respect_backoff=respect_backoff
    )
    retries.extend(waiting)
    for message_id in interrupted:
        _fail(
            message_id,
            error=_(
                "Sending was interrupted before Meta answered; the message may or may not have "
                "been delivered, so it is not sent again."
            ),
        )
    for message_id in window_closed:
        _fail(
            message_id,
            error=_("The 24-hour window closed before the message could be sent."),
            code=131047,
        )
    retries.extend(_send_claimed(claimed))
    return retries


def _send_claimed(claimed: list[Message]) -> list[tuple[int, float]]:
    """Send what :func:`_claim_many` claimed and write every outcome; the retries."""
    chains: dict[int, list[Message]] = {}
    for message in claimed:
        chains.setdefault(message.conversation_id, []).append(message)

    def run(chain: list[Message]) -> _ChainResult:
        account = chain[0].conversation.whatsapp_account
        return _send_chain(account_token(account), account.phone_number_id, chain)

    if len(chains) == 1:
        results = [run(chain) for chain in chains.values()]
    else:
        results = list(_send_pool().map(run, chains.values()))
    _record_sent_many([(m.pk, wamid) for r in results for m, wamid in r.sent])
    retries: list[tuple[int, float]] = []
    for result in results:
        wait = 0.0
        if result.refused is not None:
            message, error = result.refused
            try:
                _handle_error(message, error)
            except RetryLater as later:
                retries.append((message.pk, later.countdown))
                wait = later.countdown
        if result.broken is not None:
            message, exc = result.broken
            if isinstance(exc, _NoMessageId):
                _fail(message.pk, error=_("Meta accepted the message without returning an id."))
            else:
                logger.error("sending message %s failed unexpectedly: %r", message.pk, exc)
                _fail(message.pk, error=f"{type(exc).__name__}: {exc}")
        for step, message in enumerate(result.unsent, start=1):
            _release(message.pk, note="waits for the conversation's message before it")
            retries.append((message.pk, wait + step))
    return retries


def _handle_error(message: Message, error: GraphError) -> Message:
    attempts = message.send_attempts
    if error.kind in (ErrorKind.RETRY, ErrorKind.PAIR) and attempts < MAX_SEND_ATTEMPTS:
        if error.kind == ErrorKind.PAIR:
            # Meta's advice for the pair limit: wait 4^n seconds before the next message to them.
            delay = float(4**attempts) + random.uniform(0, 1)  # noqa: S311
            cache.set(
                _pair_key(message.conversation), timezone.now().timestamp() + delay, int(delay) + 1
            )
        else:
            delay = _backoff(attempts)
        _release(message.pk, note=f"{error.code}: {error.reason}")
        raise RetryLater(delay, str(error))
    if error.kind == ErrorKind.TOKEN:
        _alert_admins(error, message)
    if error.kind == ErrorKind.AMBIGUOUS:
        reason = _(
            "Meta did not answer; the message may or may not have been delivered, so it is not "
            "sent again."
        )
    elif error.kind == ErrorKind.WINDOW:
        reason = _(
            "More than 24 hours have passed since the customer's last message: send an approved "
            "template instead."
        )
    else:
        reason = error.reason or str(error)
    return _fail(message.pk, error=reason, code=error.code, data=error.data)


def conversation_mark_read_on_whatsapp(*, conversation_id: int) -> bool:
    """Tell WhatsApp the desk has read the customer's messages (blue ticks, earlier ones too)."""
    latest = (
        Message.objects.filter(
            conversation_id=conversation_id,
            direction=Direction.IN,
            wa_message_id__isnull=False,
        )
        .select_related("conversation__whatsapp_account")
        .order_by("-created_at", "-id")
        .first()
    )
    if latest is None or not latest.wa_message_id:
        return False
    account = latest.conversation.whatsapp_account
    token = account_token(account)
    if not token:
        return True  # sandbox: nothing to tell
    payload = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": latest.wa_message_id,
    }
    try:
        GraphClient(token=token).send(phone_number_id=account.phone_number_id, payload=payload)
    except GraphError as error:
        if error.kind == ErrorKind.RETRY:
            raise
        logger.warning("mark-as-read refused for conversation %s: %s", conversation_id, error)
        return False
    return True
