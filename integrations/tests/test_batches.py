"""First attempts in batches: a committed transaction's deliveries to one subscription go out in
one task, one after another on one connection, with one claim and one success write for the
lot; what a batch cannot finish (failures, time out, deliveries held by another worker) goes on
as single deliveries with the same rules and the same delivery ids."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from integrations import outbox, tasks
from integrations.models import DeliveryStatus, WebhookDelivery

from .factories import OutgoingEventFactory, WebhookSubscriptionFactory
from .receiver import Receiver

pytestmark = pytest.mark.django_db


def _pending(subscription: Any, count: int, **fields: Any) -> list[WebhookDelivery]:
    return [
        WebhookDelivery.objects.create(
            subscription=subscription,
            event="message.created",
            outgoing_event=OutgoingEventFactory(type="message.created", data=json.dumps({"n": n})),
            next_attempt_at=fields.pop("next_attempt_at", timezone.now()),
            **fields,
        )
        for n in range(count)
    ]


def _ids(deliveries: list[WebhookDelivery]) -> list[str]:
    return [str(d.pk) for d in deliveries]


@pytest.fixture
def keep_alive_receiver(settings: Any) -> Any:
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = True
    running = Receiver(keep_alive=True).start()
    try:
        yield running
    finally:
        running.stop()


def test_a_batch_goes_out_in_order_on_one_connection(keep_alive_receiver):
    subscription = WebhookSubscriptionFactory(url=keep_alive_receiver.url)
    batch = _pending(subscription, 5)

    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=_ids(batch)
    )

    assert outcome.made == 5
    received = keep_alive_receiver.wait_for(5)
    assert [r.headers["X-SupportDesk-Delivery"] for r in received] == _ids(batch)
    assert len({r.client for r in received}) == 1  # one connection for the five
    rows = WebhookDelivery.objects.filter(pk__in=_ids(batch))
    assert {(d.status, d.attempts, d.response_code) for d in rows} == {
        (DeliveryStatus.SUCCEEDED, 1, 200)
    }
    assert all(d.delivered_at and d.claimed_until is None and d.claim_id is None for d in rows)


def test_a_batch_costs_the_same_queries_for_five_deliveries_as_for_fifty(
    receiver, django_assert_num_queries
):
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    small, large = _pending(subscription, 5), _pending(subscription, 50)

    # subscription, cap, claim (BEGIN, SELECT FOR UPDATE, UPDATE, COMMIT), successes
    with django_assert_num_queries(7) as small_queries:
        outbox.deliveries_attempt_batch(subscription_id=subscription.pk, delivery_ids=_ids(small))
    with django_assert_num_queries(len(small_queries.captured_queries)):
        outbox.deliveries_attempt_batch(subscription_id=subscription.pk, delivery_ids=_ids(large))

    assert len(receiver.wait_for(55)) == 55


def test_a_failure_in_a_batch_is_retried_alone_and_the_rest_succeed(receiver):
    receiver.answer(200, 500)
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    first, failing, third = _pending(subscription, 3)

    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=_ids([first, failing, third])
    )

    assert [delivery_id for delivery_id, _ in outcome.retries] == [str(failing.pk)]
    failing.refresh_from_db()
    assert (failing.status, failing.attempts, failing.response_code) == ("pending", 1, 500)
    assert failing.last_error == "HTTP 500: receiver says no"
    assert failing.next_attempt_at > timezone.now() and failing.claim_id is None
    for done in (first, third):
        done.refresh_from_db()
        assert done.status == DeliveryStatus.SUCCEEDED


def test_out_of_time_the_rest_of_a_batch_is_released_to_single_tasks(receiver):
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    batch = _pending(subscription, 4)

    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=_ids(batch), seconds=0
    )

    assert outcome.made == 1  # the first is always attempted
    assert outcome.left == _ids(batch[1:])
    left = WebhookDelivery.objects.filter(pk__in=outcome.left)
    assert {(d.status, d.attempts, d.claimed_until, d.claim_id) for d in left} == {
        (DeliveryStatus.PENDING, 0, None, None)
    }
    for delivery_id in outcome.left:  # what its task then does, one task each
        assert outbox.delivery_attempt(delivery_id=delivery_id).status == DeliveryStatus.SUCCEEDED
    assert len(receiver.wait_for(4)) == 4


def test_deliveries_held_by_another_worker_wait_and_duplicates_are_dropped(receiver):
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    (free,) = _pending(subscription, 1)
    (held,) = _pending(subscription, 1, claimed_until=timezone.now() + timedelta(seconds=8))
    (later,) = _pending(subscription, 1, next_attempt_at=timezone.now() + timedelta(minutes=5))
    (done,) = _pending(
        subscription, 1, status=DeliveryStatus.SUCCEEDED, delivered_at=timezone.now()
    )

    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=_ids([free, held, later, done])
    )

    assert outcome.made == 1
    assert outcome.busy == [str(held.pk)]
    assert 6 < outcome.busy_for <= 8
    (request,) = receiver.wait_for(1)
    assert request.headers["X-SupportDesk-Delivery"] == str(free.pk)


def test_a_batch_is_one_attempt_in_flight_for_the_subscribers_cap(receiver, settings):
    settings.OUTGOING_WEBHOOKS_MAX_IN_FLIGHT = 2
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    claim = timezone.now() + timedelta(seconds=20)
    batch_in_flight = _pending(subscription, 5, claimed_until=claim)
    WebhookDelivery.objects.filter(pk__in=_ids(batch_in_flight)).update(
        claim_id="8a0c6f0e-2b1e-4a39-9a51-3f3f1f7a0001"
    )
    (waiting,) = _pending(subscription, 1)

    # one batch in flight (five deliveries made one at a time): room for one more attempt
    assert outbox.delivery_attempt(delivery_id=str(waiting.pk)).status == DeliveryStatus.SUCCEEDED
    # a single attempt in flight besides the batch: the cap of two is reached
    _pending(subscription, 1, claimed_until=claim)
    (next_one,) = _pending(subscription, 1)
    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=_ids([next_one])
    )
    assert (outcome.made, outcome.throttled) == (0, True)
    assert len(receiver.requests) == 1


def test_an_inactive_subscription_fails_its_batch_with_the_reason(receiver):
    subscription = WebhookSubscriptionFactory(url=receiver.url, is_active=False)
    batch = _pending(subscription, 2)

    outbox.deliveries_attempt_batch(subscription_id=subscription.pk, delivery_ids=_ids(batch))

    assert set(
        WebhookDelivery.objects.filter(pk__in=_ids(batch)).values_list("status", "last_error")
    ) == {("failed", "the subscription is not active")}
    assert receiver.requests == []


def test_a_refused_address_fails_each_attempt_of_the_batch_without_a_request(settings):
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = False
    subscription = WebhookSubscriptionFactory(url="http://127.0.0.1:9/hook")
    batch = _pending(subscription, 2)

    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=_ids(batch)
    )

    assert len(outcome.retries) == 2
    errors = set(WebhookDelivery.objects.filter(pk__in=_ids(batch)).values_list("last_error"))
    assert len(errors) == 1 and next(iter(errors))[0].startswith("refused:")


def test_the_handler_queues_one_task_per_subscription_not_per_delivery(
    receiver, monkeypatch, admin_user
):
    queued: list[tuple[int, list[str]]] = []
    monkeypatch.setattr(
        tasks.webhook_deliver_batch, "delay", lambda sub, ids: queued.append((sub, ids))
    )
    one, two = (
        WebhookSubscriptionFactory(url=receiver.url),
        WebhookSubscriptionFactory(url=receiver.url),
    )
    written = [(one.pk, f"a{n}") for n in range(3)] + [(two.pk, f"b{n}") for n in range(250)]

    tasks.deliveries_queue_batches(written)

    assert [(sub, len(ids)) for sub, ids in queued] == [
        (one.pk, 3),
        (two.pk, outbox.BATCH_SIZE),
        (two.pk, outbox.BATCH_SIZE),
        (two.pk, 250 - 2 * outbox.BATCH_SIZE),
    ]


def test_a_lane_goes_on_with_its_subscriptions_due_deliveries_oldest_first(receiver):
    """Done with its own, a lane takes its subscription's other due deliveries (a retry that
    came due, one whose task stepped aside at the cap), never another's, never one not due."""
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    other = WebhookSubscriptionFactory(url=receiver.url)
    own = _pending(subscription, 2)
    older = _pending(subscription, 1, next_attempt_at=timezone.now() - timedelta(minutes=3))
    newer = _pending(subscription, 1, next_attempt_at=timezone.now() - timedelta(minutes=1))
    later = _pending(subscription, 1, next_attempt_at=timezone.now() + timedelta(minutes=5))
    others = _pending(other, 1)

    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=_ids(own), lane_seconds=30
    )

    assert outcome.made == 4 and not outcome.more
    sent = [r.headers["X-SupportDesk-Delivery"] for r in receiver.wait_for(4)]
    assert sent[:2] == _ids(own)
    assert sent[2:] == _ids(older + newer)
    assert WebhookDelivery.objects.get(pk=later[0].pk).status == DeliveryStatus.PENDING
    assert WebhookDelivery.objects.get(pk=others[0].pk).status == DeliveryStatus.PENDING


