"""The transactional outbox of outgoing webhooks (contract §8).

- :func:`deliveries_record` writes one :class:`~integrations.models.WebhookDelivery` per public
  event and matching active subscription, inside the transaction that emitted the events;
- :func:`delivery_attempt` makes one attempt: it claims the delivery under the row lock
  (``select_for_update(skip_locked)``, so two workers never make the same attempt at once) for
  at most the time an attempt can take, then POSTs with no database connection held (a slow
  receiver costs a worker thread, nothing more). A worker killed mid-request leaves its claim to
  expire; its task, acknowledged late and rejected on worker loss, runs again and waits for it;
- :func:`delivery_list_due` is what the beat sweeper queues again (lost tasks, broker outages).

One slow subscriber never holds up the others: its attempts in flight are capped
(``OUTGOING_WEBHOOKS_MAX_IN_FLIGHT`` per subscription). A task over the cap does nothing and
schedules nothing (``throttled``): each attempt in flight is a *lane* that, once done, goes on
with its subscription's next due deliveries (:func:`deliveries_attempt_batch`), so a slow
receiver's backlog waits in the table, costing no task, no timer and no query while it waits.

Tasks (``integrations.tasks``) call these; nothing here queues a task.
"""

import contextlib
import dataclasses
import json
import logging
import random
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.events import DomainEvent

from . import selectors, signing
from .addresses import UnsafeAddress, url_resolve_public
from .metrics import delivery_counted
from .models import DeliveryStatus, OutgoingEvent, WebhookDelivery, WebhookSubscription
from .transport import PinnedSession

logger = logging.getLogger(__name__)

