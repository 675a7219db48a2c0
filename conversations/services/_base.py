"""What every conversations service shares: the row lock, the state snapshot, the event rows."""

from typing import Any

from accounts.models import User

from ..models import Conversation, ConversationEvent


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
