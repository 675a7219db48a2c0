"""The realtime broadcast as a domain-event handler: the WebSocket frames of contract §6.

Each event becomes the frames the console has always received, sent to the groups of everyone
who may see the conversation (and, after a transfer or a reassignment, to those who just lost
it, so their lists drop it). A batch of events is one trip to the channel layer.
"""

from collections.abc import Sequence
from typing import Any

from common import realtime
from common.events import DomainEvent

from .events import (
    ConversationAssigned,
    ConversationFact,
    ConversationTransferred,
    MessageCreated,
    MessageFact,
    MessageReacted,
)


def _audience(event: ConversationFact, *extra_user_ids: int | None) -> list[str]:
    return realtime.conversation_audience(
        department_id=event.department_id,
        assigned_to_id=event.assigned_to_id,
        extra_user_ids=[uid for uid in extra_user_ids if uid],
    )


def frames(events: Sequence[DomainEvent]) -> list[realtime.Event]:
    """The live updates for these events, in order; a conversation's ``conversation_update``
    that several message events of one batch share is sent once, after their messages."""
    out: list[realtime.Event] = []
    updates: dict[int, realtime.Event] = {}
    for event in events:
        if not isinstance(event, ConversationFact):
            continue
        out.extend(_frames_of(event, updates))
    out.extend(updates.values())
    return out


def _update(event: ConversationFact, *extra_groups: str) -> realtime.Event:
    return ("conversation_update", event.conversation, [*extra_groups])


def _frames_of(event: ConversationFact, updates: dict[int, realtime.Event]) -> list[realtime.Event]:
    if isinstance(event, MessageCreated):
        updates.pop(event.conversation_id, None)
        updates[event.conversation_id] = _update(event, *_audience(event))
        return [("new_message", event.message, _audience(event))]
    if isinstance(event, MessageReacted):
        data: dict[str, Any] = {**event.message, "reactions": {event.sender: event.emoji}}
        return [("message_update", data, _audience(event))]
    if isinstance(event, MessageFact):  # a status
        return [("message_update", event.message, _audience(event))]
    if isinstance(event, ConversationAssigned):
        groups = _audience(event, event.previous_user_id)
        return [
            (
                "conversation_assigned",
                {"conversationId": event.conversation_id, "userId": event.user_id},
                groups,
            ),
            _update(event, *groups),
        ]
    if isinstance(event, ConversationTransferred) and event.actor_id is not None:
        old_groups = realtime.conversation_audience(
            department_id=event.from_department_id, assigned_to_id=event.from_user_id
        )
        return [
            (
                "conversation_transferred",
                {
                    "conversationId": event.conversation_id,
                    "fromUserId": event.from_user_id,
                    "toUserId": event.to_user_id,
                    "toDepartmentId": event.to_department_id,
                },
                [*old_groups, *_audience(event)],
            ),
            _update(event, *_audience(event), *old_groups),
        ]
    return [_update(event, *_audience(event))]


class RealtimeHandler:
    """``settings.DOMAIN_EVENT_HANDLERS``: committed events become WebSocket frames."""

    def on_commit(self, events: Sequence[DomainEvent]) -> None:
        realtime.broadcast_many(frames(events))