#: Failed attempts are retried for this long after the event (then the delivery is ``failed``).
RETRY_FOR = timedelta(hours=24)
#: The first retry comes after about this many seconds (±20 % jitter: within 30 s), each next one
#: after twice as long, at most RETRY_CAP: about 35 attempts over the 24 hours.
FIRST_RETRY = 15.0
RETRY_CAP = 3600.0
#: A bound on attempts besides the time window (a redelivery starts a new window).
MAX_ATTEMPTS = 60
#: A task may run this early (clock skew between hosts) and still make its attempt.
EARLY_TOLERANCE = timedelta(seconds=2)
#: The sweeper leaves a due delivery this long to its own scheduled task before queuing another.
SWEEP_GRACE = timedelta(seconds=60)
USER_AGENT = "SupportDesk-Webhooks/1.0"
_ERROR_BODY_BYTES = 300


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: exponential, capped, jittered."""
    base = min(RETRY_CAP, FIRST_RETRY * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret


def _data(event: DomainEvent) -> Any:
    webhook_data = getattr(event, "webhook_data", None)
    if webhook_data is not None:
        return webhook_data()
    return {k: v for k, v in event.to_json().items() if k not in {"type", "occurred_at"}}


def deliveries_record(*, events: Sequence[DomainEvent]) -> list[tuple[int, uuid.UUID]]:
    """Write the deliveries of ``events`` (inside the emitting transaction; one INSERT for the
    batch's events and one for their deliveries, and no query at all when nobody subscribes).
    Each event's data is serialised and stored once, whatever the number of subscribers.
    Internal events are never delivered. Returns (subscription id, delivery id) of each row
    written, for the caller to queue once the transaction commits."""
    public = [event for event in events if event.public]
    if not public:
        return []
    active = selectors.subscription_list_active_cached()
    if not active:
        return []
    wanted = []
    for event in public:
        subscribers = [s.id for s in active if s.wants(event.type)]
        if subscribers:
            stored = OutgoingEvent(
                type=event.type, occurred_at=event.occurred_at, data=_dumps(_data(event))
            )
            wanted.append((stored, subscribers))
    if not wanted:
        return []
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _record_postgresql(wanted, now)
    OutgoingEvent.objects.bulk_create([stored for stored, _ in wanted])
    rows = [
        WebhookDelivery(
            id=uuid.uuid4(),
            subscription_id=subscription_id,
            event=stored.type,
            outgoing_event=stored,
            next_attempt_at=now,
            retry_until=now + RETRY_FOR,
            created_at=now,
            updated_at=now,
        )
        for stored, subscribers in wanted
        for subscription_id in subscribers
    ]
    WebhookDelivery.objects.bulk_create(rows)
    return [(row.subscription_id, row.id) for row in rows]


def _record_postgresql(
    wanted: Sequence[tuple[OutgoingEvent, list[int]]], now: Any
) -> list[tuple[int, uuid.UUID]]:
    """The same two INSERTs, written for PostgreSQL: the fan-out (a row per event and subscriber,
    with its uuid) is made by the database from two arrays of ids. ``bulk_create`` spent ~1 ms
    of the intake worker's CPU per event on preparing eleven values a row; this is what lets a
    busy intake feed several subscribers (``bench/webhook_ingest.py --subscribers 3``)."""
    events, deliveries = OutgoingEvent._meta.db_table, WebhookDelivery._meta.db_table
    # One JSON document for the events, their data inlined as the JSON it is: ``json`` (not
    # ``jsonb``) keeps each value's text as written, so ``d::text`` is the very bytes serialised.
    # Rows come back in the order given (ORDER BY n), as Django's bulk_create relies on too.
    document = (
        "["
        + ",".join(
            f'{{"t":{json.dumps(stored.type)},"o":{json.dumps(stored.occurred_at)},"d":{stored.data}}}'
            for stored, _ in wanted
        )
        + "]"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {events} (created_at, updated_at, type, occurred_at, data) "  # noqa: S608
            "SELECT %s, %s, e.t, e.o, e.d::text FROM ROWS FROM "
            "(json_to_recordset(%s::json) AS (t text, o text, d json)) "
            "WITH ORDINALITY AS e(t, o, d, n) ORDER BY e.n RETURNING id",
            [now, now, document],
        )
        event_ids = [row[0] for row in cursor.fetchall()]
        per_event = [
            (event_id, stored.type, subscription_id)
            for event_id, (stored, subscribers) in zip(event_ids, wanted, strict=True)
            for subscription_id in subscribers
        ]
        cursor.execute(
            f"INSERT INTO {deliveries} (id, created_at, updated_at, subscription_id, event, "  # noqa: S608
            "outgoing_event_id, status, attempts, last_error, next_attempt_at, retry_until) "
            "SELECT gen_random_uuid(), %s, %s, s, t, e, %s, 0, '', %s, %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) AS d(e, t, s) "
            "RETURNING subscription_id, id",
            [
                now,
                now,
                DeliveryStatus.PENDING.value,
                now,
                now + RETRY_FOR,
                [e for e, _, _ in per_event],
                [t for _, t, _ in per_event],
                [s for _, _, s in per_event],
            ],
        )
        return [(subscription_id, delivery_id) for subscription_id, delivery_id in cursor]


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), cls=DjangoJSONEncoder)


def delivery_body(delivery: WebhookDelivery, stored: OutgoingEvent | None = None) -> bytes:
    """The raw body of a delivery, keys in contract §8's order: its own id, then its event's
    type, time and data (the stored bytes, as every attempt sends them)."""
    stored = stored or delivery.outgoing_event
    head = _dumps({"id": str(delivery.pk), "type": stored.type, "created_at": stored.occurred_at})
    return f'{head[:-1]},"data":{stored.data}}}'.encode()


def delivery_headers(delivery: WebhookDelivery, *, secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-SupportDesk-Event": delivery.event,
        "X-SupportDesk-Delivery": str(delivery.pk),
        signing.HEADER: signing.sign(secret, body, int(time.time())),
    }


@dataclasses.dataclass(frozen=True)
class Attempt:
    """What one call of :func:`delivery_attempt` did. ``retry_in``: seconds until the next
    attempt should be made (a failure with retries left); ``busy_for``: another worker is making
    an attempt, which cannot last longer than that many seconds (look again then)."""

    made: bool
    status: str | None = None
    retry_in: float | None = None
    busy_for: float | None = None
    #: The subscription already has its share of attempts in flight (a slow receiver): this one
    #: waits its turn instead of taking a worker thread that other subscribers need (one of
    #: those attempts' lanes takes it when done: see :func:`deliveries_attempt_batch`).
    throttled: bool = False
    #: The subscription of an attempt made: its task goes on as a lane.
    subscription_id: int | None = None


def claim_seconds() -> float:
    """How long one attempt may take at most: connecting and waiting for the answer, plus slack."""
    return 2 * float(settings.OUTGOING_WEBHOOK_TIMEOUT) + 5


def _resolve(url: str) -> list[str] | str:
    """The receiver's checked addresses, or why it is refused. Done again right before
    connecting (DNS may have changed), and the connection goes to these very addresses
    (:mod:`integrations.transport`)."""
    try:
        return url_resolve_public(url)
    except UnsafeAddress as refused:
        return f"refused: {refused}"


#: A 2xx answer's body up to this size is read, so that its connection can carry the next
#: delivery of a batch; a larger (or unsized) one is not waited for, its connection is closed.
_DRAIN_BYTES = 64 * 1024


def _drain(response: requests.Response) -> None:
    length = response.headers.get("Content-Length", "")
    if not length.isdigit() or int(length) > _DRAIN_BYTES:
        return
    with contextlib.suppress(Exception):  # the delivery succeeded; only the connection is lost
        response.raw.read(int(length), decode_content=False)


def _post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    addresses: list[str] | None = None,
    session: PinnedSession | None = None,
) -> tuple[int | None, str]:
    """POST once: (status code or None, error text; empty when the answer is a 2xx)."""
    if addresses is None:
        resolved = _resolve(url)
        if isinstance(resolved, str):
            return None, resolved
        addresses = resolved
    timeout = settings.OUTGOING_WEBHOOK_TIMEOUT
    try:
        with contextlib.ExitStack() as stack:
            if session is None:
                session = stack.enter_context(PinnedSession())
            # Streamed: the status is all we need, the body is not waited for.
            response = stack.enter_context(
                session.post(url, addresses=addresses, data=body, headers=headers, timeout=timeout)
            )
            code = response.status_code
            if 200 <= code < 300:
                _drain(response)
                return code, ""
            try:
                snippet = response.raw.read(_ERROR_BODY_BYTES, decode_content=True)
            except Exception:  # the status says enough
                snippet = b""
            text = snippet.decode("utf-8", "replace").strip()
            return code, f"HTTP {code}" + (f": {text}" if text else "")
    except requests.Timeout:
        return None, f"timed out after {timeout:g} s"
    except requests.ConnectionError as exc:
        return None, f"connection failed: {exc}"
    except requests.RequestException as exc:
        return None, f"request failed: {exc}"


def _give_up(delivery: WebhookDelivery, now: Any) -> bool:
    if delivery.attempts >= MAX_ATTEMPTS:
        return True
    until = delivery.retry_until or (delivery.created_at + RETRY_FOR)
    return bool(now >= until)


def _claim(delivery_id: str) -> Attempt | tuple[WebhookDelivery, WebhookSubscription]:
    """Under the row lock (skipped when another worker holds it): is an attempt to be made now?
    If so the delivery is claimed (``claimed_until``) and the lock released at once, so that no
    database connection is held while the receiver takes its time."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_related("outgoing_event")
            .select_for_update(skip_locked=True, of=("self",))
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING)
            .first()
        )
        if delivery is None:  # done, gone, or being claimed this very moment
            return Attempt(made=False)
        now = timezone.now()
        if delivery.claimed_until and delivery.claimed_until > now:
            busy_for = (delivery.claimed_until - now).total_seconds()
            return Attempt(made=False, status=delivery.status, busy_for=busy_for)
        if delivery.next_attempt_at and delivery.next_attempt_at > now + EARLY_TOLERANCE:
            return Attempt(made=False, status=delivery.status)  # a duplicate: its own task comes
        subscription = WebhookSubscription.objects.filter(pk=delivery.subscription_id).first()
        if subscription is None or not subscription.is_active:
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = (
                "the subscription was deleted"
                if subscription is None
                else "the subscription is not active"
            )
            delivery.next_attempt_at = delivery.claimed_until = None
            delivery.save(
                update_fields=[
                    "status",
                    "last_error",
                    "next_attempt_at",
                    "claimed_until",
                    "updated_at",
                ]
            )
            delivery_counted("failed")
            return Attempt(made=False, status=delivery.status)
        limit = settings.OUTGOING_WEBHOOKS_MAX_IN_FLIGHT
        if limit and _in_flight(subscription.pk, now) >= limit:
            return Attempt(made=False, status=delivery.status, throttled=True)
        delivery.claimed_until = now + timedelta(seconds=claim_seconds())
        delivery.save(update_fields=["claimed_until", "updated_at"])
    return delivery, subscription


