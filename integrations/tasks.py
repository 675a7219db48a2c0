"""Celery tasks of outgoing webhooks: interfaces only (ids in, one outbox call).

They run on a queue of their own (``<default queue>.webhooks``, ``supportdesk.celery.route_task``)
so that a slow or failing receiver never delays the intake or the bot. ``acks_late`` with
``reject_on_worker_lost``: a worker killed mid-delivery leaves the task to another one, which
waits for the dead attempt's claim to expire (:func:`integrations.outbox.delivery_attempt`).
Attempts hold no database connection while waiting for the receiver: run the webhooks queue on a
threads pool (``-Q <queue>.webhooks --pool=threads -c 50``) and a slow receiver costs a thread.
"""

import functools
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.utils.module_loading import import_string

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
    """One attempt of a delivery (a retry, a redelivery, what the sweeper found); a failure with
    retries left schedules the next one. Then the task goes on as its subscription's lane
    (:func:`webhook_deliver_batch`) with what else is due.

    A subscription at its cap of attempts in flight: nothing is scheduled, one of those attempts'
    lanes takes this delivery when done. ``waited`` is kept for tasks queued by an earlier
    version. Embedded mode (eager tasks, no broker) makes one attempt: nothing can wait there.
    """
    attempt = outbox.delivery_attempt(delivery_id=delivery_id)
    if self.request.is_eager:
        return
    try:
        if attempt.retry_in is not None:  # failed: the next attempt
            webhook_deliver.apply_async((delivery_id, 0), countdown=attempt.retry_in)
        elif attempt.busy_for is not None:  # an attempt in flight (this task ran again after its
            # worker died, or is a duplicate): look once it is over
            webhook_deliver.apply_async((delivery_id, 0), countdown=attempt.busy_for + 1)
    except Exception:
        logger.exception(
            "delivery %s: could not schedule its retry (the sweeper will)", delivery_id
        )
    if attempt.made and attempt.subscription_id is not None:
        _lane(self, attempt.subscription_id, [])


@shared_task(**DELIVERY_TASK)
def webhook_deliver_batch(  # type: ignore[no-untyped-def]
    self, subscription_id: int, delivery_ids: list[str], waited: float = 0
) -> None:
    """The first attempts of a committed batch's deliveries to one subscription, one after
    another on one connection (:func:`integrations.outbox.deliveries_attempt_batch`), then the
    subscription's other due deliveries for a while (a lane; with no ``delivery_ids``, only
    that). Failures are retried as :func:`webhook_deliver` tasks; deliveries another worker holds
    are looked at again when its claim ends. Killed mid-batch, it runs again (acks late) and
    waits for its dead claim to expire.

    With no ``delivery_ids``, a wake (:func:`deliveries_queue_batches`) or a lane handing over:
    the subscription's pending-wake key is cleared before anything is claimed, so deliveries
    committed from now on queue another task, and those committed before are taken by this one.
    While the intake is busy it first waits (:func:`_yield_to_intake`; ``waited``: the seconds
    it has waited so far).
    """
    if not delivery_ids and not self.request.is_eager:
        if _yield_to_intake(subscription_id, waited):
            return
        cache.delete(_key(LANE_PENDING_KEY, subscription_id))
    _lane(self, subscription_id, delivery_ids)


#: A lane yielding to a busy intake looks again this often.
YIELD_POLL = 0.5


@functools.cache
def _intake_busy_port(path: str) -> Callable[[], bool]:
    return import_string(path)  # type: ignore[no-any-return]


def _intake_busy() -> bool:
    path = getattr(settings, "OUTGOING_WEBHOOKS_YIELD_TO", "")
    try:
        return bool(path and _intake_busy_port(path)())
    except Exception:
        logger.exception("could not ask %s whether the intake is busy", path)
        return False


def _yield_to_intake(subscription_id: int, waited: float) -> bool:
    """While the intake is busy, a wake waits (``OUTGOING_WEBHOOKS_YIELD_SECONDS`` at most,
    counted in ``waited``): it keeps the subscription's pending-wake key, so the deliveries
    committed meanwhile join it (no task of their own), and looks again in :data:`YIELD_POLL`.
    On a shared box the deliveries' database work would otherwise slow the acknowledging and
    storing of a burst; once it is over (or the time is up) the lane takes them all at once."""
    if float(waited) >= float(settings.OUTGOING_WEBHOOKS_YIELD_SECONDS) or not _intake_busy():
        return False
    key = _key(LANE_PENDING_KEY, subscription_id)
    try:
        cache.set(key, 1, timeout=LANE_PENDING_TTL)
        webhook_deliver_batch.apply_async(
            (subscription_id, [], float(waited) + YIELD_POLL), countdown=YIELD_POLL
        )
    except Exception:
        logger.exception("subscription %s: could not wait for the intake", subscription_id)
        return False
    return True


