"""What every conversations service shares: the row lock, the state snapshot, the event rows."""

from typing import Any

from accounts.models import User
from common.events import emit
from departments.models import Department

from .. import events
from ..models import Conversation, ConversationEvent, ConversationStatus
from ..serializers import conversation_payload


def _lock(conversation: Conversation) -> Conversation:
    """Re-read the conversation under a row lock; all read-then-write flows start here."""
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("customer", "department", "assigned_to", "whatsapp_account")
        .get(pk=conversation.pk)
    )


def _state(conversation: Conversation) -> dict[str, Any]:
    return {
        "status": conversation.status,
        "department": conversation.department_id,
        "assigned_to": conversation.assigned_to_id,
    }


def _event(
    *,
    conversation: Conversation,
    actor: User | None,
    kind: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> ConversationEvent:
    """An unsaved event (:func:`_record` saves one; a batch saves many in one INSERT)."""
    return ConversationEvent(
        conversation=conversation, actor=actor, kind=kind, before=before or {}, after=after or {}
    )


def _record(
    *,
    conversation: Conversation,
    actor: User | None,
    kind: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> ConversationEvent:
    event = _event(conversation=conversation, actor=actor, kind=kind, before=before, after=after)
    event.save(force_insert=True)
    return event


def _assign(
    *,
    conversation: Conversation,
    actor: User | None,
    to_user: User,
    kind: str,
    department: Department | None = None,
    how: str | None = None,
    note: dict[str, Any] | None = None,
) -> Conversation:
    """Give a locked conversation to ``to_user`` (status ``open``): event row and broadcasts.

    ``actor`` None: automatic assignment (``how`` ``automatic``, ``note`` what decided it, kept
    in the event row's ``after``)."""
    before = _state(conversation)
    previous_assignee = conversation.assigned_to_id
    conversation.assigned_to = to_user
    conversation.status = ConversationStatus.OPEN
    if department is not None:
        conversation.department = department
    conversation.save(update_fields=["assigned_to", "status", "department", "updated_at"])
    _record(
        conversation=conversation,
        actor=actor,
        kind=kind,
        before=before,
        after={**_state(conversation), **(note or {})},
    )
    emit(
        events.ConversationAssigned(
            conversation=conversation_payload(conversation),
            actor_id=actor.pk if actor is not None else None,
            user_id=to_user.pk,
            previous_user_id=previous_assignee,
            how=how or kind,
        )
    )
    return conversation
