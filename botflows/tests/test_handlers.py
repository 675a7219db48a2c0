"""The bot takes its turn on ``message.created`` events, whichever channel stored the message."""

import pytest

from conversations.models import ConversationStatus, Direction, Message
from conversations.services import message_record_inbound
from conversations.tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_customer_message_stored_by_the_core_gets_the_bots_answer(demo_flow):
    conversation = ConversationFactory(status=ConversationStatus.BOT)

    message_record_inbound(conversation=conversation, body="Olá", wa_message_id="wamid.H1")

    replies = Message.objects.filter(conversation=conversation, direction=Direction.OUT)
    assert replies.exists()  # the greeting and the menu, with no WhatsApp intake involved


def test_conversations_with_agents_get_no_bot_answer(demo_flow, support, agent):
    conversation = ConversationFactory(
        status=ConversationStatus.OPEN, department=support, assigned_to=agent
    )

    message_record_inbound(conversation=conversation, body="Olá", wa_message_id="wamid.H2")

    assert not Message.objects.filter(conversation=conversation, direction=Direction.OUT).exists()


def test_the_survey_asks_in_portuguese_as_the_contract_says(settings):
    from django.utils import translation

    from botflows.selectors import csat_texts

    with translation.override("pt-br"):
        texts = csat_texts()

    assert texts.question == "Como você avalia o atendimento?"
    assert texts.options == ("Péssimo", "Ruim", "Regular", "Bom", "Excelente")


def test_a_turn_the_broker_refused_is_taken_once_it_answers_again(demo_flow, monkeypatch):
    """A worker storing deliveries while Redis goes away: the customer still gets the menu, once
    the next publish of that process succeeds."""
    from botflows import handlers
    from common.breaker import BROKER

    publish = handlers.bot_handle_message.delay
    refused: list[int] = []

    def broker_down_once(message_id):
        if not refused:
            refused.append(message_id)
            raise ConnectionError("Redis is down")
        return publish(message_id)

    monkeypatch.setattr(handlers.bot_handle_message, "delay", broker_down_once)
    monkeypatch.setattr(BROKER, "cooldown", 0.0)
    conversation = ConversationFactory(status=ConversationStatus.BOT)
    try:
        message_record_inbound(conversation=conversation, body="Olá", wa_message_id="wamid.H3")
        replies = Message.objects.filter(conversation=conversation, direction=Direction.OUT)
        assert refused and not replies.exists()

        assert BROKER.allow()  # the next publish of this process (any task) gets through:
        BROKER.succeeded()

        assert replies.exists()
        assert handlers.bot_queue_kept_back() == 0  # taken once, nothing left
    finally:
        BROKER.reset()
