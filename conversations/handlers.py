"""The realtime broadcast as a domain-event handler: the WebSocket frames of contract §6.

Each event becomes the frames the console has always received, sent to the groups of everyone
who may see the conversation (and, after a transfer or a reassignment, to those who just lost
it, so their lists drop it). A batch of events is one trip to the channel layer.
"""

from collections.abc import Collection, Sequence
from typing import Any

from accounts.events import UserAvailabilityChanged
from accounts.models import Availability
from common import realtime
from common.events import DomainEvent
from departments.events import DepartmentAssignmentChanged

from . import selectors
from .events import (
    ConversationAssigned,
    ConversationClosed,
    ConversationFact,
    ConversationReopened,
    ConversationTransferred,
    MessageCreated,
    MessageFact,
    MessageReacted,
)
from .models import ConversationStatus
from .tasks import assignment_run_task


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


# --- Automatic assignment -----------------------------------------------------------------------


def _waits_in_queue(event: ConversationFact) -> bool:
    return (
        event.conversation.get("status") == ConversationStatus.PENDING
        and event.assigned_to_id is None
        and event.department_id is not None
    )


def _freed(event: DomainEvent) -> int | None:
    """The agent this event may have given room (a conversation closed or passed on)."""
    if isinstance(event, ConversationClosed):
        return event.assigned_to_id
    if isinstance(event, ConversationTransferred) and event.from_user_id != event.assigned_to_id:
        return event.from_user_id
    if isinstance(event, ConversationAssigned) and event.previous_user_id != event.user_id:
        return event.previous_user_id
    return None


def assignment_triggers(events: Sequence[DomainEvent]) -> tuple[set[int], set[int]]:
    """What these committed events ask of automatic assignment: (departments whose queue a
    conversation entered, agents who may have room again)."""
    queues: set[int] = set()
    agents: set[int] = set()
    for event in events:
        if isinstance(event, UserAvailabilityChanged):
            if event.availability == Availability.AVAILABLE:
                agents.add(event.user_id)
            continue
        if isinstance(event, DepartmentAssignmentChanged):
            queues.add(event.department_id)  # manual ones are left out by the request
            continue
        if (
            isinstance(event, ConversationTransferred | ConversationReopened)
            and _waits_in_queue(event)
            and event.department_id is not None
        ):
            queues.add(event.department_id)
        if freed := _freed(event):
            agents.add(freed)
    return queues, agents


def assignment_request(
    *, department_ids: Collection[int] = (), user_ids: Collection[int] = ()
) -> bool:
    """Queue automatic assignment for these queues and agents, if any of them assigns
    automatically (one query each; nothing queued in a desk that assigns by hand). In the
    embedded default the task runs at once, in-process. True when a task was queued."""
    queues = (
        list(selectors.department_list_automatic(department_ids=department_ids))
        if (department_ids)
        else []
    )
    agents = list(selectors.department_list_automatic_of(user_ids=user_ids)) if user_ids else []
    if not (queues or agents):
        return False
    assignment_run_task.delay(department_ids=queues, user_ids=agents)
    return True


class AssignmentHandler:
    """``settings.DOMAIN_EVENT_HANDLERS``: a conversation entering an automatic queue, or an
    agent freed (a conversation closed or passed on, back from away), queues the assignment."""

    def on_commit(self, events: Sequence[DomainEvent]) -> None:
        queues, agents = assignment_triggers(events)
        if queues or agents:
            assignment_request(department_ids=queues, user_ids=agents)