def test_at_the_cap_a_task_schedules_nothing_and_the_lane_in_flight_takes_its_delivery(
    receiver, settings, monkeypatch
):
    settings.OUTGOING_WEBHOOKS_MAX_IN_FLIGHT = 1
    queued: list[Any] = []
    monkeypatch.setattr(tasks.webhook_deliver, "apply_async", lambda *a, **k: queued.append(a))
    monkeypatch.setattr(
        tasks.webhook_deliver_batch, "apply_async", lambda *a, **k: queued.append(a)
    )
    monkeypatch.setattr(tasks.webhook_deliver_batch, "delay", lambda *a: queued.append(a))
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    (in_flight,) = _pending(subscription, 1, claimed_until=timezone.now() + timedelta(seconds=20))
    (waiting,) = _pending(subscription, 1)

    # its task finds the subscription at its cap: no request, no timer, no task
    tasks.webhook_deliver_batch(subscription.pk, _ids([waiting]))  # as a worker runs it
    tasks.webhook_deliver(str(waiting.pk))
    assert receiver.requests == [] and queued == []
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts, waiting.claimed_until) == ("pending", 0, None)

    # the attempt in flight is done (its claim released): its lane takes the waiting delivery
    WebhookDelivery.objects.filter(pk=in_flight.pk).update(
        status=DeliveryStatus.SUCCEEDED, delivered_at=timezone.now(), claimed_until=None
    )
    outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=[], lane_seconds=5
    )
    (request,) = receiver.wait_for(1)
    assert request.headers["X-SupportDesk-Delivery"] == str(waiting.pk)


