"""The WhatsApp channel's domain-event handler: sends what the desk wrote, marks what it read."""

import logging
from collections.abc import Sequence

from celery import current_task

from common.events import DomainEvent
from conversations.events import ConversationRead, MessageCreated

from .services.outbound import outbound_deliver_now, outbound_queue_many, outbound_queue_mark_read

logger = logging.getLogger(__name__)


class ChannelSender:
    """``settings.DOMAIN_EVENT_HANDLERS``: a committed outbound message (``queued``) goes to the
    sender task, exactly once (the task claims the row; a commit's messages share one task); a
    conversation read at the desk shows the customer the blue ticks. A broker outage leaves the
    message ``queued`` for the sweeper."""

    def on_commit(self, events: Sequence[DomainEvent]) -> None:
        queued = []
        for event in events:
            if (
                isinstance(event, MessageCreated)
                and event.message.get("direction") == "out"
                and event.message.get("status") == "queued"
            ):
                queued.append(event.message_id)
            elif isinstance(event, ConversationRead) and event.messages:
                outbound_queue_mark_read(conversation_id=event.conversation_id)
        if not queued:
            return
        if _in_worker_task():
            # Written by a worker's task (the bot's turns, a survey, a scheduled message): sent
            # now by this worker, so that they never wait in the queue behind the next turns.
            outbound_deliver_now(message_ids=queued)
        else:
            # A commit's messages (a batch of the bot's replies) go to the sender in one task.
            outbound_queue_many(message_ids=queued)


def _in_worker_task() -> bool:
    """Inside a task a worker took from the broker (not eager, not the intake's: storing what
    customers write never waits for Meta)."""
    from .tasks import INTAKE_TASKS  # noqa: PLC0415 - tasks import this app's services

    task = current_task
    return bool(task) and not task.request.is_eager and task.name not in INTAKE_TASKS
