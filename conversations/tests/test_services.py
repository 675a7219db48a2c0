"""Each conversation service: the state it changes, the event row it writes, who may call it."""

from functools import partial

import pytest
from django.db import connection, transaction

from accounts.tests.factories import UserFactory
from common.exceptions import NotPermitted, ServiceError
from conversations import services
from conversations.models import (
    ConversationEvent,
    ConversationStatus,
    ConversationTransfer,
    EventKind,
    Message,
    MessageStatus,
)
from conversations.tests.factories import ConversationFactory, CustomerFactory, MessageFactory
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _events(conversation, kind):  # type: ignore[no-untyped-def]
    return ConversationEvent.objects.filter(conversation=conversation, kind=kind)


def test_take_over_assigns_the_agent_and_opens(agent, support) -> None:
    conversation = ConversationFactory(department=support, status=ConversationStatus.PENDING)

    result = services.conversation_take_over(conversation=conversation, actor=agent)

    conversation.refresh_from_db()
    assert result.assigned_to == agent
    assert conversation.assigned_to == agent
    assert conversation.status == ConversationStatus.OPEN
    event = _events(conversation, EventKind.TAKEN_OVER).get()
    assert event.actor == agent
    assert event.before == {"status": "pending", "department": support.pk, "assigned_to": None}
    assert event.after["assigned_to"] == agent.pk


def test_take_over_of_a_bot_conversation_puts_it_in_the_agents_department(agent, support) -> None:
    conversation = ConversationFactory(department=None, status=ConversationStatus.BOT)
    # An agent does not see department-less bot conversations; a supervisor does and assigns.
    with pytest.raises(NotPermitted):
        services.conversation_take_over(conversation=conversation, actor=agent)
    supervisor = UserFactory(role="supervisor", departments=[support])
    services.conversation_take_over(conversation=conversation, actor=supervisor)
    conversation.refresh_from_db()
    assert conversation.department == support


def test_an_agent_cannot_take_a_colleagues_conversation(agent, support) -> None:
    colleague = UserFactory(role="agent", departments=[support])
    conversation = ConversationFactory(
        department=support, assigned_to=colleague, status=ConversationStatus.OPEN
    )
    with pytest.raises(NotPermitted):
        services.conversation_take_over(conversation=conversation, actor=agent)
    conversation.refresh_from_db()
    assert conversation.assigned_to == colleague
    assert not _events(conversation, EventKind.TAKEN_OVER).exists()


def test_an_agent_of_another_department_cannot_take_over(other_agent, support) -> None:
    conversation = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    with pytest.raises(NotPermitted):
        services.conversation_take_over(conversation=conversation, actor=other_agent)


def test_supervisor_assigns_to_an_agent(supervisor, agent, support) -> None:
    conversation = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    services.conversation_assign(conversation=conversation, actor=supervisor, to_user=agent)
    conversation.refresh_from_db()
    assert conversation.assigned_to == agent
    assert _events(conversation, EventKind.ASSIGNED).get().actor == supervisor


def test_agents_do_not_assign(agent, other_agent, support) -> None:
    conversation = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    with pytest.raises(NotPermitted):
        services.conversation_assign(conversation=conversation, actor=agent, to_user=other_agent)


def test_transfer_to_a_department_returns_it_to_that_queue(agent, support, sales) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )

    services.conversation_transfer(
        conversation=conversation, actor=agent, to_department=sales, note="Quer comprar"
    )

    conversation.refresh_from_db()
    assert conversation.department == sales
    assert conversation.assigned_to is None
    assert conversation.status == ConversationStatus.PENDING
    transfer = ConversationTransfer.objects.get(conversation=conversation)
    assert (transfer.from_user, transfer.to_user) == (agent, None)
    assert (transfer.from_department, transfer.to_department) == (support, sales)
    assert transfer.note == "Quer comprar"
    event = _events(conversation, EventKind.TRANSFERRED).get()
    assert event.before["department"] == support.pk
    assert event.after == {
        "status": "pending",
        "department": sales.pk,
        "assigned_to": None,
        "note": "Quer comprar",
    }