def _in_flight(subscription_id: int, now: Any) -> int:
    """Attempts in flight: a batch's deliveries (one ``claim_id``) are made one at a time."""
    return int(
        WebhookDelivery.objects.filter(
            subscription_id=subscription_id, status=DeliveryStatus.PENDING, claimed_until__gt=now
        ).aggregate(n=Count(Coalesce("claim_id", "id"), distinct=True))["n"]
    )


def _record(
    claimed: WebhookDelivery, *, code: int | None, error: str
) -> tuple[WebhookDelivery, float | None] | None:
    """Write the outcome of an attempt, if the claim is still ours (None otherwise)."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=claimed.pk).first()
        if (
            delivery is None
            or delivery.status != DeliveryStatus.PENDING
            or delivery.claimed_until != claimed.claimed_until
        ):
            return None  # deleted, or our claim expired and another worker took it over
        now = timezone.now()
        delivery.attempts += 1
        delivery.response_code = code
        delivery.claimed_until = delivery.claim_id = None
        retry_in = None
        if not error:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.delivered_at = now
            delivery.last_error = ""
            delivery.next_attempt_at = None
        elif _give_up(delivery, now):
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = error
            delivery.next_attempt_at = None
        else:
            retry_in = retry_delay(delivery.attempts)
            delivery.last_error = error
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "response_code",
                "last_error",
                "next_attempt_at",
                "delivered_at",
                "claimed_until",
                "claim_id",
                "updated_at",
            ]
        )
    delivery_counted(
        "succeeded" if not error else ("retrying" if retry_in is not None else "failed")
    )
    if error:
        logger.info(
            "webhook delivery %s (%s) attempt %s failed: %s",
            delivery.pk,
            delivery.event,
            delivery.attempts,
            error,
        )
    return delivery, retry_in


def delivery_attempt(*, delivery_id: str) -> Attempt:
    """Make one attempt of a pending delivery that is due, never two at once.

    Nothing is done (``made`` False) when the delivery is gone, no longer pending, claimed by
    another worker's attempt (``busy_for`` says until when) or not due yet (a duplicate task:
    the one scheduled for it will come). Any 2xx: ``succeeded``. Anything else: the next attempt
    is scheduled with backoff, or the delivery is ``failed`` once its retry window has passed.
    """
    claim = _claim(delivery_id)
    if isinstance(claim, Attempt):
        return claim
    delivery, subscription = claim
    if not connection.in_atomic_block:
        # Back to the pool while the receiver takes its time (a worker thread keeps its
        # connection between queries otherwise): slow receivers never exhaust the database.
        connection.close()
    body = delivery_body(delivery)
    code, error = _post(
        subscription.url,
        body=body,
        headers=delivery_headers(delivery, secret=subscription.secret, body=body),
    )
    recorded = _record(delivery, code=code, error=error)
    if recorded is None:
        return Attempt(made=True, subscription_id=subscription.pk)
    delivery, retry_in = recorded
    return Attempt(
        made=True, status=delivery.status, retry_in=retry_in, subscription_id=subscription.pk
    )


#: A batch keeps making its attempts one after another for this long; what is left then goes
#: back to one task per delivery (a slow receiver gets its share of parallel attempts).
BATCH_SECONDS = 1.0
#: At most this many deliveries in one batch task.
BATCH_SIZE = 100
#: A lane task with no deliveries of its own starts with this many of the subscription's due ones.
LANE_FIRST_CLAIM = 10
#: A lane goes on with its subscription's next due deliveries for this long, then hands over to
#: a new task (a worker's thread is never held for ever; a redeploy is not kept waiting).
LANE_SECONDS = 10.0


@dataclasses.dataclass
class BatchOutcome:
    """What :func:`deliveries_attempt_batch` did, for its task to schedule what follows."""

    made: int = 0
    #: (delivery id, seconds until its next attempt): failures with retries left.
    retries: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    #: Claimed by another worker's attempt (or locked this instant): look again after ``busy_for``.
    busy: list[str] = dataclasses.field(default_factory=list)
    busy_for: float = 0.0
    #: Not attempted within :data:`BATCH_SECONDS`: released, for lanes to take.
    left: list[str] = dataclasses.field(default_factory=list)
    #: Nothing attempted: the subscription has its share of attempts in flight already (those
    #: attempts' lanes take the deliveries when they are done with theirs).
    throttled: bool = False
    #: The lane ran out of time with deliveries perhaps still due: a new task goes on with them.
    more: bool = False
    #: More lanes that may take ``left`` in parallel (the room under the subscription's cap).
    free_lanes: int = 0
    #: A lane found nothing more to claim while other attempts hold claims on the subscription's
    #: pending deliveries: the earliest of those claims ends in this many seconds. Perhaps a
    #: worker killed mid-batch: nothing but a look once the claim has expired would take them.
    held_for: float | None = None


def _claim_batch(
    subscription: WebhookSubscription, delivery_ids: Sequence[str], outcome: BatchOutcome
) -> list[WebhookDelivery]:
    """Claim, in one short transaction, those of ``delivery_ids`` that are pending, due and not
    claimed by anyone; the others are sorted into ``outcome`` (busy) or dropped (done, gone, or
    not due: a duplicate task, their own comes)."""
    now = timezone.now()
    with transaction.atomic():
        claimable = list(
            WebhookDelivery.objects.select_related("outgoing_event")
            .select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=delivery_ids, subscription_id=subscription.pk)
            .filter(_claimable(now))
            .order_by("created_at", "id")
        )
        _mark_claimed(claimable, now)
    if len(claimable) < len(delivery_ids):
        taken = {str(d.pk) for d in claimable}
        for pk, claimed_until, next_attempt_at in WebhookDelivery.objects.filter(
            pk__in=[i for i in delivery_ids if i not in taken], status=DeliveryStatus.PENDING
        ).values_list("pk", "claimed_until", "next_attempt_at"):
            if next_attempt_at and next_attempt_at > now + EARLY_TOLERANCE:
                continue  # not due: the task scheduled for it will come
            # Claimed by an attempt in flight, or locked by a worker this very moment.
            busy_for = (claimed_until - now).total_seconds() if claimed_until else 0.0
            outcome.busy.append(str(pk))
            outcome.busy_for = max(outcome.busy_for, busy_for, 1.0)
    return claimable


def _claimable(now: Any) -> Q:
    """Pending, claimed by nobody (or a claim expired) and due: what an attempt may take now."""
    return (
        Q(status=DeliveryStatus.PENDING)
        & (Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + EARLY_TOLERANCE))
    )


def _mark_claimed(claimable: Sequence[WebhookDelivery], now: Any) -> None:
    """Claim ``claimable`` (locked by the caller's transaction) together: one ``claim_id``."""
    if not claimable:
        return
    until, claim = now + timedelta(seconds=claim_seconds()), uuid.uuid4()
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in claimable]).update(
        claimed_until=until, claim_id=claim, updated_at=now
    )
    for delivery in claimable:
        delivery.claimed_until, delivery.claim_id = until, claim


