"""Celery tasks of outgoing webhooks: interfaces only (ids in, one outbox call).

They run on a queue of their own (``<default queue>.webhooks``, ``supportdesk.celery.route_task``)
so that a slow or failing receiver never delays the intake or the bot. ``acks_late`` with
``reject_on_worker_lost``: a worker killed mid-delivery leaves the task to another one, which
waits for the dead attempt's claim to expire (:func:`integrations.outbox.delivery_attempt`).
Attempts hold no database connection while waiting for the receiver: run the webhooks queue on a
threads pool (``-Q <queue>.webhooks --pool=threads -c 50``) and a slow receiver costs a thread.
"""

import logging
import random
from collections.abc import Iterable
from typing import Any

from celery import shared_task
from django.db import DatabaseError

from . import outbox

logger = logging.getLogger(__name__)

#: Both delivery tasks: acknowledged late and rejected on worker loss (a killed worker's task runs
#: again), retried with backoff while the database is unreachable.
DELIVERY_TASK: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(**DELIVERY_TASK)
def webhook_deliver(self, delivery_id: str, waited: int = 0) -> None:  # type: ignore[no-untyped-def]
    """One attempt of a delivery; a failure with retries left schedules the next one.

    ``waited``: how many times this delivery already stepped aside for its subscription's other
    attempts in flight (it then waits twice as long, up to a minute, before looking again).
    Embedded mode (eager tasks, no broker) makes one attempt: nothing can wait for a retry there.
    """
    attempt = outbox.delivery_attempt(delivery_id=delivery_id)
    if self.request.is_eager:
        return
    args: tuple[str, int] = (delivery_id, 0)
    if attempt.retry_in is not None:  # failed: the next attempt
        countdown = attempt.retry_in
    elif attempt.busy_for is not None:  # an attempt in flight (this task ran again after its
        countdown = attempt.busy_for + 1  # worker died, or is a duplicate): look once it is over
    elif attempt.throttled:  # a slow subscriber's share of the workers is in use: wait a turn
        countdown = throttled_wait(waited)
        args = (delivery_id, waited + 1)
    else:
        return
    try:
        webhook_deliver.apply_async(args, countdown=countdown)
    except Exception:
        logger.exception(
            "delivery %s: could not schedule its retry (the sweeper will)", delivery_id
        )


#: The longest a throttled delivery waits before it looks again, in seconds.
THROTTLED_WAIT_MAX = 60


def throttled_wait(waited: int) -> float:
    """Seconds a throttled delivery (or batch) waits before looking again: twice as long each
    time it stepped aside, up to :data:`THROTTLED_WAIT_MAX`, jittered."""
    return min(THROTTLED_WAIT_MAX, 2**waited) * random.uniform(0.5, 1.0)  # noqa: S311


@shared_task(**DELIVERY_TASK)
def webhook_deliver_batch(  # type: ignore[no-untyped-def]
    self, subscription_id: int, delivery_ids: list[str], waited: int = 0
) -> None:
    """The first attempts of a committed batch's deliveries to one subscription, one after
    another on one connection (:func:`integrations.outbox.deliveries_attempt_batch`). What it
    does not finish goes on as :func:`webhook_deliver` tasks: retries, the tail of a batch that
    ran out of time, deliveries another worker holds. Killed mid-batch, it runs again (acks
    late) and waits for its dead claim to expire."""
    eager = self.request.is_eager
    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription_id,
        delivery_ids=delivery_ids,
        seconds=float("inf") if eager else None,  # embedded mode: nothing can wait for later
    )
    if eager:
        return
    try:
        if outcome.throttled:
            webhook_deliver_batch.apply_async(
                (subscription_id, delivery_ids, waited + 1), countdown=throttled_wait(waited)
            )
            return
        if outcome.busy:
            webhook_deliver_batch.apply_async(
                (subscription_id, outcome.busy), countdown=outcome.busy_for + 1
            )
        for delivery_id, retry_in in outcome.retries:
            webhook_deliver.apply_async((delivery_id, 0), countdown=retry_in)
    except Exception:
        logger.exception(
            "subscription %s: could not schedule the batch's next attempts (the sweeper will)",
            subscription_id,
        )
    deliveries_queue(outcome.left)


def deliveries_queue_batches(written: Iterable[tuple[int, object]]) -> None:
    """Queue the first attempts of a committed transaction's deliveries: one task per
    subscription (and per :data:`~integrations.outbox.BATCH_SIZE`), not one per delivery."""
    by_subscription: dict[int, list[str]] = {}
    for subscription_id, delivery_id in written:
        by_subscription.setdefault(subscription_id, []).append(str(delivery_id))
    size = outbox.BATCH_SIZE
    for subscription_id, ids in by_subscription.items():
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            try:
                webhook_deliver_batch.delay(subscription_id, chunk)
            except Exception:
                logger.exception(
                    "could not queue %d webhook deliveries to subscription %s; the sweeper will",
                    len(chunk),
                    subscription_id,
                )


def deliveries_queue(delivery_ids: Iterable[object]) -> None:
    """Queue an attempt of each delivery; a broker outage leaves them to the sweeper."""
    for delivery_id in delivery_ids:
        try:
            webhook_deliver.delay(str(delivery_id))
        except Exception:
            logger.exception("could not queue webhook delivery %s; the sweeper will", delivery_id)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def webhook_deliveries_sweep(self) -> None:  # type: ignore[no-untyped-def]
    """Celery beat: queue again the pending deliveries whose attempt is overdue."""
    due = outbox.delivery_list_due()
    if due:
        logger.info("re-queuing %d overdue webhook deliveries", len(due))
    deliveries_queue(due)
