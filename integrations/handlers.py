"""The outgoing webhooks' domain-event handler (``settings.DOMAIN_EVENT_HANDLERS``)."""

from collections.abc import Sequence
from functools import partial

from django.db import transaction

from common.events import DomainEvent

from . import outbox
from .tasks import deliveries_queue_batches


class WebhookHandler:
    """A transactional outbox: the deliveries of a batch of events are written inside the
    emitting transaction (they commit, or roll back, with the change), and their tasks are
    queued once it commits.

    With a worker, one task per subscription takes the deliveries (``webhook_deliver_batch``),
    queued only when none is waiting in the queue already: a busy intake costs a Redis
    ``SET NX`` per committed batch and subscriber, and one task takes every delivery committed
    while it waited (``deliveries_queue_batches``).

    The queuing is registered here with ``transaction.on_commit`` rather than done in an
    ``on_commit(events)`` method: the handler is one instance shared by every thread, and only
    the transaction that wrote the rows knows their ids (a savepoint rolled back discards them,
    and their callback, together). No subscription: no query, nothing queued.
    """

    def in_transaction(self, events: Sequence[DomainEvent]) -> None:
        written = outbox.deliveries_record(events=events)
        if written:
            transaction.on_commit(partial(deliveries_queue_batches, written))
