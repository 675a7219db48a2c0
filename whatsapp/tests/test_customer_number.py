"""A ``system`` "customer changed number" message moves the customer to the new number.

The payloads are written from Meta's documented shape (docs/whatsapp-cloud-api.md and Meta's
"System messages webhook reference"): the message comes *from* the old number, carries no
``contacts`` array, and names the new number in ``system.wa_id`` (``new_wa_id`` in older ones).
"""

import copy
from typing import Any

import pytest

from common import realtime
from conversations import selectors, services
from conversations.models import (
    ConversationEvent,
    Customer,
    EventKind,
    Message,
    MessageType,
)
from conversations.tests.factories import CustomerFactory
from supportdesk.tests.layer import drain as _drain
from supportdesk.tests.layer import listen as _listen
from whatsapp.models import ChannelError, WebhookStatus
from whatsapp.services.customers import customer_change_number
from whatsapp.services.inbound import webhook_event_process
from whatsapp.services.intake import webhook_receive
from whatsapp.tests.conftest import open_conversation
from whatsapp.tests.fake_graph import PHONE_NUMBER_ID, signed_webhook

pytestmark = pytest.mark.django_db

OLD = "5511987650002"
NEW = "5511987650099"

CHANGED_NUMBER = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550001111",
                            "phone_number_id": PHONE_NUMBER_ID,
                        },
                        "messages": [
                            {
                                "from": OLD,
                                "id": "wamid.HBgNNTUxMTk4NzY1MDAwMhUCABIYFDNBQ0hBTkdFRE5VTUJFUjAx",
                                "timestamp": "1732406400",
                                "type": "system",
                                "system": {
                                    "body": f"User Maria Silva changed from {OLD} to {NEW}",
                                    "wa_id": NEW,
                                    "type": "customer_changed_number",
                                },
                            }
                        ],
                    },
                }
            ],
        }
    ],
}


def _older_shape() -> dict[str, Any]:
    """Before Graph API v12: ``new_wa_id`` (sometimes a JSON number), ``user_changed_number``."""
    payload = copy.deepcopy(CHANGED_NUMBER)
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = "wamid.OLDER-SHAPE-1"
    message["system"] = {
        "body": f"Maria changed from {OLD} to {NEW}",
        "new_wa_id": int(NEW),
        "type": "user_changed_number",
    }
    return payload


def deliver(payload: dict[str, Any]) -> Any:
    """Store a signed delivery like the webhook view does, then process it like the task."""
    body, headers = signed_webhook(payload)
    event = webhook_receive(raw_body=body, signature=headers["X-Hub-Signature-256"])
    return webhook_event_process(event_id=event.pk)


@pytest.fixture
def conversation(fake_graph: Any, agent: Any, support: Any) -> Any:
    customer = CustomerFactory(wa_id=OLD, phone=f"+{OLD}", name="Maria Silva")
    return open_conversation(fake_graph, agent, support, customer=customer)


