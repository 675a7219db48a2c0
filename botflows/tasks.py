"""Bot tasks. ``bot_handle_message`` is queued by WhatsApp intake for conversations with the bot."""

from celery import shared_task
from django.db import OperationalError

from . import engine


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
