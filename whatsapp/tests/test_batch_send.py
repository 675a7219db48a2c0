"""A commit's outbound messages go to the sender in one task (issue 15 §8): claimed together,
sent over kept-alive connections (conversations at once, each one's messages in order), their
outcomes written together, each message still sent at most once."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.events import dispatch
from conversations import events, services
from conversations.models import Message, MessageStatus
from conversations.serializers import conversation_payload, message_payload
from whatsapp import handlers
from whatsapp.services import outbound

from .conftest import open_conversation

pytestmark = pytest.mark.django_db


def _conversations(fake_graph, agent, support, count):
    return [
        open_conversation(fake_graph, agent, support, customer__wa_id=f"55119876500{n:02d}")
        for n in range(count)
    ]


def _queued(conversations, per_conversation):
    """The bot's replies of one batch of turns, written together (``queued``, not sent)."""
    drafts = [
        [services.OutboundDraft(body=f"{c.pk}-{n}") for n in range(per_conversation)]
        for c in conversations
    ]
    return services.messages_create_bot_many(
        items=[(services._base._lock(c), d) for c, d in zip(conversations, drafts, strict=True)]
    )


def _bodies_to(fake_graph, wa_id):
    return [s["text"]["body"] for s in fake_graph.message_sends if s["to"] == wa_id]


def test_a_batch_is_sent_once_each_in_order_per_conversation(fake_graph, agent, support):
    conversations = _conversations(fake_graph, agent, support, 4)
    messages = _queued(conversations, 3)

    with CaptureQueriesContext(connection) as queries:
        retries = outbound.messages_deliver(message_ids=[m.pk for m in messages])

    assert retries == []
    assert len(fake_graph.message_sends) == 12
    for conversation in conversations:
        assert _bodies_to(fake_graph, conversation.customer.wa_id) == [
            f"{conversation.pk}-{n}" for n in range(3)
        ]
    rows = Message.objects.filter(pk__in=[m.pk for m in messages])
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert len({m.wa_message_id for m in rows}) == 12
    assert all(m.wa_message_id.startswith("wamid.FAKE") for m in rows)
    # the same count for 12 messages as for 1: read, claim, and the write of their outcomes
    assert len(queries) == 17

    # sent again (a duplicated task): nothing goes twice
    assert outbound.messages_deliver(message_ids=[m.pk for m in messages]) == []
    assert len(fake_graph.message_sends) == 12


def test_a_refusal_holds_back_the_rest_of_its_conversation_only(fake_graph, agent, support):
    (conversation,) = _conversations(fake_graph, agent, support, 1)
    messages = _queued([conversation], 3)
    fake_graph.fail_next(130429)  # Meta's throughput limit, on the first message

    retries = outbound.messages_deliver(message_ids=[m.pk for m in messages])

    # nothing after the refused message went out of order; all three are retried, in order
    assert len(fake_graph.message_sends) == 1
    assert [pk for pk, _wait in retries] == [m.pk for m in messages]
    waits = [wait for _pk, wait in retries]
    assert waits == sorted(waits)
    rows = list(Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("pk"))
    assert {m.status for m in rows} == {MessageStatus.QUEUED}
    assert all(m.sending_since is None for m in rows)
    # the retries (one by one, in order) deliver them all
    for message_id, _wait in retries:
        outbound.message_deliver(message_id=message_id, respect_backoff=False)
    assert _bodies_to(fake_graph, conversation.customer.wa_id)[1:] == [m.body for m in messages]


def test_a_final_refusal_fails_that_message(fake_graph, agent, support):
    conversations = _conversations(fake_graph, agent, support, 2)
    messages = _queued(conversations, 1)
    fake_graph.fail_next(131026)  # undeliverable: whichever goes first

    outbound.messages_deliver(message_ids=[m.pk for m in messages])

    statuses = sorted(
        Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("status", flat=True)
    )
    assert statuses == [MessageStatus.FAILED, MessageStatus.SENT]


def test_the_sandbox_sends_a_batch_in_one_write(agent, support, settings):
    from conversations.tests.factories import ConversationFactory

    settings.WHATSAPP_ACCESS_TOKEN = ""
    conversations = [
        ConversationFactory(department=support, assigned_to=agent, status="open") for _ in range(3)
    ]
    messages = _queued(conversations, 2)

    assert outbound.messages_deliver(message_ids=[m.pk for m in messages]) == []

    rows = Message.objects.filter(pk__in=[m.pk for m in messages])
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert all(m.wa_message_id.startswith("wamid.SANDBOX.") for m in rows)


def test_a_commits_messages_go_to_the_sender_in_one_task(fake_graph, agent, support, monkeypatch):
    conversations = _conversations(fake_graph, agent, support, 2)
    messages = [
        services.message_create_outbound(conversation=c, actor=None, body="oi")
        for c in conversations
    ]
    batches: list[list[int]] = []
    singles: list[int] = []
    monkeypatch.setattr(
        "whatsapp.tasks.message_send_batch.delay", lambda ids: batches.append(list(ids))
    )
    monkeypatch.setattr("whatsapp.tasks.message_send.delay", singles.append)

    created = [
        events.MessageCreated(
            conversation=conversation_payload(m.conversation), message=message_payload(m)
        )
        for m in messages
    ]
    dispatch(created, to=[handlers.ChannelSender()])
    dispatch(created[:1], to=[handlers.ChannelSender()])

    assert batches == [[m.pk for m in messages]]
    assert singles == [messages[0].pk]


def test_a_workers_commit_sends_its_messages_in_place(fake_graph, agent, support, monkeypatch):
    """What a worker's task wrote (the bot's turns) goes to Meta from that worker at once,
    never behind the next turns in the queue; what it must retry goes on as a task."""
    conversations = _conversations(fake_graph, agent, support, 2)
    messages = [
        services.message_create_outbound(conversation=c, actor=None, body="oi")
        for c in conversations
    ]
    queued: list[tuple[int, float | None]] = []
    monkeypatch.setattr(handlers, "_in_worker_task", lambda: True)
    monkeypatch.setattr(
        outbound,
        "outbound_queue",
        lambda *, message_id, countdown=None: queued.append((message_id, countdown)),
    )
    fake_graph.fail_next(130429)  # one of the two is to retry

    dispatch(
        [
            events.MessageCreated(
                conversation=conversation_payload(m.conversation), message=message_payload(m)
            )
            for m in messages
        ],
        to=[handlers.ChannelSender()],
    )

    statuses = dict(
        Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("pk", "status")
    )
    assert sorted(statuses.values()) == [MessageStatus.QUEUED, MessageStatus.SENT]
    (retried,) = [pk for pk, status in statuses.items() if status == MessageStatus.QUEUED]
    assert [pk for pk, _countdown in queued] == [retried]


def test_only_a_worker_task_outside_the_intake_sends_in_place(monkeypatch):
    class Request:
        is_eager = False

    class Task:
        request = Request()
        name = "botflows.tasks.bot_handle_messages"

    monkeypatch.setattr(handlers, "current_task", Task())
    assert handlers._in_worker_task()
    Task.name = "whatsapp.tasks.webhook_drain"
    assert not handlers._in_worker_task()
    Request.is_eager = True
    Task.name = "botflows.tasks.bot_handle_messages"
    assert not handlers._in_worker_task()
    monkeypatch.setattr(handlers, "current_task", None)
    assert not handlers._in_worker_task()
