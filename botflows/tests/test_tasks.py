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
    real, calls = engine.bot_handle_inbound, []

    def flaky(*, message_id, **kwargs):
        calls.append(message_id)
        if calls.count(message_id) == 1 and message_id == broken.pk:
            raise RuntimeError("database went away")
        return real(message_id=message_id, **kwargs)

    monkeypatch.setattr(engine, "bot_handle_inbound", flaky)
    tasks.bot_handle_messages.delay([broken.pk, fine.pk])
    # The failure did not hold back the next customer, and the retry answered the first one.
    assert sorted(calls) == sorted([broken.pk, broken.pk, fine.pk])
    assert _answered(first) and _answered(second)
