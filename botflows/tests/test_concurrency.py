"""Real commits: agents are told live, two workers never answer one message twice, and two
admins changing flows at once leave one default flow and one flow per number."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from botflows import engine, services
from botflows.models import BotTurn, Flow
from common import realtime
from common.exceptions import ServiceError
from conversations.models import ConversationStatus, Direction, Message
from conversations.services import message_record_inbound
from supportdesk.tests.concurrency import errors_of, race
from supportdesk.tests.layer import drain as _drain
from whatsapp.tests.factories import WhatsAppAccountFactory

from .conftest import Chat

pytestmark = pytest.mark.django_db(transaction=True)


def test_agents_of_the_department_are_told_live_when_the_bot_hands_over(
    demo_flow, departments, conversation, settings
):
    # One event loop per async_to_sync call: the in-memory layer, as the console tests use.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    sales_channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(
        realtime.department_group(departments["Vendas"].pk), sales_channel
    )
    support_channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(
        realtime.department_group(departments["Suporte"].pk), support_channel
    )
    chat = Chat(conversation)
    chat.say("oi")
    _drain(sales_channel)

    chat.say("2")

    updates = [e for e in _drain(sales_channel) if e["event"] == "conversation_update"]
    assert updates and updates[-1]["data"]["status"] == "pending"
    assert updates[-1]["data"]["department"]["name"] == "Vendas"
    assert _drain(support_channel) == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_workers_on_the_same_message_answer_once(demo_flow, conversation):
    message, _ = message_record_inbound(conversation=conversation, body="oi", wa_message_id="w.1")
    results = race(*[lambda: engine.bot_handle_inbound(message_id=message.pk)] * 2)

    assert errors_of(results) == []
    assert BotTurn.objects.filter(inbound_message=message).count() == 1
    outbound = Message.objects.filter(conversation=conversation, direction=Direction.OUT)
    assert outbound.count() == 2  # greeting and menu, once
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.BOT


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_admins_making_new_default_flows_at_once_leave_one_default(demo_flow, admin_user):
    results = race(
        lambda: services.flow_create(actor=admin_user, name="A", is_default=True),
        lambda: services.flow_create(actor=admin_user, name="B", is_default=True),
    )

    assert all(isinstance(result, Flow) for result in results), results
    assert Flow.objects.filter(is_default=True).count() == 1
    assert Flow.objects.count() == 3


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_admins_giving_one_number_a_flow_at_once_get_one_flow_and_a_reason(admin_user):
    number = WhatsAppAccountFactory()

    results = race(
        lambda: services.flow_create(actor=admin_user, name="A", whatsapp_account=number),
        lambda: services.flow_create(actor=admin_user, name="B", whatsapp_account=number),
    )

    refused = [result for result in results if isinstance(result, ServiceError)]
    assert len(refused) == 1 and refused[0].code == "number_taken", results
    assert Flow.objects.filter(whatsapp_account=number).count() == 1
