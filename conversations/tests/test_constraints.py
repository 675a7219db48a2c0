"""The invariants the database itself guarantees."""

import pytest
from django.db import IntegrityError, transaction

from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory, CustomerFactory, MessageFactory
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = pytest.mark.django_db


def test_a_whatsapp_message_id_is_stored_once() -> None:
    first = MessageFactory(wa_message_id="wamid.SAME")
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(conversation=first.conversation, wa_message_id="wamid.SAME")


def test_messages_without_a_whatsapp_id_do_not_collide() -> None:
    conversation = ConversationFactory()
    MessageFactory(conversation=conversation, wa_message_id=None)
    MessageFactory(conversation=conversation, wa_message_id=None)
    assert conversation.messages.count() == 2


def test_a_customer_has_one_conversation_in_progress_per_number() -> None:
    conversation = ConversationFactory(status=ConversationStatus.OPEN)
    with pytest.raises(IntegrityError), transaction.atomic():
        ConversationFactory(
            customer=conversation.customer,
            whatsapp_account=conversation.whatsapp_account,
            status=ConversationStatus.BOT,
        )


def test_closed_conversations_do_not_block_a_new_one() -> None:
    closed = ConversationFactory(status=ConversationStatus.CLOSED)
    ConversationFactory(
        customer=closed.customer,
        whatsapp_account=closed.whatsapp_account,
        status=ConversationStatus.CLOSED,
    )
    new = ConversationFactory(
        customer=closed.customer,
        whatsapp_account=closed.whatsapp_account,
        status=ConversationStatus.BOT,
    )
    assert new.pk


def test_the_same_customer_may_talk_to_two_numbers_at_once() -> None:
    conversation = ConversationFactory(status=ConversationStatus.OPEN)
    other = ConversationFactory(
        customer=conversation.customer,
        whatsapp_account=WhatsAppAccountFactory(),
        status=ConversationStatus.OPEN,
    )
    assert other.pk != conversation.pk


def test_a_whatsapp_id_belongs_to_one_customer() -> None:
    CustomerFactory(wa_id="5511987650002")
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomerFactory(wa_id="5511987650002")
