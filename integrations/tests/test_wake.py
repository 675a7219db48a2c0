"""With a worker, a committed change queues its subscribers' deliveries as one *wake* per
subscription, unless one is waiting in the queue already: the deliveries of every change that
commits meanwhile are taken by that one task (a busy intake costs a Redis ``SET NX`` per change
and subscriber, the webhooks worker one claim for many deliveries). Nothing is left behind: a
change committed once the task has started queues another, and a lane that finds only claims
held by others (a worker killed mid-batch) looks again once they have ended."""

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from conversations import services as desk
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory
from integrations import selectors, tasks
from integrations.models import DeliveryStatus, WebhookDelivery
from supportdesk.celery import app

from .factories import OutgoingEventFactory, WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch: Any) -> Iterator[list[tuple[Any, ...]]]:
    """The tasks queued as with a broker and a worker (published, not run in the process)."""
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.webhook_deliver_batch, "delay", lambda *a: queued.append(a))
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield queued
    finally:
        app.conf.task_always_eager = previous


def _forget(subscription_id: int) -> None:
    cache.delete(tasks._key(tasks.LANE_PENDING_KEY, subscription_id))
    cache.delete(tasks._key(tasks.LANE_RECHECK_KEY, subscription_id))


def test_changes_committed_while_a_wake_waits_join_it_and_later_ones_queue_another(
    receiver, agent, support, published, django_capture_on_commit_callbacks
):
    queued = published
    subscription = WebhookSubscriptionFactory(url=receiver.url, events=["conversation.closed"])
    selectors.subscriptions_bump_version()  # the outbox sees it
    first, second, third = ConversationFactory.create_batch(
        3, department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    try:
        # when: two changes commit, one after the other, before any worker takes a task
        for conversation in (first, second):
            with django_capture_on_commit_callbacks(execute=True):
                desk.conversation_close(conversation=conversation, actor=agent)
        # then: one task for the two
        assert queued == [(subscription.pk, [])]

        # when: a worker runs it
        tasks.webhook_deliver_batch(subscription.pk, [])
        # then: both deliveries go out, in the order of their changes
        received = receiver.wait_for(2)
        assert [json.loads(r.body)["data"]["id"] for r in received] == [first.pk, second.pk]
        assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {
            (DeliveryStatus.SUCCEEDED, 1)
        }

        # when: a change commits once that task has started
        with django_capture_on_commit_callbacks(execute=True):
            desk.conversation_close(conversation=third, actor=agent)
        # then: it queues a task of its own, which delivers it
        assert queued == [(subscription.pk, []), (subscription.pk, [])]
        tasks.webhook_deliver_batch(subscription.pk, [])
        assert json.loads(receiver.wait_for(3)[2].body)["data"]["id"] == third.pk
    finally:
        _forget(subscription.pk)


def test_a_lane_finding_only_a_dead_workers_claims_looks_again_once_they_have_expired(
    receiver, monkeypatch
):
    scheduled: list[tuple[Any, float]] = []
    monkeypatch.setattr(
        tasks.webhook_deliver_batch,
        "apply_async",
        lambda args, countdown: scheduled.append((args, countdown)),
    )
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    # given: three deliveries claimed by a batch whose worker was killed (5 s of claim left)
    batch = [
        WebhookDelivery.objects.create(
            subscription=subscription,
            event="conversation.closed",
            outgoing_event=OutgoingEventFactory(data=json.dumps({"n": n})),
            next_attempt_at=timezone.now(),
            claimed_until=timezone.now() + timedelta(seconds=5),
            claim_id=uuid.uuid4(),
        )
        for n in range(3)
    ]
    try:
        # when: its task runs again (acknowledged late), and another lane after it
        tasks.webhook_deliver_batch(subscription.pk, [])
        tasks.webhook_deliver_batch(subscription.pk, [])
        # then: nothing is sent while the claim holds; one look is scheduled for its end
        assert receiver.requests == []
        ((args, countdown),) = scheduled
        assert args == (subscription.pk, [])
        assert 4 < countdown <= 6

        # when: the claim has expired and the look runs
        WebhookDelivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
        tasks.webhook_deliver_batch(*args)
        # then: the three go out in order, each under its own id, once
        sent = [r.headers["X-SupportDesk-Delivery"] for r in receiver.wait_for(3)]
        assert sent == [str(d.pk) for d in batch]
        assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {
            (DeliveryStatus.SUCCEEDED, 1)
        }
    finally:
        _forget(subscription.pk)


BUSY = {"now": True}


def intake_busy() -> bool:
    """The port the test points ``OUTGOING_WEBHOOKS_YIELD_TO`` at."""
    return BUSY["now"]


def test_while_the_intake_is_busy_a_wake_waits_keeping_its_key_then_delivers(
    receiver, settings, monkeypatch
):
    settings.OUTGOING_WEBHOOKS_YIELD_TO = f"{__name__}.intake_busy"
    settings.OUTGOING_WEBHOOKS_YIELD_SECONDS = 1.0
    BUSY["now"] = True
    scheduled: list[tuple[Any, float]] = []
    monkeypatch.setattr(
        tasks.webhook_deliver_batch,
        "apply_async",
        lambda args, countdown: scheduled.append((args, countdown)),
    )
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    (delivery,) = [
        WebhookDelivery.objects.create(
            subscription=subscription,
            event="conversation.closed",
            outgoing_event=OutgoingEventFactory(),
            next_attempt_at=timezone.now(),
        )
    ]
    try:
        # when: the wake runs while a burst is being stored
        tasks.webhook_deliver_batch(subscription.pk, [])
        # then: nothing is sent; it looks again in half a second, still holding the key (a
        # change committed meanwhile queues no task: its delivery joins this one)
        assert receiver.requests == []
        assert scheduled == [((subscription.pk, [], 0.5), 0.5)]
        assert not cache.add(tasks._key(tasks.LANE_PENDING_KEY, subscription.pk), 1)

        # when: it has waited as long as it may, the intake still busy
        tasks.webhook_deliver_batch(subscription.pk, [], 1.0)
        # then: it delivers anyway
        (request,) = receiver.wait_for(1)
        assert request.headers["X-SupportDesk-Delivery"] == str(delivery.pk)
        assert len(scheduled) == 1

        # and: with the intake idle, a wake delivers at once
        BUSY["now"] = False
        (later,) = [
            WebhookDelivery.objects.create(
                subscription=subscription,
                event="conversation.closed",
                outgoing_event=OutgoingEventFactory(),
                next_attempt_at=timezone.now(),
            )
        ]
        tasks.webhook_deliver_batch(subscription.pk, [])
        assert receiver.wait_for(2)[1].headers["X-SupportDesk-Delivery"] == str(later.pk)
        assert len(scheduled) == 1
    finally:
        BUSY["now"] = True
        _forget(subscription.pk)