@pytest.mark.parametrize("payload", [CHANGED_NUMBER, _older_shape()], ids=["wa_id", "new_wa_id"])
def test_the_customer_moves_to_the_new_number_and_replies_go_there(
    fake_graph: Any,
    conversation: Any,
    agent: Any,
    django_capture_on_commit_callbacks: Any,
    payload: dict[str, Any],
) -> None:
    listener = _listen(realtime.user_group(agent.pk))
    # when Meta reports the change
    with django_capture_on_commit_callbacks(execute=True):
        event = deliver(payload)
    assert event.status == WebhookStatus.PROCESSED
    # then the customer has the new number
    customer = Customer.objects.get(pk=conversation.customer_id)
    assert customer.wa_id == NEW
    assert customer.phone == f"+{NEW}"
    assert Customer.objects.count() == 1
    # the notice stays in the conversation's timeline
    timeline = list(selectors.conversation_list_messages(conversation=conversation))
    assert [m.type for m in timeline] == [MessageType.SYSTEM]
    assert f"changed from {OLD} to {NEW}" in timeline[0].body
    # the history says what changed
    changed = ConversationEvent.objects.get(conversation=conversation)
    assert changed.kind == EventKind.NUMBER_CHANGED
    assert changed.before == {"wa_id": OLD, "phone": f"+{OLD}"}
    assert changed.after == {"wa_id": NEW, "phone": f"+{NEW}", "applied": True}
    # the console learns the new phone
    updates = [f["data"] for f in _drain(listener) if f["event"] == "conversation_update"]
    assert any(u["id"] == conversation.pk and u["customer"]["phone"] == f"+{NEW}" for u in updates)
    # and the agent's reply goes to the new number
    with django_capture_on_commit_callbacks(execute=True):
        services.message_create_outbound(conversation=conversation, actor=agent, body="Anotado!")
    assert fake_graph.message_sends[-1]["to"] == NEW
    assert fake_graph.message_sends[-1]["text"]["body"] == "Anotado!"


def test_the_next_message_from_the_new_number_joins_the_same_conversation(
    fake_graph: Any, conversation: Any
) -> None:
    from whatsapp.services import sandbox as wa

    deliver(CHANGED_NUMBER)
    deliver(wa.text_delivery(wa_id=NEW, body="Oi, é a Maria do número novo"))
    assert Customer.objects.count() == 1
    assert list(
        Message.objects.filter(conversation=conversation).values_list("type", flat=True)
    ) == [MessageType.SYSTEM, MessageType.TEXT]


def test_a_redelivery_changes_nothing_more(fake_graph: Any, conversation: Any) -> None:
    deliver(CHANGED_NUMBER)
    deliver(CHANGED_NUMBER)
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert ConversationEvent.objects.filter(kind=EventKind.NUMBER_CHANGED).count() == 1
    assert Customer.objects.get(pk=conversation.customer_id).wa_id == NEW


def test_a_new_number_another_customer_has_is_kept_safe_and_reported(
    fake_graph: Any, conversation: Any
) -> None:
    # given the new number already wrote to us as someone else
    other = CustomerFactory(wa_id=NEW, phone=f"+{NEW}", name="Maria (novo)")
    # when the change is reported
    event = deliver(CHANGED_NUMBER)
    # then nothing breaks, no one loses their number, and admins can see why
    assert event.status == WebhookStatus.PROCESSED
    customer = Customer.objects.get(pk=conversation.customer_id)
    assert customer.wa_id == OLD
    other.refresh_from_db()
    assert other.wa_id == NEW
    assert Message.objects.get(conversation=conversation).type == MessageType.SYSTEM
    changed = ConversationEvent.objects.get(conversation=conversation)
    assert changed.after == {"wa_id": NEW, "applied": False, "other_customer": other.pk}
    error = ChannelError.objects.get()
    assert error.account == fake_graph.account
    assert f"customer #{other.pk} already has" in error.details
    assert error.data == {"customer": customer.pk, "other_customer": other.pk, "new_wa_id": NEW}


def test_other_system_messages_change_nothing(fake_graph: Any, conversation: Any) -> None:
    payload = copy.deepcopy(CHANGED_NUMBER)
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["system"] = {"body": "User ID changed", "type": "user_changed_user_id"}
    deliver(payload)
    assert Customer.objects.get(pk=conversation.customer_id).wa_id == OLD
    assert not ConversationEvent.objects.exists()
    assert Message.objects.get(conversation=conversation).type == MessageType.SYSTEM


def test_the_brazilian_form_of_the_same_number_is_no_change(conversation: Any) -> None:
    # 55 11 8765-0002 without the ninth digit is the customer's own number
    customer = customer_change_number(customer=conversation.customer, new_wa_id="551187650002")
    assert customer.wa_id == OLD
    assert not ConversationEvent.objects.exists()
