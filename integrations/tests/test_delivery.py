"""The outbox end to end: events of the real conversation services become signed POSTs to a real
HTTP receiver, retried under the same delivery id, never sent to private addresses, never
written by a rolled-back change, and free when nobody subscribes."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations import services as desk
from conversations.events import ConversationClosed, ConversationRead
from conversations.models import ConversationStatus
from conversations.serializers import conversation_payload
from conversations.tests.factories import ConversationFactory
from integrations import outbox, selectors, services, signing, tasks
from integrations.handlers import WebhookHandler
from integrations.models import DeliveryStatus, OutgoingEvent, WebhookDelivery

from .factories import OutgoingEventFactory, WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db

SECRET = "a-shared-secret-of-the-receiver"


def subscribe(admin_user: Any, url: str, events: list[str]) -> Any:
    return services.subscription_create(actor=admin_user, url=url, events=events, secret=SECRET)


@pytest.fixture
def conversation(agent: Any, support: Any) -> Any:
    return ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )


def _due_now(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_a_closed_conversation_is_delivered_signed(
    receiver, admin_user, agent, conversation, django_capture_on_commit_callbacks
):
    # given
    subscription = subscribe(admin_user, receiver.url, ["conversation.closed"])
    # when
    with django_capture_on_commit_callbacks(execute=True):
        desk.conversation_close(conversation=conversation, actor=agent)
    # then
    (request,) = receiver.wait_for(1)
    delivery = WebhookDelivery.objects.get()
    assert delivery.subscription == subscription
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-SupportDesk-Event"] == "conversation.closed"
    assert request.headers["X-SupportDesk-Delivery"] == str(delivery.pk)
    # The signature is an HMAC-SHA256 of "<t>.<raw body>", checked here by hand...
    header = request.headers["X-SupportDesk-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    signed = f"{parts['t']}.".encode() + request.body
    assert parts["v1"] == hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    # ...and by the helper a receiver written in Python would use.
    assert signing.verify(SECRET, request.body, header)
    assert not signing.verify("another-secret", request.body, header)
    assert not signing.verify(SECRET, request.body + b" ", header)
    body = json.loads(request.body)
    assert list(body) == ["id", "type", "created_at", "data"]
    assert body["id"] == str(delivery.pk)
    assert body["type"] == "conversation.closed"
    assert timezone.datetime.fromisoformat(body["created_at"])
    assert body["data"]["id"] == conversation.pk
    assert body["data"]["status"] == "closed"
    assert body["data"]["customer"]["id"] == conversation.customer_id
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        DeliveryStatus.SUCCEEDED,
        1,
        200,
    )
    assert delivery.delivered_at is not None


def test_message_created_data_holds_its_conversation(
    receiver, admin_user, conversation, django_capture_on_commit_callbacks
):
    subscribe(admin_user, receiver.url, ["message.created"])
    with django_capture_on_commit_callbacks(execute=True):
        message, _created = desk.message_record_inbound(
            conversation=conversation, body="Olá, webhook", wa_message_id="wamid.HOOK1"
        )
    (request,) = receiver.wait_for(1)
    body = json.loads(request.body)
    assert body["type"] == "message.created"
    assert body["data"]["id"] == message.pk
    assert body["data"]["body"] == "Olá, webhook"
    assert body["data"]["direction"] == "in"
    assert body["data"]["conversation"]["id"] == conversation.pk


def test_three_subscribers_get_the_same_event_under_their_own_delivery_ids(
    receiver, admin_user, agent, conversation, django_capture_on_commit_callbacks
):
    """The event's data is stored once (not once per subscriber) and every subscriber gets the
    very same data, each under its own delivery id and its own signature."""
    for n in range(3):
        services.subscription_create(
            actor=admin_user, url=receiver.url, events=["conversation.closed"], secret=f"s-{n}"
        )
    with django_capture_on_commit_callbacks(execute=True):
        desk.conversation_close(conversation=conversation, actor=agent)
    requests = receiver.wait_for(3)
    assert OutgoingEvent.objects.count() == 1
    bodies = [json.loads(request.body) for request in requests]
    assert len({body["id"] for body in bodies}) == 3
    assert {body["id"] for body in bodies} == {
        str(pk) for pk in WebhookDelivery.objects.values_list("pk", flat=True)
    }
    assert all(body["data"] == bodies[0]["data"] for body in bodies)
    assert bodies[0]["data"]["id"] == conversation.pk
    secrets = {str(d.pk): d.subscription.secret for d in WebhookDelivery.objects.all()}
    for request, body in zip(requests, bodies, strict=True):
        header = request.headers["X-SupportDesk-Signature"]
        assert signing.verify(secrets[body["id"]], request.body, header)


def test_only_the_subscribed_types_are_delivered(
    receiver, admin_user, agent, conversation, django_capture_on_commit_callbacks
):
    subscribe(admin_user, receiver.url, ["conversation.reopened"])
    with django_capture_on_commit_callbacks(execute=True):
        desk.conversation_close(conversation=conversation, actor=agent)
    assert not WebhookDelivery.objects.exists()


def test_a_500_is_retried_soon_under_the_same_delivery_id(
    receiver, admin_user, agent, conversation, django_capture_on_commit_callbacks
):
    receiver.answer(500)
    subscribe(admin_user, receiver.url, ["*"])
    started = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        desk.conversation_close(conversation=conversation, actor=agent)
    receiver.wait_for(1)
    delivery = WebhookDelivery.objects.get(event="conversation.closed")
    assert delivery.status == DeliveryStatus.PENDING
    assert (delivery.attempts, delivery.response_code) == (1, 500)
    assert delivery.last_error.startswith("HTTP 500")
    assert started < delivery.next_attempt_at <= timezone.now() + timedelta(seconds=30)

    tasks.webhook_deliver(str(delivery.pk))  # too early: the scheduled retry will come
    assert len(receiver.requests) == 1

    _due_now(delivery)
    tasks.webhook_deliver(str(delivery.pk))  # the retry
    first, second = receiver.wait_for(2)
    assert first.headers["X-SupportDesk-Delivery"] == second.headers["X-SupportDesk-Delivery"]
    assert json.loads(first.body)["id"] == json.loads(second.body)["id"] == str(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (
        DeliveryStatus.SUCCEEDED,
        2,
        200,
    )
    assert delivery.last_error == ""

    tasks.webhook_deliver(str(delivery.pk))  # a duplicate task: succeeded is final
    assert len(receiver.requests) == 2


def test_a_timeout_is_retried_under_the_same_delivery_id(
    receiver, settings, admin_user, conversation, django_capture_on_commit_callbacks
):
    agent = conversation.assigned_to
    settings.OUTGOING_WEBHOOK_TIMEOUT = 0.5
    receiver.hang_seconds = 3
    receiver.answer("hang")
    subscribe(admin_user, receiver.url, ["conversation.closed"])
    with django_capture_on_commit_callbacks(execute=True):
        desk.conversation_close(conversation=conversation, actor=agent)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.response_code is None
    assert "timed out" in delivery.last_error

    _due_now(delivery)
    tasks.webhook_deliver(str(delivery.pk))
    first, second = receiver.wait_for(2)
    assert first.headers["X-SupportDesk-Delivery"] == second.headers["X-SupportDesk-Delivery"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 2)


def test_a_refused_connection_is_retried_then_failed_after_the_window(settings, admin_user):
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = True
    subscription = WebhookSubscriptionFactory(url="http://127.0.0.1:9/closed-port")
    selectors.subscriptions_bump_version()
    with transaction.atomic():
        (delivery_id,) = outbox.deliveries_record(
            events=[ConversationRead(conversation={"id": 1})]  # internal: never delivered
        ) or [None]
    assert delivery_id is None
    delivery = WebhookDelivery.objects.create(
        subscription=subscription,
        event="conversation.closed",
        outgoing_event=OutgoingEventFactory(type="conversation.closed"),
        next_attempt_at=timezone.now(),
        retry_until=timezone.now() + timedelta(hours=24),
    )
    attempt = outbox.delivery_attempt(delivery_id=str(delivery.pk))
    assert attempt.made and attempt.retry_in is not None and attempt.retry_in <= 30
    delivery.refresh_from_db()
    assert "connection failed" in delivery.last_error
    # Past its window, the next failure is the last.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now(), retry_until=timezone.now() - timedelta(seconds=1)
    )
    attempt = outbox.delivery_attempt(delivery_id=str(delivery.pk))
    delivery.refresh_from_db()
    assert (attempt.retry_in, delivery.status, delivery.attempts) == (None, "failed", 2)


def test_the_backoff_covers_at_least_24_hours():
    # The shortest possible schedule (every jitter at its low end) still spans a day.
    delays = [outbox.retry_delay(n) for n in range(1, outbox.MAX_ATTEMPTS)]
    assert delays[0] <= 30
    assert max(delays) <= outbox.RETRY_CAP * 1.2
    assert (
        sum(
            min(outbox.RETRY_CAP, outbox.FIRST_RETRY * 2 ** (n - 1)) * 0.8
            for n in range(1, outbox.MAX_ATTEMPTS)
        )
        >= 24 * 3600
    )


def test_a_private_address_is_refused_at_delivery(
    receiver, settings, agent, conversation, django_capture_on_commit_callbacks
):
    # given: a subscription to a loopback receiver that got in while private ones were allowed
    WebhookSubscriptionFactory(url=receiver.url)
    selectors.subscriptions_bump_version()
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = False
    # when
    with django_capture_on_commit_callbacks(execute=True):
        desk.conversation_close(conversation=conversation, actor=agent)
    # then: nothing was sent, the attempt says why
    delivery = WebhookDelivery.objects.get()
    assert receiver.requests == []
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert "127.0.0.1" in delivery.last_error
    assert "private or reserved" in delivery.last_error


def test_a_rolled_back_change_writes_no_delivery(receiver, admin_user, agent, conversation):
    subscribe(admin_user, receiver.url, ["*"])

    class RefusedError(Exception):
        pass

    with pytest.raises(RefusedError), transaction.atomic():
        desk.conversation_close(conversation=conversation, actor=agent)
        assert WebhookDelivery.objects.count() == 1  # written with the change...
        raise RefusedError
    assert not WebhookDelivery.objects.exists()  # ...and gone with it
    assert receiver.requests == []


def test_internal_events_are_never_delivered(admin_user, receiver, conversation):
    subscribe(admin_user, receiver.url, ["*"])
    read = ConversationRead(conversation=conversation_payload(conversation), messages=2)
    assert outbox.deliveries_record(events=[read]) == []
    assert not WebhookDelivery.objects.exists()


def test_without_subscriptions_events_cost_no_query(agent, support, settings):
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    # the events built first: a payload reads the conversation's tags
    events = [ConversationRead(conversation=conversation_payload(conversation))]
    events.append(desk_closed(conversation))  # public and internal events
    selectors.subscription_list_active_cached()  # steady state: the cache is warm
    with CaptureQueriesContext(connection) as queries:
        WebhookHandler().in_transaction(events)
    assert queries.captured_queries == []
    assert not WebhookDelivery.objects.exists()

    # A whole service costs what it cost without the outgoing webhooks' handler.
    def close_queries(handlers: list[str]) -> int:
        settings.DOMAIN_EVENT_HANDLERS = handlers
        fresh = ConversationFactory(
            department=support, assigned_to=agent, status=ConversationStatus.OPEN
        )
        with CaptureQueriesContext(connection) as captured:
            desk.conversation_close(conversation=fresh, actor=agent)
        return len(captured.captured_queries)

    everyone = list(settings.DOMAIN_EVENT_HANDLERS)
    assert "integrations.handlers.WebhookHandler" in everyone
    others = [h for h in everyone if h != "integrations.handlers.WebhookHandler"]
    assert close_queries(everyone) == close_queries(others)


def desk_closed(conversation: Any) -> Any:
    return ConversationClosed(conversation=conversation_payload(conversation))


def test_the_sweeper_queues_what_was_lost(receiver, admin_user):
    subscription = subscribe(admin_user, receiver.url, ["*"])
    lost = WebhookDelivery.objects.create(
        subscription=subscription,
        event="conversation.created",
        outgoing_event=OutgoingEventFactory(type="conversation.created"),
        next_attempt_at=timezone.now() - timedelta(minutes=5),
    )
    WebhookDelivery.objects.create(  # due a moment ago: its own task is still on its way
        subscription=subscription,
        event="conversation.created",
        outgoing_event=OutgoingEventFactory(type="conversation.created"),
        next_attempt_at=timezone.now(),
    )
    tasks.webhook_deliveries_sweep()
    (request,) = receiver.wait_for(1)
    assert request.headers["X-SupportDesk-Delivery"] == str(lost.pk)
    lost.refresh_from_db()
    assert lost.status == DeliveryStatus.SUCCEEDED


def test_a_deleted_subscription_fails_its_pending_deliveries(receiver, admin_user):
    subscription = WebhookSubscriptionFactory(url=receiver.url, is_active=False)
    delivery = WebhookDelivery.objects.create(
        subscription=subscription,
        event="conversation.created",
        outgoing_event=OutgoingEventFactory(type="conversation.created"),
        next_attempt_at=timezone.now(),
    )
    assert not outbox.delivery_attempt(delivery_id=str(delivery.pk)).made
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("failed", "the subscription is not active")
    assert receiver.requests == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need a shared database")
def test_two_workers_never_make_the_same_attempt_at_once(receiver, admin_user):
    # given: one worker in the middle of an attempt (the receiver keeps it waiting)
    receiver.hang_seconds = 1.5
    receiver.answer("hang")
    subscription = subscribe(admin_user, receiver.url, ["*"])
    delivery = WebhookDelivery.objects.create(
        subscription=subscription,
        event="conversation.created",
        outgoing_event=OutgoingEventFactory(type="conversation.created"),
        next_attempt_at=timezone.now(),
    )
    results: list[Any] = []

    def first_worker() -> None:
        try:
            results.append(outbox.delivery_attempt(delivery_id=str(delivery.pk)))
        finally:
            connection.close()

    worker = threading.Thread(target=first_worker)
    worker.start()
    receiver.wait_for(1)
    # when: another worker gets the same task meanwhile
    second = outbox.delivery_attempt(delivery_id=str(delivery.pk))
    worker.join()
    # then: it stepped aside, told how long the attempt in flight may last; one request
    assert not second.made
    assert 0 < second.busy_for <= outbox.claim_seconds()
    assert results[0].made
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 1)


def _pending(subscription: Any, **fields: Any) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        subscription=subscription,
        event="conversation.created",
        outgoing_event=OutgoingEventFactory(type="conversation.created"),
        **fields,
    )


def test_a_slow_subscriber_gets_only_its_share_of_attempts_in_flight(
    receiver, settings, admin_user
):
    # given: a subscription with as many attempts in flight as it may have
    settings.OUTGOING_WEBHOOKS_MAX_IN_FLIGHT = 2
    slow = WebhookSubscriptionFactory(url=receiver.url)
    other = WebhookSubscriptionFactory(url=receiver.url)
    soon = timezone.now() + timedelta(seconds=20)
    for _ in range(2):
        _pending(slow, next_attempt_at=timezone.now(), claimed_until=soon)
    waiting = _pending(slow, next_attempt_at=timezone.now())
    others = _pending(other, next_attempt_at=timezone.now())
    # when / then: its next delivery waits its turn, without a request...
    attempt = outbox.delivery_attempt(delivery_id=str(waiting.pk))
    assert (attempt.made, attempt.throttled) == (False, True)
    assert receiver.requests == []
    # ...while another subscriber's goes at once
    assert outbox.delivery_attempt(delivery_id=str(others.pk)).status == DeliveryStatus.SUCCEEDED
    assert len(receiver.requests) == 1
    # and the sweeper leaves attempts in flight alone
    WebhookDelivery.objects.filter(subscription=slow).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    assert outbox.delivery_list_due() == [str(waiting.pk)]
