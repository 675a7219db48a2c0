"""Changes to a customer's WhatsApp identity that Meta reports.

A ``system`` message of type ``customer_changed_number`` (``user_changed_number`` in newer
payloads) comes *from* the old number and names the new one in ``system.wa_id`` (``new_wa_id``
before Graph API v12). From then on the old number is dead: replies must go to the new one, so the
customer's ``wa_id`` and ``phone`` change with it. The system message itself stays in the
timeline (inbound processing stores it like any message).
"""

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.models import User
from common.exceptions import ServiceError
from conversations import services as conversation_services
from conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Customer,
    EventKind,
    Message,
)
from whatsapp.identity import e164, wa_id_variants
from whatsapp.models import ChannelError, ChannelErrorKind

from .inbound import _lock_identities

logger = logging.getLogger(__name__)

NUMBER_CHANGED_TYPES = frozenset({"customer_changed_number", "user_changed_number"})


def _conversations_of(customer: Customer, also: Conversation | None) -> list[Conversation]:
    found = {
        c.pk: c
        for c in Conversation.objects.filter(customer=customer)
        .exclude(status=ConversationStatus.CLOSED)
        .select_related("whatsapp_account")
    }
    if also is not None:
        found.setdefault(also.pk, also)
    for conversation in found.values():
        conversation.customer = customer  # the payload shows the new phone
    return sorted(found.values(), key=lambda c: c.pk)


def _record_conflict(
    *,
    customer: Customer,
    other: Customer,
    new_wa_id: str,
    conversations: list[Conversation],
    actor: User | None,
) -> None:
    """Another customer already has the new number: nothing is changed, the admins are told."""
    details = _(
        "Customer #%(customer)s (%(old)s) changed their WhatsApp number to %(new)s, which "
        "customer #%(other)s already has; the customers were left as they are."
    ) % {"customer": customer.pk, "old": customer.wa_id, "new": new_wa_id, "other": other.pk}
    ChannelError.objects.create(
        kind=ChannelErrorKind.WEBHOOK,
        account=conversations[0].whatsapp_account if conversations else None,
        title=_("A customer changed to a number another customer has"),
        details=details,
        data={"customer": customer.pk, "other_customer": other.pk, "new_wa_id": new_wa_id},
    )
    for conversation in conversations:
        ConversationEvent.objects.create(
            conversation=conversation,
            actor=actor,
            kind=EventKind.NUMBER_CHANGED,
            before={"wa_id": customer.wa_id, "phone": customer.phone},
            after={"wa_id": new_wa_id, "applied": False, "other_customer": other.pk},
        )
    logger.warning("customer %s changed number to %s, held by %s", customer.pk, new_wa_id, other.pk)


@transaction.atomic
def customer_change_number(
    *,
    customer: Customer,
    new_wa_id: str,
    actor: User | None = None,
    conversation: Conversation | None = None,
) -> Customer:
    """Move the customer to their new WhatsApp number (``wa_id`` and E.164 ``phone``).

    Writes a ``number_changed`` event on each of their conversations in progress (and on
    ``conversation``) and broadcasts ``conversation_update`` after commit. When another customer
    already has the new number, both are left untouched (the unique ``wa_id`` holds): the event
    says so (``applied: false``) and a ``ChannelError`` tells the admins.
    """
    variants = wa_id_variants(new_wa_id)
    if not variants:
        raise ServiceError(_("This is not a WhatsApp number."), code="invalid_wa_id")
    new = variants[0]
    _lock_identities([min(variants, key=len)])  # the lock inbound processing takes per number
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.wa_id in variants:
        return customer  # already there (a redelivery, or either Brazilian form)
    conversations = _conversations_of(customer, conversation)

    def holder() -> Customer | None:
        return Customer.objects.filter(wa_id__in=variants).exclude(pk=customer.pk).first()

    old_wa_id, old_phone = customer.wa_id, customer.phone
    before = {"wa_id": old_wa_id, "phone": old_phone}
    other = holder()
    if other is None:
        customer.wa_id, customer.phone = new, e164(new)
        try:
            with transaction.atomic():
                customer.save(update_fields=["wa_id", "phone", "updated_at"])
        except IntegrityError:  # created by a worker that did not take the lock: a conflict too
            customer.wa_id, customer.phone = old_wa_id, old_phone
            other = holder()
            if other is None:
                raise
    if other is not None:
        _record_conflict(
            customer=customer,
            other=other,
            new_wa_id=new,
            conversations=conversations,
            actor=actor,
        )
        return customer
    for item in conversations:
        ConversationEvent.objects.create(
            conversation=item,
            actor=actor,
            kind=EventKind.NUMBER_CHANGED,
            before=before,
            after={"wa_id": customer.wa_id, "phone": customer.phone, "applied": True},
        )
    conversation_services.conversations_changed(conversations=conversations, changes=["customer"])
    logger.info("customer %s changed number %s -> %s", customer.pk, old_wa_id, new)
    return customer


def _new_wa_id(system: Any) -> str:
    if not isinstance(system, dict) or system.get("type") not in NUMBER_CHANGED_TYPES:
        return ""
    return str(system.get("wa_id") or system.get("new_wa_id") or "")


def customer_number_changed_from_system(*, message: Message) -> Customer | None:
    """Inbound processing's hook for a stored ``system`` message: apply a number change.

    Returns the customer when the message reports one (changed, or left as it was on a conflict);
    None for other system messages (e.g. ``user_changed_user_id``) or without a usable number.
    """
    new_wa_id = _new_wa_id((message.raw_payload or {}).get("system"))
    if not wa_id_variants(new_wa_id):
        return None
    conversation = message.conversation
    return customer_change_number(
        customer=conversation.customer, new_wa_id=new_wa_id, conversation=conversation
    )
