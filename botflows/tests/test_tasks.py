"""The bot's batch task: the turns of one intake batch, in order, each on its own."""

import pytest

from botflows import engine, tasks
from conversations.models import ConversationStatus, Direction, Message
from conversations.services import message_record_inbound
from conversations.tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


def _inbound(conversation, body: str, n: int) -> Message:
    message, _created = message_record_inbound(
        conversation=conversation, body=body, wa_message_id=f"wamid.batch{conversation.pk}.{n}"
    )
    return message


def _answered(conversation) -> bool:
    return Message.objects.filter(conversation=conversation, direction=Direction.OUT).exists()


def test_every_message_of_the_batch_gets_its_turn(demo_flow):
    chats = [ConversationFactory(status=ConversationStatus.BOT) for _ in range(3)]
    messages = [_inbound(chat, "Oi", 1) for chat in chats]
    tasks.bot_handle_messages.delay([m.pk for m in messages])
    assert all(_answered(chat) for chat in chats)


def test_a_turn_that_fails_is_queued_again_on_its_own(demo_flow, monkeypatch):
    first, second = (ConversationFactory(status=ConversationStatus.BOT) for _ in range(2))
    broken, fine = _inbound(first, "Oi", 1), _inbound(second, "Oi", 1)
    real, calls = engine._advance, []

    def flaky(run, message):
        calls.append(message.pk)
        if calls.count(message.pk) == 1 and message.pk == broken.pk:
            raise RuntimeError("database went away")
        return real(run, message)

    monkeypatch.setattr(engine, "_advance", flaky)
    tasks.bot_handle_messages.delay([broken.pk, fine.pk])
    # The failure did not hold back the next customer, and the retry answered the first one.
    assert sorted(calls) == sorted([broken.pk, broken.pk, fine.pk])
    assert _answered(first) and _answered(second)


def test_a_batch_that_fails_as_a_whole_is_taken_one_by_one(demo_flow, monkeypatch):
    chats = [ConversationFactory(status=ConversationStatus.BOT) for _ in range(2)]
    messages = [_inbound(chat, "Oi", 1) for chat in chats]

    def down(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(engine, "bot_handle_inbound_many", down)
    tasks.bot_handle_messages.delay([m.pk for m in messages])
    assert all(_answered(chat) for chat in chats)