def _claim_next(subscription: WebhookSubscription, limit: int) -> list[WebhookDelivery]:
    """Claim the subscription's next ``limit`` deliveries that are pending, due and claimed by
    nobody, oldest due first: what a lane (:func:`deliveries_attempt_batch`) goes on with."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(subscription_id=subscription.pk).filter(_claimable(now))
    if not due.exists():  # the usual answer, in one query instead of a transaction's three
        return []
    with transaction.atomic():
        claimable = list(
            due.select_related("outgoing_event")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by(F("next_attempt_at").asc(nulls_first=True), "created_at")[:limit]
        )
        _mark_claimed(claimable, now)
    return claimable


def _release(deliveries: Sequence[WebhookDelivery]) -> None:
    """Give up the claims of deliveries not attempted (they are queued one by one)."""
    if deliveries:
        WebhookDelivery.objects.filter(
            pk__in=[d.pk for d in deliveries], claim_id=deliveries[0].claim_id
        ).update(claimed_until=None, claim_id=None, updated_at=timezone.now())


def _record_successes(successes: Sequence[tuple[WebhookDelivery, int]]) -> None:
    """One UPDATE per response code for the batch's successful attempts (still ours)."""
    if not successes:
        return
    now = timezone.now()
    by_code: dict[int, list[uuid.UUID]] = {}
    for delivery, code in successes:
        by_code.setdefault(code, []).append(delivery.pk)
    claim = successes[0][0].claim_id
    for code, pks in by_code.items():
        updated = WebhookDelivery.objects.filter(
            pk__in=pks, claim_id=claim, status=DeliveryStatus.PENDING
        ).update(
            status=DeliveryStatus.SUCCEEDED,
            attempts=F("attempts") + 1,
            response_code=code,
            delivered_at=now,
            last_error="",
            next_attempt_at=None,
            claimed_until=None,
            claim_id=None,
            updated_at=now,
        )
        delivery_counted("succeeded", updated)


