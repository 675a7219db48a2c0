"""Every domain event of the desk survives JSON (outgoing webhooks, Celery, the channel layer)."""

import dataclasses
import json

import pytest

from common.events import DomainEvent, event_from_json, event_types
from conversations import events

CONVERSATION = {
    "id": 7,
    "status": "open",
    "customer": {"id": 3, "phone": "+5511987650002", "name": "Maria"},
    "department": {"id": 1, "name": "Suporte"},
    "assigned_to": {"id": 2, "name": "Ana"},
    "tags": [{"id": 1, "name": "vip", "color": "#f00"}],
    "last_message_at": "2026-12-01T12:00:00+00:00",
}
MESSAGE = {"id": 41, "conversation": 7, "direction": "in", "body": "Olá ✓", "media": None}

EXAMPLES: list[DomainEvent] = [
    events.ConversationCreated(conversation=CONVERSATION),
    events.ConversationAssigned(
        conversation=CONVERSATION, actor_id=2, user_id=2, previous_user_id=5, how="taken_over"
    ),
    events.ConversationTransferred(
        conversation=CONVERSATION,
        actor_id=2,
        from_user_id=2,
        from_department_id=1,
        to_user_id=None,
        to_department_id=4,
        note="para vendas",
    ),
    events.ConversationClosed(conversation=CONVERSATION, actor_id=2),
    events.ConversationReopened(conversation=CONVERSATION, actor_id=2),
    events.ConversationUpdated(conversation=CONVERSATION, changes=["priority", "tags"]),
    events.ConversationRead(conversation=CONVERSATION, actor_id=2, messages=3),
    events.MessageCreated(conversation=CONVERSATION, message=MESSAGE),
    events.MessageStatusChanged(conversation=CONVERSATION, message={**MESSAGE, "status": "read"}),
    events.MessageScheduled(
        conversation=CONVERSATION,
        message={**MESSAGE, "status": "scheduled", "send_at": "2026-12-02T09:00:00-03:00"},
        actor_id=2,
    ),
    events.MessageScheduleCancelled(
        conversation=CONVERSATION, message={**MESSAGE, "status": "scheduled"}, actor_id=2
    ),
    events.MessageReacted(
        conversation=CONVERSATION, message=MESSAGE, sender="customer", emoji="👍"
    ),
    events.CsatReceived(
        conversation={**CONVERSATION, "status": "closed"},
        csat={
            "id": 3,
            "conversation": CONVERSATION["id"],
            "agent": {"id": 7, "name": "Ana"},
            "score": 4,
            "comment": "",
            "status": "awaiting_comment",
            "created_at": "2026-12-01T10:00:00-03:00",
            "scored_at": "2026-12-01T10:02:00-03:00",
        },
    ),
]


def _desk_event_classes() -> set[type[DomainEvent]]:
    return {
        value
        for value in vars(events).values()
        if isinstance(value, type)
        and issubclass(value, DomainEvent)
        and "type" in vars(value)  # a concrete event type, not a base such as MessageFact
    }


def test_every_event_class_has_an_example():
    assert {type(e) for e in EXAMPLES} == _desk_event_classes()


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.type)
def test_every_event_round_trips_through_json(event: DomainEvent):
    assert event_from_json(json.loads(json.dumps(event.to_json()))) == event


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.type)
def test_every_event_is_registered_under_its_type(event: DomainEvent):
    assert event.type in event_types()
    assert dataclasses.is_dataclass(event)
    assert event.occurred.tzinfo is not None


def test_the_public_types_are_those_of_the_contract():
    desk = {cls.type for cls in _desk_event_classes() if cls.public}
    assert desk <= set(event_types(public_only=True))
    assert {
        "conversation.created",
        "conversation.assigned",
        "conversation.transferred",
        "conversation.closed",
        "conversation.reopened",
        "conversation.updated",
        "message.created",
        "message.status",
        "csat.received",
    } == desk
    assert "conversation.read" not in event_types(public_only=True)