def _lane(task: Any, subscription_id: int, delivery_ids: list[str]) -> None:
    eager = task.request.is_eager
    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription_id,
        delivery_ids=delivery_ids,
        seconds=float("inf") if eager else None,  # embedded mode: nothing can wait for later
        lane_seconds=0.0 if eager else outbox.LANE_SECONDS,
    )
    if eager:
        return
    try:
        if outcome.held_for is not None:  # nothing left to claim, but claims held (dead ones?)
            _recheck_later(subscription_id, outcome.held_for + 1)
        if outcome.busy:
            webhook_deliver_batch.apply_async(
                (subscription_id, outcome.busy), countdown=outcome.busy_for + 1
            )
        for delivery_id, retry_in in outcome.retries:
            webhook_deliver.apply_async((delivery_id, 0), countdown=retry_in)
        # Out of time with more to do: new lanes go on (as many as the cap leaves room for).
        lanes = (1 if outcome.more else 0) + outcome.free_lanes
        for _ in range(lanes):
            webhook_deliver_batch.delay(subscription_id, [])
    except Exception:
        logger.exception(
            "subscription %s: could not schedule the next attempts (the sweeper will)",
            subscription_id,
        )


#: While a subscription's wake task (:func:`deliveries_queue_batches`) waits in the queue, this
#: key is set: later commits add their deliveries to what it will take instead of queuing more.
LANE_PENDING_KEY = "integrations:lane-pending:{queue}:{subscription_id}"
#: At most this long (a task waiting longer under load: another one is queued, never none).
LANE_PENDING_TTL = 10
#: Set while a look at claims held by other attempts (perhaps a killed worker's) is scheduled.
LANE_RECHECK_KEY = "integrations:lane-recheck:{queue}:{subscription_id}"


def _key(template: str, subscription_id: int) -> str:
    """One desk's key (desks, and test runs, may share a Redis: each has its own queue)."""
    queue = webhook_deliver_batch.app.conf.task_default_queue
    return template.format(queue=queue, subscription_id=subscription_id)


def deliveries_queue_batches(written: Iterable[tuple[int, object]]) -> None:
    """Queue the first attempts of a committed transaction's deliveries.

    With a worker (a broker): one *wake* per subscription, a lane task that takes the
    subscription's due deliveries oldest first (:func:`webhook_deliver_batch` with no ids), and
    only when none is waiting in the queue already (a Redis ``SET NX``): while one waits, every
    commit's deliveries join what it will take. So a busy intake costs a ``SET NX`` per commit
    and subscriber, and the webhooks worker one claim for many deliveries: the busier (or the
    lower its CPU priority), the more each task takes. The task clears the key before it
    claims, so a delivery committed later queues a new one: none is left behind.

    Embedded mode (eager tasks): one task per subscription (and per
    :data:`~integrations.outbox.BATCH_SIZE`) with its delivery ids, attempted in the process.
    """
    by_subscription: dict[int, list[str]] = {}
    for subscription_id, delivery_id in written:
        by_subscription.setdefault(subscription_id, []).append(str(delivery_id))
    if not webhook_deliver_batch.app.conf.task_always_eager:
        for subscription_id in by_subscription:
            _wake(subscription_id)
        return
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


def _wake(subscription_id: int) -> None:
    """Queue a lane for the subscription unless one is waiting in the queue already."""
    key = _key(LANE_PENDING_KEY, subscription_id)
    try:
        if cache.add(key, 1, timeout=LANE_PENDING_TTL):  # an unreachable cache says yes
            try:
                webhook_deliver_batch.delay(subscription_id, [])
            except Exception:
                cache.delete(key)
                raise
    except Exception:
        logger.exception(
            "could not queue the webhook deliveries to subscription %s; the sweeper will",
            subscription_id,
        )


def _recheck_later(subscription_id: int, seconds: float) -> None:
    """Look again at the subscription once the claims held now have ended (one look scheduled
    at a time): a worker killed mid-batch leaves its claims to expire, and nothing else would
    take those deliveries before the sweeper."""
    key = _key(LANE_RECHECK_KEY, subscription_id)
    if cache.add(key, 1, timeout=max(1, int(seconds))):
        webhook_deliver_batch.apply_async((subscription_id, []), countdown=seconds)


def deliveries_queue(delivery_ids: Iterable[object]) -> None:
    """Queue an attempt of each delivery; a broker outage leaves them to the sweeper."""
    for delivery_id in delivery_ids:
        try:
            webhook_deliver.delay(str(delivery_id))
        except Exception:
            logger.exception("could not queue webhook delivery %s; the sweeper will", delivery_id)


@shared_task(bind=True, acks_late=True, ignore_result=True)
def webhook_deliveries_sweep(self, grace_seconds: float | None = None) -> None:  # type: ignore[no-untyped-def]
    """Celery beat: queue again the pending deliveries whose attempt is overdue (by more than
    ``grace_seconds``, :data:`~integrations.outbox.SWEEP_GRACE` by default)."""
    due = (
        outbox.delivery_list_due()
        if grace_seconds is None
        else outbox.delivery_list_due(grace=timedelta(seconds=grace_seconds))
    )
    if due:
        logger.info("re-queuing %d overdue webhook deliveries", len(due))
    deliveries_queue(due)