def test_transfer_to_an_agent_assigns_and_moves_department(
    agent, other_agent, support, sales
) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    services.conversation_transfer(conversation=conversation, actor=agent, to_user=other_agent)
    conversation.refresh_from_db()
    assert conversation.assigned_to == other_agent
    assert conversation.department == sales  # the new assignee's department
    assert conversation.status == ConversationStatus.OPEN


def test_transfer_needs_a_target(agent, support) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent)
    with pytest.raises(ServiceError) as excinfo:
        services.conversation_transfer(conversation=conversation, actor=agent)
    assert excinfo.value.code == "no_target"


def test_transfer_refuses_an_agent_outside_the_chosen_department(
    agent, other_agent, support
) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent)
    with pytest.raises(ServiceError) as excinfo:
        services.conversation_transfer(
            conversation=conversation, actor=agent, to_user=other_agent, to_department=support
        )
    assert excinfo.value.code == "user_not_in_department"
    assert not ConversationTransfer.objects.exists()


def test_transfer_refuses_inactive_users(agent, support) -> None:
    gone = UserFactory(role="agent", departments=[support], is_active=False)
    conversation = ConversationFactory(department=support, assigned_to=agent)
    with pytest.raises(ServiceError):
        services.conversation_transfer(conversation=conversation, actor=agent, to_user=gone)


def test_close_and_reopen(agent, support) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN, unread_count=3
    )

    services.conversation_close(conversation=conversation, actor=agent)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert conversation.closed_at is not None
    assert conversation.unread_count == 0
    assert _events(conversation, EventKind.CLOSED).get().actor == agent

    services.conversation_reopen(conversation=conversation, actor=agent)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN
    assert conversation.closed_at is None
    assert _events(conversation, EventKind.REOPENED).get().before["status"] == "closed"


def test_an_agent_closes_only_their_own(agent, support) -> None:
    conversation = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    with pytest.raises(NotPermitted):
        services.conversation_close(conversation=conversation, actor=agent)


def test_reopen_is_refused_while_another_conversation_is_in_progress(supervisor, support) -> None:
    closed = ConversationFactory(department=support, status=ConversationStatus.CLOSED)
    ConversationFactory(
        customer=closed.customer,
        whatsapp_account=closed.whatsapp_account,
        status=ConversationStatus.BOT,
    )
    with pytest.raises(ServiceError) as excinfo:
        services.conversation_reopen(conversation=closed, actor=supervisor)
    assert excinfo.value.code == "conversation_in_progress"
    closed.refresh_from_db()
    assert closed.status == ConversationStatus.CLOSED
    assert not _events(closed, EventKind.REOPENED).exists()


def test_mark_read_clears_unread_and_stamps_messages(agent, support) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent, unread_count=2)
    MessageFactory.create_batch(2, conversation=conversation)

    services.conversation_mark_read(conversation=conversation, actor=agent)

    conversation.refresh_from_db()
    assert conversation.unread_count == 0
    assert not conversation.messages.filter(read_at__isnull=True).exists()
    assert _events(conversation, EventKind.READ).get().after == {"unread_count": 0, "messages": 2}
    # Reading again changes nothing and writes no second event.
    services.conversation_mark_read(conversation=conversation, actor=agent)
    assert _events(conversation, EventKind.READ).count() == 1


def test_mark_read_requires_visibility(other_agent, support) -> None:
    conversation = ConversationFactory(department=support, unread_count=1)
    with pytest.raises(NotPermitted):
        services.conversation_mark_read(conversation=conversation, actor=other_agent)


def test_inbound_messages_are_recorded_once_and_bump_the_conversation(support) -> None:
    account = WhatsAppAccountFactory()
    customer = CustomerFactory()
    conversation, created = services.conversation_open_for_customer(
        customer=customer, whatsapp_account_id=account.pk
    )
    assert created
    assert conversation.status == ConversationStatus.BOT
    again, created_again = services.conversation_open_for_customer(
        customer=customer, whatsapp_account_id=account.pk
    )
    assert (again.pk, created_again) == (conversation.pk, False)

    first, new = services.message_record_inbound(
        conversation=conversation, body="Olá", wa_message_id="wamid.1"
    )
    duplicate, new_again = services.message_record_inbound(
        conversation=conversation, body="Olá", wa_message_id="wamid.1"
    )
    assert new and not new_again
    assert duplicate.pk == first.pk
    conversation.refresh_from_db()
    assert conversation.unread_count == 1
    assert conversation.last_inbound_at is not None
    assert Message.objects.filter(conversation=conversation, direction="in").count() == 1


