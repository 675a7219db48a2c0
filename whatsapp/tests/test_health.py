"""The channel's health (contract §11): each number in ``/health`` and the admin, and the alerts
to the admins — a refused token and an intake lag — sent once per incident."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from conversations.models import MessageStatus
from conversations.tests.factories import ConversationFactory, MessageFactory
from whatsapp import tasks
from whatsapp.models import WebhookEvent, WebhookStatus, WhatsAppAccount
from whatsapp.services import health
from whatsapp.services.outbound import message_deliver
from whatsapp.tests.conftest import open_conversation
from whatsapp.tests.factories import WhatsAppAccountFactory


@pytest.fixture(autouse=True)
def _fresh_health():
    health._sent_noted.clear()
    cache.delete(health.INTAKE_LAG_INCIDENT_KEY)
    yield
    health._sent_noted.clear()
    cache.delete(health.INTAKE_LAG_INCIDENT_KEY)


def _queued(conversation, body="Oi"):
    return MessageFactory(
        conversation=conversation,
        direction="out",
        sender="agent",
        status=MessageStatus.QUEUED,
        body=body,
        wa_message_id=None,
    )


@pytest.mark.django_db
def test_health_reports_each_number(client, settings, fake_graph, agent, support) -> None:
    settings.SECURE_SSL_REDIRECT = False
    conversation = open_conversation(fake_graph, agent, support)
    sent = _queued(conversation)
    message_deliver(message_id=sent.pk)  # gets through
    fake_graph.fail_next(131026)
    refused = _queued(conversation, body="Refused")
    message_deliver(message_id=refused.pk)
    _queued(conversation, body="waiting")
    WebhookEvent.objects.create(raw_body="{}", phone_number_id=fake_graph.phone_number_id)
    WhatsAppAccountFactory(phone_number_id="999", name="Sandbox number", access_token="")
    settings.WHATSAPP_ACCESS_TOKEN = ""  # the second number has no token at all

    numbers = {n["phone_number_id"]: n for n in client.get("/health").json()["whatsapp"]}

    main = numbers[fake_graph.phone_number_id]
    assert main["name"] == "Fake Graph"
    assert main["last_delivery_at"] is not None
    assert main["last_sent_at"] is not None
    assert main["last_send_error"]["code"] == 131026
    assert main["pending_outbound"] == 1
    assert numbers["999"]["token"] == "sandbox"
    assert numbers["999"]["last_delivery_at"] is None
    assert numbers["999"]["last_send_error"] is None


@pytest.mark.django_db
def test_health_reads_the_numbers_in_a_fixed_number_of_queries(
    client, settings, django_assert_num_queries
) -> None:
    settings.SECURE_SSL_REDIRECT = False
    for i in range(5):
        WhatsAppAccountFactory(phone_number_id=f"10{i}")
    with django_assert_num_queries(3):  # SELECT 1, the numbers, the queued sends
        assert len(client.get("/health").json()["whatsapp"]) == 5


@pytest.mark.django_db
def test_a_refused_token_alerts_the_admins_once_per_incident(
    fake_graph, agent, support, mailoutbox, settings
) -> None:
    settings.ADMINS = ["ti@example.com"]
    conversation = open_conversation(fake_graph, agent, support)
    fake_graph.fail_next(190, times=3)
    for _ in range(3):
        message_deliver(message_id=_queued(conversation).pk)
    assert len(mailoutbox) == 1
    assert "access token" in mailoutbox[0].subject
    account = WhatsAppAccount.objects.get(pk=fake_graph.account.pk)
    assert account.token_error_at is not None
    assert health_state(account) == "error"

    # a message gets through: the incident is over, a new refusal is news again
    message_deliver(message_id=_queued(conversation).pk)
    assert health_state(WhatsAppAccount.objects.get(pk=account.pk)) == "ok"
    fake_graph.fail_next(190)
    message_deliver(message_id=_queued(conversation).pk)
    assert len(mailoutbox) == 2


def health_state(account):
    from whatsapp.selectors import account_token_state

    return account_token_state(account)


@pytest.mark.django_db
def test_the_intake_lag_alert_is_sent_once_per_incident(mailoutbox, settings) -> None:
    settings.ADMINS = ["ti@example.com"]
    settings.INTAKE_LAG_ALERT_SECONDS = 60
    assert tasks.intake_lag_check.delay().get() is None  # nothing waits
    late = WebhookEvent.objects.create(raw_body="{}")
    WebhookEvent.objects.filter(pk=late.pk).update(
        received_at=timezone.now() - timedelta(minutes=10)
    )

    assert tasks.intake_lag_check.delay().get() is True
    assert tasks.intake_lag_check.delay().get() is False  # the same incident: no second mail
    assert len(mailoutbox) == 1
    assert "10" in mailoutbox[0].subject
    assert "ti@example.com" in mailoutbox[0].to

    # processed: the incident ends; the next lag is a new one
    WebhookEvent.objects.filter(pk=late.pk).update(status=WebhookStatus.PROCESSED)
    assert tasks.intake_lag_check.delay().get() is None
    WebhookEvent.objects.filter(pk=late.pk).update(status=WebhookStatus.RECEIVED)
    assert tasks.intake_lag_check.delay().get() is True
    assert len(mailoutbox) == 2


@pytest.mark.django_db
def test_the_intake_lag_alert_can_be_turned_off(mailoutbox, settings) -> None:
    settings.ADMINS = ["ti@example.com"]
    settings.INTAKE_LAG_ALERT_SECONDS = 0
    WebhookEvent.objects.create(raw_body="{}")
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=1))
    assert tasks.intake_lag_check.delay().get() is None
    assert mailoutbox == []


@pytest.mark.django_db
def test_the_admin_shows_each_numbers_health(client, admin_user, fake_graph, settings) -> None:
    settings.SECURE_SSL_REDIRECT = False
    client.force_login(admin_user)
    ConversationFactory(whatsapp_account=fake_graph.account)
    WhatsAppAccount.objects.filter(pk=fake_graph.account.pk).update(
        token_error_at=timezone.now(), last_send_error_at=timezone.now(), last_send_error="boom"
    )
    listing = client.get("/admin/whatsapp/whatsappaccount/")
    assert listing.status_code == 200
    assert "boom" in listing.content.decode()
    detail = client.get(f"/admin/whatsapp/whatsappaccount/{fake_graph.account.pk}/change/")
    assert detail.status_code == 200
    page = detail.content.decode()
    for field in ("token_state", "last_delivery", "last_sent_at", "pending_outbound"):
        assert f"field-{field}" in page
