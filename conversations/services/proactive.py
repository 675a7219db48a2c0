"""Conversations the desk starts (contract §10): an agent writes first, with an approved template.

``POST /conversations`` and the console's "New conversation" form call
:func:`conversation_start`. The customer is found or created exactly as the channel's intake
finds the person who writes (the channel says every form of the number: both Brazilian forms,
with and without the ninth digit), under the same lock. A customer has one conversation in
progress per number (``conversation_one_active_per_customer_number``): a waiting one (with the
bot or in a queue the caller sees) is taken over, the caller's own is reused, a colleague's is a
conflict. The template goes out through the channel like any outbound message.
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from common.events import emit
from common.exceptions import Conflict, NotPermitted, ServiceError
from departments.models import Department

from .. import events, selectors
from ..channels import channel_configured
from ..models import (
    Conversation,
    ConversationStatus,
    Customer,
    EventKind,
    Message,
    MessageType,
)
from ..serializers import conversation_payload
from . import customers, message_create_outbound
from ._base import _assign, _lock, _record, _state
from .capacity import capacity_check, capacity_lock
from .templates import TemplateRequest, template_content


@dataclass(frozen=True)
class ConversationStart:
    conversation: Conversation
    message: Message
    created: bool  # False: the customer's conversation in progress was used


def _department_for(*, actor: User, department: Department | None) -> Department | None:
    """The department the conversation goes to: the chosen one (an agent's own only), else an
    agent's first; supervisors and admins may leave it empty."""
    if department is not None:
        if not department.is_active:
            raise ServiceError(_("That department is inactive."), code="inactive_department")
        if actor.is_agent and not actor.departments.filter(pk=department.pk).exists():
            raise NotPermitted(_("You can only start conversations in your own departments."))
        return department
    if not actor.is_agent:
        return None
    own = actor.departments.filter(is_active=True).order_by("name").first()
    if own is None:
        raise ServiceError(
            _("You belong to no department: ask an administrator to add you to one."),
            code="no_department",
        )
    return own


def _number_for(number_id: int | None) -> int:
    channel = channel_configured()
    if number_id is None:
        return channel.number_default().pk
    if number_id not in {n.pk for n in channel.numbers_active()}:
        raise ServiceError(
            _("Choose one of the business's active numbers."), code="invalid_whatsapp_account"
        )
    return number_id


def _customer_for(*, phone: str, name: str) -> Customer:
    """The customer with this number (either Brazilian form), created when new; a name typed
    here names a contact that has none (it then sticks, as one set at the desk)."""
    identity = channel_configured().customer_identity(address=phone)
    if identity is None or not identity.wa_ids:
        raise ServiceError(
            _(
                "“%(phone)s” is not a WhatsApp number: type it with the country and area codes, "
                "e.g. +55 11 98765-4321."
            )
            % {"phone": phone},
            code="invalid_phone",
        )
    customers.customers_lock([min(identity.wa_ids, key=len)])  # the lock the intake takes
    # The intake's upsert; the number as typed does not replace the one WhatsApp reported.
    customer = customers.customer_upsert(identity=identity, adopt_number=False)
    name = " ".join(name.split())[:200]
    if name and not customer.name:
        customer.name, customer.name_set_by_desk = name, True
        customer.save(update_fields=["name", "name_set_by_desk", "updated_at"])
    return customer


def _take(
    *,
    conversation: Conversation,
    actor: User,
    chosen: Department | None,
    department: Department | None,
) -> Conversation:
    """The customer's conversation in progress, for the caller: theirs already, or taken over
    while it waits (moved to the ``chosen`` department, else to ``department`` when the caller
    does not work in its own); a colleague's (or a queue the caller does not see) is a
    conflict."""
    conversation = _lock(conversation)
    if conversation.assigned_to_id == actor.pk:
        return conversation
    if conversation.assigned_to_id is not None:
        raise Conflict(
            _(
                "%(customer)s already has a conversation in progress with %(agent)s: ask them "
                "(or a supervisor) to transfer it to you."
            )
            % {"customer": conversation.customer, "agent": conversation.assigned_to},
            code="conversation_in_progress",
        )
    waits_for_bot = conversation.status == ConversationStatus.BOT
    if not waits_for_bot and not selectors.user_can_take_over(
        user=actor, conversation=conversation
    ):
        raise Conflict(
            _(
                "%(customer)s is waiting in another department's queue: ask a supervisor to "
                "transfer the conversation to you."
            )
            % {"customer": conversation.customer},
            code="conversation_in_progress",
        )
    capacity_check(conversation=conversation, actor=actor, to_user=actor)
    keeps = actor.sees_everything or (
        conversation.department_id is not None
        and actor.departments.filter(pk=conversation.department_id).exists()
    )
    return _assign(
        conversation=conversation,
        actor=actor,
        to_user=actor,
        kind=EventKind.TAKEN_OVER,
        department=chosen or (None if keeps else department),
    )


def _open(
    *,
    customer: Customer,
    number_id: int,
    actor: User,
    chosen: Department | None,
    department: Department | None,
) -> tuple[Conversation, bool]:
    """A new conversation assigned to the caller, or the customer's one in progress."""
    existing = selectors.conversation_get_active_for_customer(
        customer_id=customer.pk, whatsapp_account_id=number_id
    )
    if existing is None:
        capacity_check(conversation=Conversation(), actor=actor, to_user=actor)
        conversation = Conversation(
            customer=customer,
            whatsapp_account_id=number_id,
            department=department,
            assigned_to=actor,
            status=ConversationStatus.OPEN,
            last_message_at=timezone.now(),
        )
        try:
            with transaction.atomic():
                conversation.save(force_insert=True)
        except IntegrityError:  # the customer wrote meanwhile: the intake's conversation
            existing = selectors.conversation_get_active_for_customer(
                customer_id=customer.pk, whatsapp_account_id=number_id
            )
            if existing is None:
                raise
        else:
            conversation = _lock(conversation)
            _record(
                conversation=conversation,
                actor=actor,
                kind=EventKind.CREATED,
                after={**_state(conversation), "started_by_desk": True},
            )
            _record(
                conversation=conversation,
                actor=actor,
                kind=EventKind.TAKEN_OVER,
                before={"status": None, "department": None, "assigned_to": None},
                after=_state(conversation),
            )
            payload = conversation_payload(conversation)
            emit(events.ConversationCreated(conversation=payload, actor_id=actor.pk))
            emit(
                events.ConversationAssigned(
                    conversation=payload, actor_id=actor.pk, user_id=actor.pk, how="taken_over"
                )
            )
            return conversation, True
    return _take(conversation=existing, actor=actor, chosen=chosen, department=department), False


@transaction.atomic
def conversation_start(
    *,
    actor: User,
    phone: str,
    template: TemplateRequest,
    name: str = "",
    department: Department | None = None,
    number_id: int | None = None,
) -> ConversationStart:
    """Start (or take up) a conversation with the customer at ``phone``, assigned to ``actor``,
    and send them the approved ``template``.

    Agents start conversations in their own departments only (``NotPermitted``), and within
    their capacity (``at_capacity``, :mod:`.capacity`). Emits
    ``conversation.created`` and ``conversation.assigned`` for a new conversation (or
    ``conversation.assigned`` for one taken over) and ``message.created``; a template the
    channel refuses leaves nothing behind.
    """
    if not actor.is_active:
        raise NotPermitted(_("Inactive users cannot start conversations."))
    chosen = department
    capacity_lock(user=actor)  # before the customer's and the conversation's rows
    department = _department_for(actor=actor, department=department)
    number = _number_for(number_id)
    customer = _customer_for(phone=phone, name=name)
    conversation, created = _open(
        customer=customer, number_id=number, actor=actor, chosen=chosen, department=department
    )
    body, fields = template_content(conversation=conversation, template=template)
    message = message_create_outbound(
        conversation=conversation, actor=actor, body=body, type=MessageType.TEMPLATE, **fields
    )
    conversation = selectors.conversation_get_visible(
        user=actor, pk=conversation.pk, with_tags=True
    )
    return ConversationStart(conversation=conversation, message=message, created=created)
