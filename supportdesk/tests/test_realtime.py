"""Services broadcast after commit, to the groups of those who may see the conversation."""

import pytest

from common import realtime
from common.exceptions import NotPermitted
from conversations import services
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory
from supportdesk.tests.layer import drain as _drain
from supportdesk.tests.layer import listen as _listen

pytestmark = pytest.mark.django_db(transaction=True)


def test_transfer_reaches_old_and_new_department_but_not_others(agent, support, sales) -> None:
    from departments.tests.factories import DepartmentFactory

    finance = DepartmentFactory(name="Financeiro")
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    old_dept = _listen(realtime.department_group(support.pk))
    new_dept = _listen(realtime.department_group(sales.pk))
    outsider = _listen(realtime.department_group(finance.pk))
    everyone = _listen(realtime.ALL_CONVERSATIONS_GROUP)

    services.conversation_transfer(conversation=conversation, actor=agent, to_department=sales)

    for channel in (old_dept, new_dept, everyone):
        events = [m["event"] for m in _drain(channel)]
        assert "conversation_transferred" in events
        assert "conversation_update" in events
    assert _drain(outsider) == []


def test_nothing_is_broadcast_when_the_change_fails(agent, other_agent, support) -> None:
    conversation = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    listener = _listen(realtime.department_group(support.pk), realtime.ALL_CONVERSATIONS_GROUP)
    with pytest.raises(NotPermitted):
        services.conversation_take_over(conversation=conversation, actor=other_agent)
    assert _drain(listener) == []


def test_new_message_payload_follows_the_contract(agent, support) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    listener = _listen(realtime.user_group(agent.pk))
    services.message_create_outbound(conversation=conversation, actor=agent, body="<b>Olá</b>")
    frames = {m["event"]: m["data"] for m in _drain(listener)}
    message = frames["new_message"]
    assert {
        "id",
        "conversation",
        "direction",
        "sender",
        "sender_user",
        "type",
        "body",
        "media",
        "status",
        "error",
        "wa_message_id",
        "created_at",
    } <= set(message)
    assert message["body"] == "<b>Olá</b>"
    assert message["status"] == "queued"
    update = frames["conversation_update"]
    assert update["customer"]["id"] == conversation.customer_id
    assert update["assigned_to"] == {"id": agent.pk, "name": agent.name}
