"""Bot tasks. ``bot_handle_message`` is queued by WhatsApp intake for conversations with the bot."""

import logging

from celery import shared_task
from django.db import OperationalError

from . import engine

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def bot_handle_message(message_id: int) -> None:
    """Let the bot answer the inbound message ``message_id`` (idempotent: at most one answer)."""
    engine.bot_handle_inbound(message_id=message_id)


@shared_task(acks_late=True, ignore_result=True)
def bot_handle_messages(message_ids: list[int]) -> None:
    """The bot's turns for many inbound messages, in order (queued once per intake batch).

    Each message is its own turn: one that fails is queued again on its own, with retries.
    """
    for message_id in message_ids:
        try:
            engine.bot_handle_inbound(message_id=message_id)
        except Exception:
            logger.exception("bot turn for message %s failed; queued on its own", message_id)
            bot_handle_message.delay(message_id)
