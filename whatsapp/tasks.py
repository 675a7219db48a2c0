"""Celery tasks of the WhatsApp channel: interfaces only (ids in, one service call).

All are idempotent, ``acks_late`` and retry a bounded number of times with backoff and jitter.
"""

import logging
import time
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from common import context
from whatsapp.client import GraphError
from whatsapp.services import health, inbound, intake, media, outbound

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(inbound.ProcessingError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def webhook_process(self, event_id: int) -> None:  # type: ignore[no-untyped-def]
    """Process a stored delivery (every message and status in it)."""
    context.bind(event_id=event_id)
    inbound.webhook_event_process(event_id=event_id)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def webhook_drain(self) -> None:  # type: ignore[no-untyped-def]
    """Process every delivery still ``received``, in batches (``WHATSAPP_INTAKE_BATCH``).

    Queued by the webhook view (one for many deliveries, see ``intake.webhook_queue``) and by
    Celery beat as a safety net. A full batch wakes one more drain, so that every worker helps
    with a burst. A delivery that failed is retried on its own, with backoff.
    """
    intake.webhook_drain_started()
    # In embedded mode (eager tasks) there is no other worker to wake, nor a queue to go back to.
    eager = bool(self.request.is_eager)
    if not eager:
        intake.webhook_intake_mark_busy()  # outgoing webhooks wait for the burst
    started, idle_since = time.monotonic(), None
    while True:
        count, failed = inbound.webhook_events_drain(
            batch_size=settings.WHATSAPP_INTAKE_BATCH,
            on_batch=None if eager else intake.webhook_drain_wake,
            max_seconds=None if eager else DRAIN_TURN_SECONDS,
        )
        if count and not eager:
            intake.webhook_intake_mark_busy()  # for a turn more
        for event_id in failed:
            webhook_process.apply_async((event_id,), countdown=5)
        now = time.monotonic()
        if not eager and now - started >= DRAIN_TURN_SECONDS and inbound.webhook_events_waiting():
            # Back of the queue: what was queued meanwhile (the bot's turns, sends) goes first.
            intake.webhook_drain_wake(force=True)
            return
        # Keep looking for DRAIN_LINGER after finding nothing: a web process that saw this drain
        # pending did not queue another one for what it stored since (intake.webhook_drain_wake).
        idle_since = (idle_since or now) if count == 0 else None
        if idle_since is not None and now - idle_since >= intake.DRAIN_LINGER:
            return
        if idle_since is not None:
            time.sleep(DRAIN_POLL_SECONDS)


# The intake's tasks (they never send to Meta themselves: whatsapp.handlers).
# (as supportdesk.celery.INTAKE_TASKS routes them; the project's top is not imported from here)
INTAKE_TASKS = frozenset({"whatsapp.tasks.webhook_drain", "whatsapp.tasks.webhook_process"})

# How often a drain that found nothing looks again while it lingers.
DRAIN_POLL_SECONDS = 0.02
# How long one drain task works before it goes to the back of the queue.
DRAIN_TURN_SECONDS = 2.0


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=30)
def message_send(self, message_id: int) -> None:  # type: ignore[no-untyped-def]
    """Send a queued outbound message; retryable Meta answers are retried with backoff."""
    if self.request.is_eager:
        # Embedded mode (no broker): Celery cannot schedule a retry, retry in place (bounded by
        # the sender's own attempt limit).
        for _attempt in range(outbound.MAX_SEND_ATTEMPTS + 1):
            try:
                outbound.message_deliver(message_id=message_id, respect_backoff=False)
            except outbound.RetryLater:
                continue
            return
        return
    try:
        outbound.message_deliver(message_id=message_id)
    except outbound.RetryLater as later:
        logger.info("message %s: retry in %.1fs (%s)", message_id, later.countdown, later.reason)
        raise self.retry(countdown=later.countdown) from None


@shared_task(
    bind=True,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def message_send_batch(self, message_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Send the queued messages of one commit (a batch of bot replies), each at most once;
    those to retry (Meta's retryable answers) go on as ``message_send`` tasks of their own."""
    eager = bool(self.request.is_eager)
    retries = outbound.messages_deliver(message_ids=message_ids, respect_backoff=not eager)
    for message_id, countdown in retries:
        if eager:
            message_send.delay(message_id)  # retried in place (no broker to schedule it)
        else:
            message_send.apply_async((message_id,), countdown=countdown)


@shared_task(
    bind=True,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(GraphError,),
    retry_backoff=2,
    retry_jitter=True,
    max_retries=3,
)
def conversation_mark_read_on_whatsapp(self, conversation_id: int) -> None:  # type: ignore[no-untyped-def]
    outbound.conversation_mark_read_on_whatsapp(conversation_id=conversation_id)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=5)
def media_download(self, message_id: int) -> None:  # type: ignore[no-untyped-def]
    """Fetch an inbound message's media from Meta at once (its URL expires in minutes)."""
    if self.request.is_eager:
        for attempt in range(self.max_retries + 1):
            try:
                media.media_download(message_id=message_id, final=attempt >= self.max_retries)
            except media.MediaRetry:
                continue
            return
        return
    try:
        media.media_download(message_id=message_id, final=self.request.retries >= self.max_retries)
    except media.MediaRetry as retry:
        raise self.retry(countdown=retry.countdown) from None


@shared_task(ignore_result=True)
def outbound_requeue_stuck(older_than_seconds: float | None = None) -> int:
    """Celery beat, every minute: outbound messages left ``queued`` (broker outage) go out again
    (those queued longer than ``older_than_seconds``, :data:`outbound.STUCK_AFTER` by default)."""
    if older_than_seconds is None:
        return len(outbound.outbound_requeue_stuck())
    return len(outbound.outbound_requeue_stuck(older_than=timedelta(seconds=older_than_seconds)))


@shared_task(ignore_result=True)
def intake_lag_check() -> bool | None:
    """Celery beat, every minute: e-mail the admins (once per incident) when the webhook intake
    is more than ``INTAKE_LAG_ALERT_SECONDS`` behind."""
    return health.intake_lag_check()
