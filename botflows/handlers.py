"""The bot's domain-event handler: it takes its turn on what customers write to it."""

import logging
from collections.abc import Sequence

from common.events import DomainEvent
from conversations.events import ConversationClosed, MessageCreated
from conversations.models import ConversationStatus, MessageType

from .tasks import bot_handle_message, bot_handle_messages, csat_reply, csat_send

logger = logging.getLogger(__name__)


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
        if not message_ids:
            return
        try:
            if len(message_ids) == 1:
                bot_handle_message.delay(message_ids[0])
            else:
                bot_handle_messages.delay(message_ids)
        except Exception:
            logger.exception("could not queue the bot for messages %s", message_ids)

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
