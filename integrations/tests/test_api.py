"""``/api/v1/webhook-subscriptions`` and ``/webhook-deliveries`` (contract §8): admins only,
the secret shown once, URL and event types checked, the delivery log paginated at a fixed cost."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import AuditAction, AuditLogEntry
from common.events import event_types
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from supportdesk.tests.api_support import assert_error_shape, bearer

from .factories import OutgoingEventFactory, WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/webhook-subscriptions"
PUBLIC_URL = "https://93.184.215.14/hooks/supportdesk"  # a public address: no DNS needed


def test_admin_subscribes_and_sees_the_secret_once(admin_user: Any) -> None:
    client = bearer(admin_user)
    created = client.post(
        BASE,
        {"url": PUBLIC_URL, "events": ["conversation.closed"], "description": "CRM"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert len(body["secret"]) >= 32
    assert body["secret"] == WebhookSubscription.objects.get().secret
    assert {k: body[k] for k in ("url", "events", "is_active", "description")} == {
        "url": PUBLIC_URL,
        "events": ["conversation.closed"],
        "is_active": True,
        "description": "CRM",
    }
    # Never again: not in the detail, the list, nor a change's answer.
    detail = client.get(f"{BASE}/{body['id']}/").json()
    assert "secret" not in detail
    assert "secret" not in client.get(BASE).json()["results"][0]
    changed = client.patch(
        f"{BASE}/{body['id']}", {"is_active": False, "secret": "x" * 20}, format="json"
    )
    assert changed.status_code == 200
    assert "secret" not in changed.json()
    assert WebhookSubscription.objects.get().secret == "x" * 20
    entries = AuditLogEntry.objects.filter(action=AuditAction.CONFIG_CHANGED).order_by("id")
    assert entries[0].after["created"]["url"] == PUBLIC_URL
    assert entries[1].after == {"is_active": False, "secret": "changed"}
    assert all("x" * 20 not in str(e.after) + str(e.before) for e in entries)


def test_a_given_secret_is_kept(admin_user: Any) -> None:
    body = (
        bearer(admin_user)
        .post(BASE, {"url": PUBLIC_URL, "events": ["*"], "secret": "s" * 24}, format="json")
        .json()
    )
    assert body["secret"] == "s" * 24
    assert body["events"] == ["*"]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("not a url", "invalid"),
        ("ftp://93.184.215.14/hooks", "unsafe_url"),
        ("http://127.0.0.1:8000/hooks", "unsafe_url"),
        ("http://10.1.2.3/hooks", "unsafe_url"),
        ("http://169.254.169.254/latest/meta-data", "unsafe_url"),
        ("http://[::1]/hooks", "unsafe_url"),
        ("http://0.0.0.0/hooks", "unsafe_url"),
    ],
)
def test_a_bad_or_private_url_is_a_field_error(admin_user: Any, url: str, code: str) -> None:
    response = bearer(admin_user).post(BASE, {"url": url, "events": ["*"]}, format="json")
    body = assert_error_shape(response, 400, code)
    assert list(body["errors"]) == ["url"]
    assert not WebhookSubscription.objects.exists()


def test_private_urls_are_accepted_when_allowed(admin_user: Any, settings: Any) -> None:
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = True
    response = bearer(admin_user).post(
        BASE, {"url": "http://127.0.0.1:5678/webhook/x", "events": ["*"]}, format="json"
    )
    assert response.status_code == 201


def test_an_unknown_event_type_is_refused_listing_the_valid_ones(admin_user: Any) -> None:
    response = bearer(admin_user).post(
        BASE, {"url": PUBLIC_URL, "events": ["conversation.closed", "ticket.eaten"]}, format="json"
    )
    body = assert_error_shape(response, 400, "unknown_event")
    assert list(body["errors"]) == ["events"]
    assert "ticket.eaten" in body["detail"]
    for valid in event_types(public_only=True):
        assert valid in body["detail"]
    assert "conversation.read" not in body["detail"]  # internal: not offered
    internal = bearer(admin_user).post(
        BASE, {"url": PUBLIC_URL, "events": ["conversation.read"]}, format="json"
    )
    assert_error_shape(internal, 400, "unknown_event")
    empty = bearer(admin_user).post(BASE, {"url": PUBLIC_URL, "events": []}, format="json")
    assert_error_shape(empty, 400, "no_events")


def test_event_types_are_listed(admin_user: Any) -> None:
    listed = bearer(admin_user).get("/api/v1/webhook-event-types").json()
    assert "conversation.closed" in listed
    assert "message.created" in listed
    assert "conversation.read" not in listed


@pytest.mark.parametrize("role", ["supervisor", "agent"])
def test_only_admins_see_or_change_webhooks(request: Any, role: str) -> None:
    user = request.getfixturevalue(role)
    subscription = WebhookSubscriptionFactory()
    delivery = _delivery(subscription)
    client = bearer(user)
    for response in (
        client.get(BASE),
        client.post(BASE, {"url": PUBLIC_URL, "events": ["*"]}, format="json"),
        client.get(f"{BASE}/{subscription.pk}"),
        client.patch(f"{BASE}/{subscription.pk}", {"is_active": False}, format="json"),
        client.delete(f"{BASE}/{subscription.pk}"),
        client.get(f"{BASE}/{subscription.pk}/deliveries"),
        client.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver"),
    ):
        body = assert_error_shape(response, 403)
        assert subscription.url not in str(body)
    assert WebhookSubscription.objects.get().is_active


def test_anonymous_callers_get_401(db: Any) -> None:
    subscription = WebhookSubscriptionFactory()
    assert_error_shape(bearer(None).get(BASE), 401)
    assert_error_shape(bearer(None).get(f"{BASE}/{subscription.pk}/deliveries"), 401)


def test_unknown_ids_are_404(admin_user: Any) -> None:
    client = bearer(admin_user)
    assert_error_shape(client.get(f"{BASE}/999999"), 404)
    assert_error_shape(client.get(f"{BASE}/999999/deliveries"), 404)
    assert_error_shape(client.post(f"/api/v1/webhook-deliveries/{uuid.uuid4()}/redeliver"), 404)


def test_delete_removes_the_subscription_and_its_log(admin_user: Any) -> None:
    subscription = WebhookSubscriptionFactory()
    _delivery(subscription)
    assert bearer(admin_user).delete(f"{BASE}/{subscription.pk}/").status_code == 204
    assert not WebhookSubscription.objects.exists()
    assert not WebhookDelivery.objects.exists()
    entry = AuditLogEntry.objects.get(action=AuditAction.CONFIG_CHANGED)
    assert entry.after == {"deleted": True}


def test_a_patch_checks_the_url_and_events_too(admin_user: Any) -> None:
    subscription = WebhookSubscriptionFactory()
    client = bearer(admin_user)
    bad_url = client.patch(
        f"{BASE}/{subscription.pk}", {"url": "gopher://93.184.215.14/"}, format="json"
    )
    assert list(assert_error_shape(bad_url, 400)["errors"]) == ["url"]
    bad_events = client.patch(f"{BASE}/{subscription.pk}", {"events": ["nope"]}, format="json")
    assert list(assert_error_shape(bad_events, 400)["errors"]) == ["events"]


def _delivery(subscription: Any, *, minutes_ago: int = 0, **fields: Any) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.create(
        subscription=subscription,
        event=fields.pop("event", "conversation.closed"),
        outgoing_event=OutgoingEventFactory(type="conversation.closed"),
        **fields,
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return delivery


def test_deliveries_are_listed_newest_first_at_a_fixed_cost(
    admin_user: Any, django_assert_num_queries: Any
) -> None:
    subscription = WebhookSubscriptionFactory()
    other = WebhookSubscriptionFactory()
    _delivery(other)
    old = _delivery(subscription, minutes_ago=10, status=DeliveryStatus.FAILED, attempts=35)
    new = _delivery(subscription, minutes_ago=1, response_code=500, last_error="HTTP 500")
    client = bearer(admin_user)
    url = f"{BASE}/{subscription.pk}/deliveries"

    # auth (user), subscription, count, page
    with django_assert_num_queries(4):
        body = client.get(url).json()
    assert body["count"] == 2
    assert [d["id"] for d in body["results"]] == [str(new.pk), str(old.pk)]
    assert body["results"][0] == {
        "id": str(new.pk),
        "event": "conversation.closed",
        "status": "pending",
        "attempts": 0,
        "response_code": 500,
        "last_error": "HTTP 500",
        "created_at": body["results"][0]["created_at"],
        "delivered_at": None,
    }
    for minutes in range(20):
        _delivery(subscription, minutes_ago=20 + minutes)
    with django_assert_num_queries(4):
        page = client.get(f"{url}/?page_size=5").json()
    assert page["count"] == 22
    assert len(page["results"]) == 5
    assert page["next"]


def test_subscriptions_list_at_a_fixed_cost(admin_user: Any, django_assert_num_queries: Any):
    client = bearer(admin_user)
    WebhookSubscriptionFactory.create_batch(3, created_by=admin_user)
    with django_assert_num_queries(3):  # auth (user), count, page
        assert client.get(BASE).json()["count"] == 3
    WebhookSubscriptionFactory.create_batch(10, created_by=admin_user)
    with django_assert_num_queries(3):
        assert client.get(BASE).json()["count"] == 13


def test_redeliver_queues_the_same_delivery_again(
    admin_user: Any, receiver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    delivery = _delivery(subscription, status=DeliveryStatus.FAILED, attempts=35, response_code=500)
    with django_capture_on_commit_callbacks(execute=True):
        response = bearer(admin_user).post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")
    assert response.status_code == 202, response.content
    assert response.json()["id"] == str(delivery.pk)
    assert response.json()["status"] == "pending"
    (request,) = receiver.wait_for(1)
    assert request.headers["X-SupportDesk-Delivery"] == str(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("succeeded", 36, 200)
    assert AuditLogEntry.objects.filter(
        action=AuditAction.CONFIG_CHANGED, target_id=str(delivery.pk)
    ).exists()


def test_redeliver_is_refused_while_the_subscription_is_paused(admin_user: Any) -> None:
    delivery = _delivery(WebhookSubscriptionFactory(is_active=False), status="failed")
    response = bearer(admin_user).post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver")
    assert_error_shape(response, 400, "not_redeliverable")


def test_the_schema_documents_the_webhook_paths(admin_user: Any) -> None:
    schema = bearer(admin_user).get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/webhook-subscriptions" in schema["paths"]
    assert "/api/v1/webhook-subscriptions/{id}/deliveries" in schema["paths"]
    assert "/api/v1/webhook-deliveries/{id}/redeliver" in schema["paths"]


def test_events_that_are_not_strings_are_one_flat_field_error(admin_user: Any) -> None:
    response = bearer(admin_user).post(
        BASE, {"url": PUBLIC_URL, "events": [{"type": "x"}, ["y"]]}, format="json"
    )
    body = assert_error_shape(response, 400)
    assert isinstance(body["errors"]["events"], list)
    assert all(isinstance(message, str) for message in body["errors"]["events"])
