"""Many customers' turns in one transaction (issue 15 §8): ``engine.bot_handle_inbound_many``.

Every turn is still its own: the same replies as one by one, in order within each conversation,
at most one answer per message, and a turn that fails leaves nothing behind while the others go.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from botflows import engine, selectors
from botflows.models import BotTurn
from conversations.models import ConversationEvent, ConversationStatus, Direction, EventKind
from conversations.services import message_record_inbound
from conversations.tests.factories import ConversationFactory
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(db):
    return WhatsAppAccountFactory()


def _customers(account, count):
    return [
        ConversationFactory(status=ConversationStatus.BOT, whatsapp_account=account)
        for _ in range(count)
    ]


def _say(conversation, body, n):
    message, _created = message_record_inbound(
        conversation=conversation, body=body, wa_message_id=f"wamid.b{conversation.pk}.{n}"
    )
    return message


def _replies(conversation):
    return [
        (m.type, m.body)
        for m in conversation.messages.filter(direction=Direction.OUT).order_by("pk")
    ]


def _outcomes(conversation):
    return list(
        BotTurn.objects.filter(session__conversation=conversation)
        .order_by("inbound_message_id")
        .values_list("outcome", flat=True)
    )


@pytest.mark.parametrize("customers", [3, 12])
def test_a_batch_of_new_customers_costs_a_fixed_number_of_queries(demo_flow, account, customers):
    """The lock, the turns answered already, the settings, the flow, the sessions (read and
    created), their latest turns, the menus shown before, the replies (one INSERT, one UPDATE
    of the conversations, their tags), the sessions' write and the turns' INSERT: the same
    count for 3 customers as for 12 (one by one, a greeting was 20 queries each)."""
    chats = _customers(account, customers)
    messages = [_say(chat, "Olá", 1) for chat in chats]

    with CaptureQueriesContext(connection) as queries:
        outcome = engine.bot_handle_inbound_many(message_ids=[m.pk for m in messages])

    assert [t.outcome for t in outcome.turns] == ["menu"] * customers
    assert outcome.failed == [] and outcome.deferred == []
    for chat in chats:
        assert [kind for kind, _body in _replies(chat)] == ["text", "interactive"]
    sql = [q["sql"] for q in queries.captured_queries]
    assert len([q for q in sql if q.startswith('INSERT INTO "conversations_message"')]) == 1
    locks = [
        q for q in sql if q.startswith('SELECT "conversations_conversation"') and "FOR UPDATE" in q
    ]
    assert len(locks) == (1 if connection.vendor == "postgresql" else 0)  # SQLite: no row locks
    # SQLite has no UPDATE ... FROM unnest: one UPDATE per conversation there.
    assert len(sql) == (18 if connection.vendor == "postgresql" else 17 + customers)


def test_the_replies_and_their_order_are_those_of_one_by_one(demo_flow, account):
    """Interleaved messages of two customers in one batch: each gets what the one-by-one path
    gives (greeting and menu, two retries, then the queue), in its order."""
    batched, alone = _customers(account, 2), _customers(account, 1)[0]
    words = ["Olá", "quero ajuda", "não sei", "pode ser?"]
    messages = [_say(chat, text, n) for n, text in enumerate(words) for chat in batched]
    engine.bot_handle_inbound_many(message_ids=[m.pk for m in messages])
    for n, text in enumerate(words):
        engine.bot_handle_inbound(message_id=_say(alone, text, n).pk)

    expected = _replies(alone)
    assert len(expected) == 5  # greeting, menu, retry, retry, the queue
    for chat in batched:
        chat.refresh_from_db()
        replies = _replies(chat)
        assert replies[:-1] == expected[:-1]
        # the hand-over names the place in line, which differs
        assert replies[-1][1].split("\n\n")[0] == expected[-1][1].split("\n\n")[0]
        assert _outcomes(chat) == _outcomes(alone)
        assert chat.status == ConversationStatus.PENDING


def test_each_message_is_answered_once(demo_flow, account):
    chats = _customers(account, 2)
    messages = [_say(chat, "Olá", 1) for chat in chats]
    ids = [m.pk for m in messages]
    engine.bot_handle_inbound_many(message_ids=ids)

    again = engine.bot_handle_inbound_many(message_ids=[*ids, *ids])

    assert again.turns == []
    assert all(len(_replies(chat)) == 2 for chat in chats)
    assert engine.bot_handle_inbound(message_id=ids[0]) is None


def test_a_failing_turn_leaves_nothing_and_does_not_stop_the_others(
    demo_flow, account, monkeypatch
):
    chats = _customers(account, 3)
    messages = [_say(chat, "Olá", 1) for chat in chats]
    real = engine._advance

    def flaky(run, message):
        if message.pk == messages[1].pk:
            raise RuntimeError("a bug in one turn")
        return real(run, message)

    monkeypatch.setattr(engine, "_advance", flaky)
    outcome = engine.bot_handle_inbound_many(message_ids=[m.pk for m in messages])

    assert outcome.failed == [messages[1].pk]
    assert [t.inbound_message_id for t in outcome.turns] == [messages[0].pk, messages[2].pk]
    assert _replies(chats[1]) == [] and _outcomes(chats[1]) == []
    assert len(_replies(chats[0])) == len(_replies(chats[2])) == 2
    # retried on its own, it is answered like the others
    monkeypatch.setattr(engine, "_advance", real)
    assert engine.bot_handle_inbound(message_id=messages[1].pk).outcome == "menu"
    assert len(_replies(chats[1])) == 2


def test_a_turn_failing_after_its_writes_takes_them_back(demo_flow, account, monkeypatch):
    """A hand-over that breaks after moving the conversation to the queue: its savepoint goes,
    so the conversation is still with the bot, no queue event, no reply; the others stay."""
    first, second = _customers(account, 2)
    for chat in (first, second):  # both at the menu, one invalid answer from the queue
        engine.bot_handle_inbound(message_id=_say(chat, "Olá", 0).pk)
        for n in (1, 2):
            engine.bot_handle_inbound(message_id=_say(chat, "hmm", n).pk)
    replies_before = len(_replies(first))
    real = selectors.department_availability

    calls: list[int] = []

    def broken(*, department, now):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("hours table unreadable")
        return real(department=department, now=now)

    monkeypatch.setattr(selectors, "department_availability", broken)
    messages = [_say(first, "hmm", 3), _say(second, "hmm", 3)]
    outcome = engine.bot_handle_inbound_many(message_ids=[m.pk for m in messages])

    assert outcome.failed == [messages[0].pk]
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == ConversationStatus.BOT
    assert len(_replies(first)) == replies_before
    assert not ConversationEvent.objects.filter(conversation=first, kind=EventKind.QUEUED).exists()
    assert second.status == ConversationStatus.PENDING
    assert ConversationEvent.objects.filter(conversation=second, kind=EventKind.QUEUED).exists()


def test_a_refused_answer_is_the_turns_outcome(demo_flow, account):
    """Past the 24-hour window the turn is recorded as failed (not retried), the others go."""
    from datetime import timedelta

    from django.utils import timezone

    late, fine = _customers(account, 2)
    old, _created = message_record_inbound(
        conversation=late,
        body="oi",
        wa_message_id="wamid.late",
        wa_timestamp=timezone.now() - timedelta(days=2),
    )
    late.__class__.objects.filter(pk=late.pk).update(
        last_inbound_at=timezone.now() - timedelta(days=2)
    )
    outcome = engine.bot_handle_inbound_many(message_ids=[old.pk, _say(fine, "Olá", 1).pk])

    assert sorted(t.outcome for t in outcome.turns) == ["failed:window_closed", "menu"]
    assert _replies(late) == [] and len(_replies(fine)) == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL only")
def test_a_conversation_locked_elsewhere_is_left_to_the_one_by_one_path(
    demo_flow, account, settings
):
    """The batch never waits for a row lock while holding the others: a conversation another
    transaction holds is skipped (``deferred``), and the task takes it one by one afterwards."""
    import threading

    from django.db import close_old_connections, transaction

    from botflows import tasks
    from conversations.models import Conversation

    # Commits are real here: the bot must not take the messages as they are stored.
    settings.DOMAIN_EVENT_HANDLERS = [
        h for h in settings.DOMAIN_EVENT_HANDLERS if h != "botflows.handlers.BotHandler"
    ]
    busy, free = _customers(account, 2)
    messages = [_say(busy, "Olá", 1), _say(free, "Olá", 1)]
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=busy.pk)
                locked.set()
                release.wait(10)
        finally:
            close_old_connections()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        outcome = engine.bot_handle_inbound_many(message_ids=[m.pk for m in messages])
    finally:
        release.set()
        holder.join(10)

    assert outcome.deferred == [messages[0].pk]
    assert [t.inbound_message_id for t in outcome.turns] == [messages[1].pk]
    assert _replies(busy) == [] and len(_replies(free)) == 2
    # the task: the deferred turn is taken on its own once the lock is free
    tasks.bot_handle_messages.delay([m.pk for m in messages])
    assert len(_replies(busy)) == 2 and len(_replies(free)) == 2


@pytest.mark.parametrize("customers", [2, 6])
def test_a_batch_of_hand_overs_is_written_together(demo_flow, account, customers):
    """Customers at their third invalid answer, in one batch: one UPDATE moves them all to the
    queue, their event rows go in one INSERT, their notices after their earlier replies; a place
    in line is one COUNT each."""
    chats = _customers(account, customers)
    for chat in chats:
        engine.bot_handle_inbound(message_id=_say(chat, "Olá", 0).pk)
        for n in (1, 2):
            engine.bot_handle_inbound(message_id=_say(chat, "hmm", n).pk)
    messages = [_say(chat, "hmm", 3) for chat in chats]

    with CaptureQueriesContext(connection) as queries:
        outcome = engine.bot_handle_inbound_many(message_ids=[m.pk for m in messages])

    assert [t.outcome for t in outcome.turns] == ["handoff:invalid_input"] * customers
    for chat in chats:
        chat.refresh_from_db()
        assert chat.status == ConversationStatus.PENDING
        assert ConversationEvent.objects.filter(conversation=chat, kind=EventKind.QUEUED).exists()
        *_earlier, notice = _replies(chat)
        assert "in the queue" in notice[1]
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]
    assert len(counts) == customers
    # SQLite: no UPDATE ... FROM unnest, one UPDATE per conversation's last message time
    assert len(queries) == (
        27 + customers if connection.vendor == "postgresql" else 23 + 2 * customers
    )
