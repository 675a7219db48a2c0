"""The desk's domain events (contract §8), one class per fact, emitted by ``conversations``
services inside their transaction (:func:`common.events.emit_many`).

Every event carries the §4 resources as they were when it happened: ``conversation`` always,
``message`` for message events. Handlers (``settings.DOMAIN_EVENT_HANDLERS``) read what they need
from them: the realtime broadcast its audience and frames, the channel the message to send, the
bot the inbound message, outgoing webhooks the ``data`` of a delivery.
"""

import dataclasses
from typing import Any

from common.events import DomainEvent, event_type


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationFact(DomainEvent):
    conversation: dict[str, Any]
    actor_id: int | None = None

    @property
    def conversation_id(self) -> int:
        return int(self.conversation["id"])

    @property
    def department_id(self) -> int | None:
        department = self.conversation.get("department")
        return int(department["id"]) if department else None

    @property
    def assigned_to_id(self) -> int | None:
        assignee = self.conversation.get("assigned_to")
        return int(assignee["id"]) if assignee else None

    def webhook_data(self) -> dict[str, Any]:
        """The ``data`` of an outgoing webhook delivery (contract §8)."""
        return self.conversation


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationCreated(ConversationFact):
    type = "conversation.created"


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationAssigned(ConversationFact):
    """Taken over by an agent or given to one (``previous_user_id``: who had it before)."""

    type = "conversation.assigned"
    user_id: int
    previous_user_id: int | None = None
    how: str = "assigned"  # taken_over | assigned | automatic


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationTransferred(ConversationFact):
    """To another agent and/or department by an agent (``actor_id``), or to a department's queue
    by the bot (``actor_id`` None)."""

    type = "conversation.transferred"
    from_user_id: int | None = None
    from_department_id: int | None = None
    to_user_id: int | None = None
    to_department_id: int | None = None
    note: str = ""


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationClosed(ConversationFact):
    type = "conversation.closed"


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationReopened(ConversationFact):
    type = "conversation.reopened"


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationUpdated(ConversationFact):
    """Something else about the conversation changed (``changes``: the fields)."""

    type = "conversation.updated"
    changes: list[str] = dataclasses.field(default_factory=list)


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversationRead(ConversationFact):
    """Someone at the desk read the conversation (``messages``: inbound messages marked read)."""

    type = "conversation.read"
    public = False
    messages: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class MessageFact(ConversationFact):
    message: dict[str, Any]

    @property
    def message_id(self) -> int:
        return int(self.message["id"])

    def webhook_data(self) -> dict[str, Any]:
        return {**self.message, "conversation": self.conversation}


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class MessageCreated(MessageFact):
    """A message stored: from the customer (``direction`` in) or to them (out, ``queued``)."""

    type = "message.created"


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class MessageScheduled(MessageFact):
    """An agent scheduled a message (status ``scheduled``): only the desk's timelines show it.
    When it goes it becomes a ``message.created`` like any other (status ``queued``)."""

    type = "message.scheduled"
    public = False


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class MessageScheduleCancelled(MessageFact):
    """A scheduled message was cancelled before it went (the row is gone)."""

    type = "message.schedule_cancelled"
    public = False


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class MessageStatusChanged(MessageFact):
    """WhatsApp moved an outbound message on: sent, delivered, read, played or failed."""

    type = "message.status"


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class MessageReacted(MessageFact):
    """A reaction put on (or removed from, ``emoji`` empty) a message by ``sender``."""

    type = "message.reaction"
    public = False
    sender: str = ""
    emoji: str = ""


@event_type
@dataclasses.dataclass(frozen=True, kw_only=True)
class CsatReceived(ConversationFact):
    """The customer scored the service (``csat``: the survey resource; a comment may follow, in
    a ``csat.received`` of its own with the same survey id)."""

    type = "csat.received"
    csat: dict[str, Any]

    def webhook_data(self) -> dict[str, Any]:
        return {**self.csat, "conversation": self.conversation}
