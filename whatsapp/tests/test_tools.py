"""Operator tools: replay_webhooks, simulate_message, sync_templates, the /sandbox/ page."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conversations.models import Message
from whatsapp.models import MessageTemplate, WebhookEvent, WebhookStatus
from whatsapp.services import sandbox as wa
from whatsapp.services.intake import webhook_receive
from whatsapp.tests.fake_graph import signed_webhook

pytestmark = pytest.mark.django_db


def _store(payload) -> WebhookEvent:
    body, headers = signed_webhook(payload)
    return webhook_receive(raw_body=body, signature=headers["X-Hub-Signature-256"])


def test_replay_processes_stored_deliveries_idempotently(fake_graph):
    # given deliveries stored but never processed (the broker was down)
    first = _store(wa.text_delivery(wa_id="5511987650002", body="um", wamid="wamid.R1"))
    second = _store(wa.text_delivery(wa_id="5511987650002", body="dois", wamid="wamid.R2"))
    out = StringIO()
    call_command("replay_webhooks", "--status", "received", stdout=out)
    assert "2 deliveries replayed" in out.getvalue()
    assert Message.objects.filter(direction="in").count() == 2
    # replaying again (by id) creates nothing new
    call_command("replay_webhooks", "--id", str(first.pk), "--id", str(second.pk), stdout=out)
    assert Message.objects.filter(direction="in").count() == 2
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {WebhookStatus.PROCESSED}


def test_replay_by_time_range(fake_graph):
    _store(wa.text_delivery(wa_id="5511987650002", body="um"))
    out = StringIO()
    call_command("replay_webhooks", "--since", "2000-01-01", "--until", "2001-01-01", stdout=out)
    assert "0 deliveries replayed" in out.getvalue()
    call_command("replay_webhooks", "--since", "2000-01-01", stdout=out)
    assert Message.objects.filter(direction="in").count() == 1


def test_replay_needs_a_selection(fake_graph):
    with pytest.raises(CommandError):
        call_command("replay_webhooks")


def test_simulate_message_goes_through_the_signed_intake(
    settings, db, django_capture_on_commit_callbacks
):
    settings.WHATSAPP_APP_SECRET = ""
    settings.SANDBOX_ENABLED = True
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("simulate_message", "--from", "5511987650002", "Olá, mundo", stdout=out)
    assert "webhook event" in out.getvalue()
    message = Message.objects.get(direction="in")
    assert message.body == "Olá, mundo"
    assert message.conversation.customer.wa_id == "5511987650002"


def test_sync_templates_from_the_graph_api(fake_graph):
    fake_graph.templates.extend(
        [
            {
                "name": "retomar_atendimento",
                "language": "pt_BR",
                "status": "APPROVED",
                "category": "UTILITY",
                "id": "111",
                "components": [{"type": "BODY", "text": "Olá {{1}}"}],
            },
            {"name": "promo", "language": "pt_BR", "status": "REJECTED", "id": "112"},
        ]
    )
    out = StringIO()
    call_command("sync_templates", stdout=out)
    assert "2 templates synced" in out.getvalue()
    template = MessageTemplate.objects.get(name="retomar_atendimento")
    assert template.is_approved
    assert template.account == fake_graph.account
    fake_graph.templates.pop()
    call_command("sync_templates", stdout=out)
    assert not MessageTemplate.objects.filter(name="promo").exists()


def test_sandbox_page_chats_as_a_customer_and_shows_replies(
    client, settings, db, django_capture_on_commit_callbacks
):
    settings.SANDBOX_ENABLED = True
    settings.WHATSAPP_APP_SECRET = ""
    settings.WHATSAPP_ACCESS_TOKEN = ""
    settings.SECURE_SSL_REDIRECT = False
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/sandbox/", {"wa_id": "5511911112222", "name": "Teste", "text": "Quero ajuda"}
        )
    assert response.status_code == 302
    inbound = Message.objects.get(direction="in", body="Quero ajuda")
    # the desk answers (the sandbox transport "sends" it)
    from conversations import services

    with django_capture_on_commit_callbacks(execute=True):
        services.message_create_outbound(
            conversation=inbound.conversation, actor=None, body="Olá! Como posso ajudar?"
        )
    page = client.get("/sandbox/")
    assert page.status_code == 200
    assert "Quero ajuda" in page.text
    assert "Olá! Como posso ajudar?" in page.text
    partial = client.get("/sandbox/", headers={"HX-Request": "true"})
    assert "<html" not in partial.text
    assert "Olá! Como posso ajudar?" in partial.text


def test_sandbox_shows_a_visitor_only_the_conversation_its_browser_started(
    client, settings, db, django_capture_on_commit_callbacks
):
    from django.test import Client

    from conversations import services

    settings.SANDBOX_ENABLED = True
    settings.WHATSAPP_APP_SECRET = ""
    settings.WHATSAPP_ACCESS_TOKEN = ""
    settings.SECURE_SSL_REDIRECT = False
    # a real customer's conversation, with the desk's answer, before any visitor
    with django_capture_on_commit_callbacks(execute=True):
        _store(wa.text_delivery(wa_id="5511911113333", body="Meu CPF é 123", wamid="wamid.P1"))
    private = Message.objects.get(wa_message_id="wamid.P1")
    with django_capture_on_commit_callbacks(execute=True):
        services.message_create_outbound(
            conversation=private.conversation, actor=None, body="Seu boleto: 3419-0000"
        )

    visitor = Client()
    visitor.post("/sandbox/", {"wa_id": "5511911113333", "name": "Curioso", "text": ""})
    page = visitor.get("/sandbox/")
    assert "Meu CPF é 123" not in page.text
    assert "3419-0000" not in page.text

    with django_capture_on_commit_callbacks(execute=True):
        visitor.post("/sandbox/", {"wa_id": "5511911113333", "name": "Curioso", "text": "Oi"})
    page = visitor.get("/sandbox/")
    assert "Oi" in page.text  # its own message, in the customer's conversation
    assert "Meu CPF é 123" not in page.text  # what came before it stays private
    assert "3419-0000" not in page.text
    # another visitor typing the same number sees nothing at all
    other = Client()
    other.post("/sandbox/", {"wa_id": "11911113333", "name": "Outro", "text": ""})
    assert "Oi" not in other.get("/sandbox/", headers={"HX-Request": "true"}).text


def test_sandbox_is_off_in_production(client, settings, db):
    settings.DEBUG = False
    settings.SANDBOX_ENABLED = False
    settings.SECURE_SSL_REDIRECT = False
    assert client.get("/sandbox/").status_code == 404