def deliveries_attempt_batch(
    *,
    subscription_id: int,
    delivery_ids: Sequence[str],
    seconds: float | None = None,
    lane_seconds: float = 0.0,
) -> BatchOutcome:
    """Attempt deliveries of one subscription one after another on one connection: one claim
    and one success write for the lot instead of a few queries each (what lets a busy intake
    feed several subscribers without the database noticing).

    The same rules as :func:`delivery_attempt`: a delivery is attempted only when pending, due
    and claimed by nobody else; a failure is recorded on its own with its backoff. The batch
    counts as one attempt in flight for the subscription's cap. After ``seconds``
    (:data:`BATCH_SECONDS`) the deliveries not yet attempted are released, and
    ``outcome.free_lanes`` says how many lanes may take them in parallel (a slow receiver gets
    its share of attempts, and never holds up a batch's tail).

    A *lane* (``lane_seconds`` > 0, or no ``delivery_ids``): once done with its deliveries the
    batch goes on with the subscription's next due ones (:func:`_claim_next`), for up to
    ``lane_seconds``. So a subscriber at its cap needs no task of its own to wait and look again
    (every attempt in flight takes the next when it is done), and a slow receiver's backlog costs
    two writes per delivery and nothing while it waits.
    """
    outcome = BatchOutcome()
    subscription = WebhookSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None or not subscription.is_active:
        for delivery_id in delivery_ids:  # each one is marked failed, with the reason
            delivery_attempt(delivery_id=delivery_id)
        return outcome
    started = time.monotonic()
    limit = settings.OUTGOING_WEBHOOKS_MAX_IN_FLIGHT
    if limit and _in_flight(subscription.pk, timezone.now()) >= limit:
        outcome.throttled = True
        return outcome
    budget = BATCH_SECONDS if seconds is None else seconds
    lane = lane_seconds > 0 or not delivery_ids
    if delivery_ids:
        claimed = _claim_batch(subscription, delivery_ids, outcome)
    else:
        claimed = _claim_next(subscription, LANE_FIRST_CLAIM)
    while claimed:
        if not connection.in_atomic_block:
            connection.close()  # back to the pool while the receiver answers
        batch_started, left_before = time.monotonic(), len(outcome.left)
        successes, failures = _post_batch(subscription, claimed, budget, outcome)
        made = len(successes) + len(failures)
        _record_successes(successes)
        _record_failures(failures, outcome)
        cut = len(outcome.left) - left_before
        if cut:  # a slow receiver: what is left may go out on parallel lanes
            room = limit - _in_flight(subscription.pk, timezone.now()) if limit else cut
            outcome.free_lanes = max(outcome.free_lanes, min(cut, room - (1 if lane else 0)))
        if not lane:
            break
        if time.monotonic() - started >= lane_seconds:
            outcome.more = True
            break
        claimed = _claim_next(subscription, _next_claim_size(batch_started, made, budget, cut))
    if lane and not claimed:
        outcome.held_for = _claims_end_in(subscription.pk)
    return outcome


