"""Bot tasks. ``bot_handle_message`` is queued by WhatsApp intake for conversations with the bot."""

import logging
import time
from typing import Any

from celery import shared_task
from django.db import OperationalError

from conversations.models import Conversation, Message
from conversations.services import csat

from . import engine, selectors

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
    """The bot's turns for many inbound messages, in order (queued once per intake batch), in
    one transaction (``engine.bot_handle_inbound_many``).

    Each message is its own turn: one that fails is queued again on its own, with retries; those
    whose conversation was busy elsewhere are tried again as a batch, then one by one; should
    the batch as a whole fail (the database went away), every message is taken one by one.
    """
    pending = list(message_ids)
    for attempt in range(BUSY_ATTEMPTS):
        try:
            outcome = engine.bot_handle_inbound_many(message_ids=pending)
        except Exception:
            logger.exception("bot batch of %s messages failed; taken one by one", len(pending))
            _one_by_one(pending)
            return
        for message_id in outcome.failed:
            bot_handle_message.delay(message_id)
        if not outcome.deferred:
            return
        if len(outcome.deferred) == len(pending):  # all busy: let the other batch finish
            time.sleep(BUSY_PAUSE * (attempt + 1))
        pending = outcome.deferred
    _one_by_one(pending)


# Conversations another batch holds (a customer's messages in two intake batches, taken by two
# workers at once) are tried again as a batch this many times, pausing BUSY_PAUSE (then twice
# that…) when nothing moved, before they are taken one by one (waiting for the lock).
BUSY_ATTEMPTS = 5
BUSY_PAUSE = 0.05


def _one_by_one(message_ids: list[int]) -> None:
    for message_id in message_ids:
        try:
            engine.bot_handle_inbound(message_id=message_id)
        except Exception:
            logger.exception("bot turn for message %s failed; queued on its own", message_id)
            bot_handle_message.delay(message_id)


# The survey's tasks: fetched afresh, idempotent, retried when the database is away.
SURVEY_TASK: dict[str, Any] = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(**SURVEY_TASK)
def csat_send(conversation_id: int) -> None:
    """Ask the customer of a just-closed conversation to score the service (idempotent)."""
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is not None:
        csat.csat_request(conversation=conversation, texts=selectors.csat_texts())


@shared_task(**SURVEY_TASK)
def csat_reply(message_id: int) -> None:
    """Take a customer's message on a closed conversation as its survey's score or comment."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is not None:
        csat.csat_answer(message=message, texts=selectors.csat_texts())
