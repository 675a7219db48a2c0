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