def _next_claim_size(batch_started: float, made: int, budget: float, cut: int) -> int:
    """How many deliveries a lane claims next: as many as go out within half the budget at the
    pace of its last lot (one at a time from a slow receiver). A worker short of CPU (its
    webhooks run at the lowest priority while the intake is busy) sends more slowly than its
    receiver answers: it then claims only what it can send within its budget, instead of a
    full batch of which it would release most, then claim again (two writes a delivery each
    time, for nothing)."""
    if cut:
        return 1
    per_request = (time.monotonic() - batch_started) / max(1, made)
    if per_request <= 0:
        return BATCH_SIZE
    return max(1, int(min(float(BATCH_SIZE), budget / 2 / per_request)))


def _claims_end_in(subscription_id: int) -> float | None:
    """Seconds until the earliest claim on the subscription's pending deliveries ends (None:
    no claim is held)."""
    now = timezone.now()
    earliest = WebhookDelivery.objects.filter(
        subscription_id=subscription_id, status=DeliveryStatus.PENDING, claimed_until__gt=now
    ).aggregate(earliest=Min("claimed_until"))["earliest"]
    return None if earliest is None else (earliest - now).total_seconds()


Failure = tuple[WebhookDelivery, int | None, str]


def _post_batch(
    subscription: WebhookSubscription,
    claimed: Sequence[WebhookDelivery],
    budget: float,
    outcome: BatchOutcome,
) -> tuple[list[tuple[WebhookDelivery, int]], list[Failure]]:
    """POST the claimed deliveries in order on one connection for ``budget`` seconds; release
    the rest (added to ``outcome.left``)."""
    resolved = _resolve(subscription.url)
    successes: list[tuple[WebhookDelivery, int]] = []
    failures: list[Failure] = []
    started = time.monotonic()
    with PinnedSession() as session:
        for index, delivery in enumerate(claimed):
            if index and time.monotonic() - started > budget:
                rest = claimed[index:]
                _release(rest)
                outcome.left.extend(str(d.pk) for d in rest)
                break
            outcome.made += 1
            if isinstance(resolved, str):
                failures.append((delivery, None, resolved))
                continue
            body = delivery_body(delivery)
            code, error = _post(
                subscription.url,
                body=body,
                headers=delivery_headers(delivery, secret=subscription.secret, body=body),
                addresses=resolved,
                session=session,
            )
            if error:
                failures.append((delivery, code, error))
            else:
                successes.append((delivery, code or 200))
    return successes, failures


def _record_failures(failures: Sequence[Failure], outcome: BatchOutcome) -> None:
    for claimed, code, error in failures:
        recorded = _record(claimed, code=code, error=error)
        if recorded is not None and recorded[1] is not None:
            outcome.retries.append((str(claimed.pk), recorded[1]))


def delivery_list_due(*, limit: int = 500, grace: timedelta = SWEEP_GRACE) -> list[str]:
    """Pending deliveries whose attempt is overdue by more than ``grace``: their task was lost
    (a broker outage, a purge, a worker killed). Queuing one twice is harmless (the claim
    decides)."""
    now = timezone.now()
    return [
        str(pk)
        for pk in WebhookDelivery.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=now - grace,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    ]