def test_a_slow_receivers_lane_takes_one_at_a_time_and_leaves_room_for_parallel_lanes(
    receiver, settings
):
    settings.OUTGOING_WEBHOOKS_MAX_IN_FLIGHT = 3
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    batch = _pending(subscription, 5)

    # every batch "runs out of time" after its first request (a budget of 0: a slow receiver)
    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=_ids(batch), seconds=0, lane_seconds=30
    )

    assert outcome.made == 5  # the lane went on, one delivery at a time
    assert outcome.left == _ids(batch[1:])  # released after the first, taken again one by one
    assert outcome.free_lanes == 2  # the cap of three, this lane being one
    rows = WebhookDelivery.objects.filter(pk__in=_ids(batch))
    assert {(d.status, d.attempts, d.claim_id) for d in rows} == {
        (DeliveryStatus.SUCCEEDED, 1, None)
    }


def test_a_lane_out_of_time_hands_over_to_a_new_task(receiver, monkeypatch):
    queued: list[Any] = []
    monkeypatch.setattr(tasks.webhook_deliver_batch, "delay", lambda *a: queued.append(a))
    monkeypatch.setattr(outbox, "LANE_SECONDS", 0.000001)
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    first, *_rest = _pending(subscription, 3)

    tasks.webhook_deliver_batch(subscription.pk, _ids([first]))  # as a worker runs it

    assert len(receiver.wait_for(1)) == 1
    assert queued == [(subscription.pk, [])]  # one lane goes on with the other two
    tasks.webhook_deliver_batch(subscription.pk, [])
    assert len(receiver.wait_for(3)) == 3


def test_a_lane_claims_what_it_can_send_within_its_budget_at_its_last_pace(receiver):
    """A lane sending more slowly than its lot needs (a receiver taking 50 ms, or a worker short
    of CPU) claims only what goes out within its budget, instead of a full batch of which it would
    release most and claim again."""
    receiver.hang_seconds = 0.05
    receiver.answer(*["hang"] * 40)
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    batch = _pending(subscription, 40)

    outcome = outbox.deliveries_attempt_batch(
        subscription_id=subscription.pk, delivery_ids=[], seconds=0.6, lane_seconds=60
    )

    assert outcome.made == 40
    # the first lot (ten, about 0.5 s) may run over; then four or five at a time (0.3 s at most)
    assert len(outcome.left) <= outbox.LANE_FIRST_CLAIM
    sent = [r.headers["X-SupportDesk-Delivery"] for r in receiver.wait_for(40)]
    assert sent == _ids(batch)
    rows = WebhookDelivery.objects.filter(pk__in=_ids(batch))
    assert {(d.status, d.attempts) for d in rows} == {(DeliveryStatus.SUCCEEDED, 1)}
