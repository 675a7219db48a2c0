"""Bot tasks. ``bot_handle_message`` is queued by WhatsApp intake for conversations with the bot."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def bot_handle_message(message_id: int) -> None:
    """Let the bot answer the inbound message ``message_id`` (the bot issue implements this)."""