def test_only_the_assignee_replies_and_the_first_reply_is_timed(agent, support) -> None:
    colleague = UserFactory(role="agent", departments=[support])
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    with pytest.raises(NotPermitted):
        services.message_create_outbound(conversation=conversation, actor=colleague, body="Oi")

    message = services.message_create_outbound(conversation=conversation, actor=agent, body="Oi!")

    assert message.status == MessageStatus.QUEUED
    assert message.sender == "agent"
    conversation.refresh_from_db()
    assert conversation.first_response_at == message.created_at
    assert _events(conversation, EventKind.FIRST_RESPONSE).count() == 1
    services.message_create_outbound(conversation=conversation, actor=agent, body="Mais algo?")
    assert _events(conversation, EventKind.FIRST_RESPONSE).count() == 1


def test_empty_messages_are_refused(agent, support) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent)
    with pytest.raises(ServiceError):
        services.message_create_outbound(conversation=conversation, actor=agent, body="   ")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_concurrent_take_overs_leave_one_winner(support) -> None:
    """Two agents clicking "take over" at the same moment: exactly one gets it."""
    from supportdesk.tests.concurrency import race

    agents = [UserFactory(role="agent", departments=[support]) for _ in range(2)]
    conversation = ConversationFactory(department=support, status=ConversationStatus.PENDING)

    def claim(user):  # type: ignore[no-untyped-def]
        try:
            services.conversation_take_over(conversation=conversation, actor=user)
        except NotPermitted:
            return "refused"
        return "won"

    outcomes = race(*[partial(claim, a) for a in agents])
    assert sorted(outcomes) == ["refused", "won"]
    assert _events(conversation, EventKind.TAKEN_OVER).count() == 1


# --- The bot's batches (issue 15 §8) -------------------------------------------------------------


def _locked_with_bot(count):
    from conversations.services._base import _lock

    return [_lock(ConversationFactory(status=ConversationStatus.BOT)) for _ in range(count)]


def test_bot_replies_to_many_conversations_in_one_insert():
    drafts = [services.OutboundDraft(body=f"oi {n}") for n in range(2)]
    with transaction.atomic():
        conversations = _locked_with_bot(3)
        written = services.messages_create_bot_many(items=[(c, drafts) for c in conversations])

    assert [(m.conversation_id, m.body) for m in written] == [
        (c.pk, f"oi {n}") for c in conversations for n in range(2)
    ]
    assert {m.status for m in written} == {"queued"}
    for conversation in conversations:
        conversation.refresh_from_db()
        assert conversation.last_message_at == max(
            m.created_at for m in written if m.conversation_id == conversation.pk
        )


def test_bot_replies_to_a_closed_conversation_are_refused():
    with pytest.raises(ServiceError), transaction.atomic():
        (conversation,) = _locked_with_bot(1)
        conversation.status = ConversationStatus.CLOSED
        services.messages_create_bot_many(
            items=[(conversation, [services.OutboundDraft(body="oi")])]
        )


def test_many_conversations_go_to_queues_at_once(support):
    from conversations.models import ConversationEvent, EventKind

    with transaction.atomic():
        conversations = _locked_with_bot(3)
        routed = services.conversations_route_to_department_many(
            items=[
                (conversations[0], support, "flow"),
                *[(c, None, "keyword") for c in conversations[1:]],
            ]
        )

    assert [c.pk for c in routed] == [c.pk for c in conversations]
    for conversation, department in zip(conversations, [support, None, None], strict=True):
        conversation.refresh_from_db()
        assert conversation.status == ConversationStatus.PENDING
        assert conversation.department == department
        assert conversation.assigned_to is None
        event = ConversationEvent.objects.get(conversation=conversation, kind=EventKind.QUEUED)
        assert event.before["status"] == ConversationStatus.BOT
        assert event.after["status"] == ConversationStatus.PENDING
    assert ConversationEvent.objects.get(conversation=conversations[1]).after["reason"] == "keyword"
