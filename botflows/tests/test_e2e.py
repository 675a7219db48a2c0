"""End to end: Meta's signed webhook in, the bot's reply out through the (fake) Graph API."""

import pytest

from conversations.models import Conversation, ConversationStatus
from whatsapp.services import sandbox

pytestmark = pytest.mark.django_db

WA_ID = "5511987650002"


def _post(client, signed_webhook, payload, callbacks):
    body, headers = signed_webhook(payload)
    with callbacks(execute=True):
        response = client.post(
            "/api/v1/webhooks/whatsapp", body, content_type="application/json", headers=headers
        )
    assert response.status_code == 200


def test_webhook_to_bot_menu_and_button_choice_through_the_graph_api(
    client, fake_graph, signed_webhook, demo_flow, django_capture_on_commit_callbacks
):
    # given a customer writing for the first time
    _post(
        client,
        signed_webhook,
        sandbox.text_delivery(wa_id=WA_ID, body="Oi", name="Maria"),
        django_capture_on_commit_callbacks,
    )

    # then the bot greets and sends the menu as reply buttons, through the Graph API
    greeting, menu = fake_graph.message_sends
    assert greeting["to"] == WA_ID and greeting["type"] == "text"
    assert menu["type"] == "interactive"
    buttons = menu["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Suporte", "Vendas", "Financeiro"]
    conversation = Conversation.objects.get(customer__wa_id=WA_ID)
    assert conversation.status == ConversationStatus.BOT
    assert set(conversation.messages.filter(direction="out").values_list("status", flat=True)) == {
        "sent"
    }

    # when she taps "Vendas"
    tap = sandbox.message(
        wa_id=WA_ID,
        type="interactive",
        content={
            "type": "button_reply",
            "button_reply": {"id": buttons[1]["reply"]["id"], "title": "Vendas"},
        },
    )
    _post(
        client,
        signed_webhook,
        sandbox.delivery(contacts=[sandbox.contact(wa_id=WA_ID, name="Maria")], messages=[tap]),
        django_capture_on_commit_callbacks,
    )

    # then she waits in the Vendas queue and is told her place
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.PENDING
    assert conversation.department.name == "Vendas"
    queued = fake_graph.message_sends[-1]
    assert queued["type"] == "text"
    assert "number 1 in the queue" in queued["text"]["body"]


def test_a_redelivered_webhook_is_answered_once(
    client, fake_graph, signed_webhook, demo_flow, django_capture_on_commit_callbacks
):
    payload = sandbox.text_delivery(wa_id=WA_ID, body="Oi", wamid="wamid.SAME")
    _post(client, signed_webhook, payload, django_capture_on_commit_callbacks)
    _post(client, signed_webhook, payload, django_capture_on_commit_callbacks)

    assert len(fake_graph.message_sends) == 2  # greeting and menu, once


def test_typed_number_after_the_menu(
    client, fake_graph, signed_webhook, demo_flow, django_capture_on_commit_callbacks
):
    for text in ("Bom dia", "3"):
        _post(
            client,
            signed_webhook,
            sandbox.text_delivery(wa_id=WA_ID, body=text),
            django_capture_on_commit_callbacks,
        )

    conversation = Conversation.objects.get(customer__wa_id=WA_ID)
    assert conversation.department.name == "Financeiro"
    assert len(fake_graph.message_sends) == 3
