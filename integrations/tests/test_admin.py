"""The back office of outgoing webhooks: the secret shown once on add, the read-only delivery
log, the "Redeliver" action; supervisors do not get in."""

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

from .factories import OutgoingEventFactory, WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db


def _browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_adding_a_subscription_shows_its_secret_once(admin_user: Any, settings: Any) -> None:
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = True
    browser = _browser(admin_user)
    response = browser.post(
        reverse("admin:integrations_webhooksubscription_add"),
        {
            "url": "http://127.0.0.1:5678/webhook/n8n",
            "events": ["conversation.closed", "message.created"],
            "new_secret": "",
            "is_active": "on",
            "description": "n8n",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    subscription = WebhookSubscription.objects.get()
    assert subscription.events == ["conversation.closed", "message.created"]
    assert subscription.created_by == admin_user
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(subscription.secret in m for m in shown)
    change = reverse("admin:integrations_webhooksubscription_change", args=[subscription.pk])
    assert subscription.secret in browser.get(change).content.decode()  # the message, once
    # Then never again: not on the change page, not in the list.
    page = browser.get(change)
    assert page.status_code == 200
    assert subscription.secret not in page.content.decode()
    listing = browser.get(reverse("admin:integrations_webhooksubscription_changelist"))
    assert subscription.secret not in listing.content.decode()


def test_the_admin_form_refuses_private_addresses_and_unknown_types(admin_user: Any) -> None:
    response = _browser(admin_user).post(
        reverse("admin:integrations_webhooksubscription_add"),
        {"url": "http://10.0.0.8/hook", "events": ["conversation.closed"], "is_active": "on"},
    )
    assert response.status_code == 200  # the form again, with its errors
    assert "private or reserved" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_the_delivery_log_is_read_only_and_redeliverable(
    admin_user: Any, receiver: Any, django_capture_on_commit_callbacks: Any
) -> None:
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    delivery = WebhookDelivery.objects.create(
        subscription=subscription,
        event="conversation.closed",
        outgoing_event=OutgoingEventFactory(type="conversation.closed"),
        status=DeliveryStatus.FAILED,
        attempts=35,
    )
    browser = _browser(admin_user)
    changelist = reverse("admin:integrations_webhookdelivery_changelist")
    listing = browser.get(f"{changelist}?subscription__id__exact={subscription.pk}")
    assert listing.status_code == 200
    assert str(delivery.pk) in listing.content.decode()
    assert browser.get(reverse("admin:integrations_webhookdelivery_add")).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            changelist,
            {"action": "redeliver_selected", "_selected_action": [str(delivery.pk)]},
        )
    assert response.status_code == 302
    (request,) = receiver.wait_for(1)
    assert request.headers["X-SupportDesk-Delivery"] == str(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 36)


def test_supervisors_do_not_see_webhooks(supervisor: Any) -> None:
    browser = _browser(supervisor)
    for name in ("webhooksubscription", "webhookdelivery"):
        response = browser.get(reverse(f"admin:integrations_{name}_changelist"))
        assert response.status_code == 403
