"""The bot's domain-event handler: it takes its turn on what customers write to it."""

import logging
import threading
from collections.abc import Sequence

from common.breaker import BROKER
from common.events import DomainEvent
from conversations.events import ConversationClosed, MessageCreated
from conversations.models import ConversationStatus, MessageType

from .tasks import bot_handle_message, bot_handle_messages, csat_reply, csat_send

logger = logging.getLogger(__name__)

# Customer messages whose bot turn this process could not queue (the broker down while a worker
# went on storing deliveries): queued as soon as a publish succeeds again. Per process, bounded.
_kept_back: list[int] = []
_KEPT_BACK_MAX = 10_000
_kept_back_lock = threading.Lock()


def _keep_back(message_ids: Sequence[int]) -> None:
    with _kept_back_lock:
        room = _KEPT_BACK_MAX - len(_kept_back)
        _kept_back.extend(message_ids[: max(room, 0)])


def bot_queue_kept_back() -> int:
    """Queue the bot's turns kept back while the broker was down; how many messages went."""
    with _kept_back_lock:
        waiting = list(dict.fromkeys(_kept_back))
        _kept_back.clear()
    if waiting:
        _bot_queue(waiting)
    return len(waiting)


def _bot_queue(message_ids: list[int]) -> None:
    """One task for the batch; a broker outage keeps the batch back for the recovery."""
    if not BROKER.allow():
        logger.warning(
            "the bot's turn for messages %s waits: the broker is unreachable", message_ids
        )
        _keep_back(message_ids)
        return
    try:
        if len(message_ids) == 1:
            bot_handle_message.delay(message_ids[0])
        else:
            bot_handle_messages.delay(message_ids)
    except Exception:
        BROKER.failed()
        logger.exception("could not queue the bot for messages %s; kept back", message_ids)
        _keep_back(message_ids)
        return
    BROKER.succeeded()


BROKER.on_recovery(bot_queue_kept_back)


class BotHandler:
    """``settings.DOMAIN_EVENT_HANDLERS``: inbound messages of conversations that are with the
    bot (as they were when the message was stored) are queued for its turn, one task per batch;
    it also runs the satisfaction survey: asked when a conversation an agent had is closed, its
    answer taken from what the customer writes on the closed conversation."""

    def on_commit(self, events: Sequence[DomainEvent]) -> None:
        self._csat(events)
        message_ids = [
            event.message_id
            for event in events
            if isinstance(event, MessageCreated)
            and event.message.get("direction") == "in"
            and event.message.get("type") != MessageType.SYSTEM
            and event.conversation.get("status") == ConversationStatus.BOT
        ]
        if message_ids:
            _bot_queue(message_ids)

    def _csat(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            try:
                if isinstance(event, ConversationClosed) and event.assigned_to_id is not None:
                    csat_send.delay(event.conversation_id)
                elif (
                    isinstance(event, MessageCreated)
                    and event.message.get("direction") == "in"
                    and event.conversation.get("status") == ConversationStatus.CLOSED
                ):
                    csat_reply.delay(event.message_id)
            except Exception:
                logger.exception("could not queue the satisfaction survey for %s", event.type)
