"""Changes to a customer's WhatsApp identity that Meta reports.

A ``system`` message of type ``customer_changed_number`` (``user_changed_number`` in newer
payloads) comes *from* the old number and names the new one in ``system.wa_id`` (``new_wa_id``
before Graph API v12). From then on the old number is dead: replies must go to the new one, so the
customer's ``wa_id`` and ``phone`` change with it. The system message itself stays in the
timeline (inbound processing stores it like any message).
"""

import logging
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import User
from common.exceptions import ServiceError
from conversations.models import Conversation, Customer, Message
from conversations.services import customers
from conversations.services.customers import CustomerIdentity
from whatsapp.identity import e164, wa_id_variants
from whatsapp.models import ChannelError, ChannelErrorKind

logger = logging.getLogger(__name__)

NUMBER_CHANGED_TYPES = frozenset({"customer_changed_number", "user_changed_number"})


def _report_conflict(
    *, change: customers.NumberChange, other: Customer, new_wa_id: str, old_wa_id: str
) -> None:
    """Another customer already has the new number: nothing was changed; the admins are told."""
    customer = change.customer
    details = _(
        "Customer #%(customer)s (%(old)s) changed their WhatsApp number to %(new)s, which "
        "customer #%(other)s already has; the customers were left as they are."
    ) % {"customer": customer.pk, "old": old_wa_id, "new": new_wa_id, "other": other.pk}
    ChannelError.objects.create(
        kind=ChannelErrorKind.WEBHOOK,
        account=change.conversations[0].whatsapp_account if change.conversations else None,
        title=_("A customer changed to a number another customer has"),
        details=details,
        data={"customer": customer.pk, "other_customer": other.pk, "new_wa_id": new_wa_id},
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

    The core writes a ``number_changed`` event on each of their conversations in progress (and on
    ``conversation``) and emits ``conversation.updated``. When another customer already has the
    new number, both are left untouched (the unique ``wa_id`` holds): the event says so
    (``applied: false``) and a ``ChannelError`` tells the admins.
    """
    variants = wa_id_variants(new_wa_id)
    if not variants:
        raise ServiceError(_("This is not a WhatsApp number."), code="invalid_wa_id")
    customers.customers_lock([min(variants, key=len)])  # the lock inbound processing takes
    old_wa_id = customer.wa_id or ""
    change = customers.customer_change_number(
        customer=customer,
        identity=CustomerIdentity(wa_ids=tuple(variants), phone=e164(variants[0])),
        actor=actor,
        conversation=conversation,
    )
    if change.other is not None:
        _report_conflict(
            change=change, other=change.other, new_wa_id=variants[0], old_wa_id=old_wa_id
        )
    elif change.conversations or change.customer.wa_id != old_wa_id:
        logger.info("customer %s changed number %s -> %s", customer.pk, old_wa_id, variants[0])
    return change.customer


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
