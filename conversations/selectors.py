"""Reads about conversations, scoped to what the asking user may see (contract §4 "Roles")."""

from collections.abc import Collection

from django.db.models import Q, QuerySet

from accounts.models import User

from .models import Conversation, ConversationEvent, ConversationStatus, Message, QuickReply


def conversation_visibility_q(*, user: User) -> Q:
    """The filter that limits conversations to those ``user`` may see.

    Admins and supervisors see every conversation; agents see the queues of their departments and
    whatever is assigned to them; an inactive or anonymous user sees nothing.
    """
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.sees_everything:
        return Q()
    return Q(department__in=user.departments.values("pk")) | Q(assigned_to=user)


def conversation_list_visible_to(*, user: User) -> QuerySet[Conversation]:
    return (
        Conversation.objects.filter(conversation_visibility_q(user=user))
        .select_related("customer", "department", "assigned_to", "whatsapp_account")
        .order_by("-last_message_at", "-id")
    )


def conversation_get_visible(*, user: User, pk: int) -> Conversation:
    """The conversation ``pk`` if ``user`` may see it; ``Conversation.DoesNotExist`` otherwise."""
    return conversation_list_visible_to(user=user).get(pk=pk)


def conversation_state_visible_to(
    *,
    user: User,
    department_ids: Collection[int],
    department_id: int | None,
    assigned_to_id: int | None,
) -> bool:
    """:func:`conversation_visibility_q` for one conversation whose department and assignee are
    known, with ``department_ids`` the user's departments: the same rule, without a query (the
    WebSocket consumer applies it to every event it forwards)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.sees_everything:
        return True
    return assigned_to_id == user.pk or (
        department_id is not None and department_id in department_ids
    )


def conversation_is_visible_to(*, user: User, conversation: Conversation) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    needs_departments = not user.sees_everything and conversation.assigned_to_id != user.pk
    return conversation_state_visible_to(
        user=user,
        department_ids=set(user.departments.values_list("pk", flat=True))
        if needs_departments and conversation.department_id is not None
        else (),
        department_id=conversation.department_id,
        assigned_to_id=conversation.assigned_to_id,
    )


def user_can_reply(*, user: User, conversation: Conversation) -> bool:
    """Only the assignee writes to the customer (admins may always step in)."""
    if conversation.is_closed or not user.is_active:
        return False
    return user.is_admin or conversation.assigned_to_id == user.pk


def user_can_take_over(*, user: User, conversation: Conversation) -> bool:
    if conversation.is_closed or not conversation_is_visible_to(
        user=user, conversation=conversation
    ):
        return False
    if user.sees_everything:
        return True
    # An agent claims what waits (bot or queue) or is unassigned, never a colleague's conversation.
    return conversation.assigned_to_id in (None, user.pk)


def user_can_transfer(*, user: User, conversation: Conversation) -> bool:
    if conversation.is_closed or not conversation_is_visible_to(
        user=user, conversation=conversation
    ):
        return False
    return user.sees_everything or conversation.assigned_to_id in (None, user.pk)


def user_can_close(*, user: User, conversation: Conversation) -> bool:
    if conversation.is_closed or not conversation_is_visible_to(
        user=user, conversation=conversation
    ):
        return False
    return user.sees_everything or conversation.assigned_to_id == user.pk


def user_can_reopen(*, user: User, conversation: Conversation) -> bool:
    if not conversation.is_closed or not conversation_is_visible_to(
        user=user, conversation=conversation
    ):
        return False
    return user.sees_everything or conversation.assigned_to_id in (None, user.pk)


def conversation_list_messages(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.select_related("sender_user", "reply_to").order_by(
        "created_at", "id"
    )


def conversation_list_events(*, conversation: Conversation) -> QuerySet[ConversationEvent]:
    return conversation.events.select_related("actor").order_by("created_at", "id")


def conversation_get_active_for_customer(
    *, customer_id: int, whatsapp_account_id: int
) -> Conversation | None:
    return (
        Conversation.objects.filter(
            customer_id=customer_id, whatsapp_account_id=whatsapp_account_id
        )
        .exclude(status=ConversationStatus.CLOSED)
        .first()
    )


def quick_reply_list_for(*, conversation: Conversation) -> QuerySet[QuickReply]:
    """The active quick replies for this conversation's department (and the general ones)."""
    department_q = Q(department__isnull=True)
    if conversation.department_id:
        department_q |= Q(department_id=conversation.department_id)
    return QuickReply.objects.filter(department_q, is_active=True).order_by("title")
