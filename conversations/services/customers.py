"""Customers: found or created from what a channel knows of them, and moved to a new number.

The channel says who wrote (:class:`CustomerIdentity`: every form of the number it accepts, its
own user id, the profile name); these services own the rows. Concurrent deliveries for one
person converge on one customer: callers hold :func:`customers_lock` for the identities they
touch, and the unique ``wa_id``/``bsuid`` decide the rest.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from accounts.models import User

from ..models import Conversation, ConversationEvent, ConversationStatus, Customer, EventKind
from . import conversations_changed


@dataclass(frozen=True)
class CustomerIdentity:
    """Who a channel says wrote. ``wa_ids``: every form of the number (the channel's canonical
    form first, e.g. both Brazilian forms with and without the ninth digit); ``phone``: the
    canonical form in E.164; ``bsuid``: the channel's business-scoped user id."""

    wa_ids: tuple[str, ...] = ()
    bsuid: str = ""
    name: str = ""
    phone: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bsuid", (self.bsuid or "").strip()[:64])
        object.__setattr__(self, "name", (self.name or "")[:200])
        if not self.wa_ids and not self.bsuid:
            raise ValueError("a customer needs a WhatsApp id or a business-scoped user id")


def customers_lock(keys: Iterable[str]) -> None:
    """Serialise work on customers across workers (PostgreSQL advisory locks, transaction-long).

    With the partial unique index on active conversations this makes concurrent deliveries for one
    customer converge on one customer row and one conversation. The keys are locked in sorted
    order, so two workers locking overlapping sets wait for each other instead of deadlocking.
    """
    ordered = sorted({k for k in keys if k})
    if connection.vendor == "postgresql" and ordered:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, n)",
                [ordered],
            )


def customer_among(pool: Sequence[Customer], identity: CustomerIdentity) -> Customer | None:
    """The customer of ``pool`` with one of these numbers (the oldest), else that user id."""
    by_wa_id = [c for c in pool if c.wa_id and c.wa_id in identity.wa_ids]
    if by_wa_id:
        return min(by_wa_id, key=lambda c: c.pk)
    return next((c for c in pool if identity.bsuid and c.bsuid == identity.bsuid), None)


def _customer_new(identity: CustomerIdentity) -> Customer:
    """A new (unsaved) customer: the canonical form of the number, its E.164 phone."""
    return Customer(
        wa_id=identity.wa_ids[0] if identity.wa_ids else None,
        bsuid=identity.bsuid or None,
        phone=identity.phone,
        name=identity.name,
    )


def _customer_find(identity: CustomerIdentity) -> Customer | None:
    found = None
    if identity.wa_ids:
        found = Customer.objects.filter(wa_id__in=identity.wa_ids).order_by("pk").first()
    if found is None and identity.bsuid:
        found = Customer.objects.filter(bsuid=identity.bsuid).first()
    return found


@transaction.atomic
def customer_upsert(
    *,
    identity: CustomerIdentity,
    candidates: Sequence[Customer] | None = None,
    adopt_number: bool = True,
) -> Customer:
    """The customer with one of these numbers or this user id, created when new.

    The profile name and missing identifiers are filled in when they arrive; the canonical form
    of the number is adopted (it is what the channel sends to) unless ``adopt_number`` is False:
    a number someone typed at the desk finds the customer but does not replace the form the
    channel reported. ``candidates``: customers read already, looked through instead of the
    database.
    """
    customer = (
        customer_among(candidates, identity) if candidates is not None else _customer_find(identity)
    )
    if customer is None:
        try:
            with transaction.atomic():
                customer = _customer_new(identity)
                customer.save(force_insert=True)
                return customer
        except IntegrityError:
            customer = _customer_find(identity)
            if customer is None:
                raise
    changed: list[str] = []
    if identity.name and customer.name != identity.name and not customer.name_set_by_desk:
        customer.name = identity.name
        changed.append("name")
    if (
        identity.bsuid
        and not customer.bsuid
        and not Customer.objects.filter(bsuid=identity.bsuid).exists()
    ):
        customer.bsuid = identity.bsuid
        changed.append("bsuid")
    canonical = identity.wa_ids[0] if identity.wa_ids else ""
    if (
        adopt_number
        and canonical
        and customer.wa_id != canonical
        and not Customer.objects.filter(wa_id=canonical).exclude(pk=customer.pk).exists()
    ):
        customer.wa_id = canonical
        changed.append("wa_id")
    if canonical and not customer.phone:
        customer.phone = identity.phone
        changed.append("phone")
    if changed:
        customer.save(update_fields=[*changed, "updated_at"])
    return customer


@transaction.atomic
def customers_upsert_many(*, identities: Mapping[str, CustomerIdentity]) -> dict[str, Customer]:
    """The customer of every identity (by the caller's key), read in one query; the new ones are
    written in one INSERT. Should that clash with itself or with a customer created meanwhile (a
    unique id), they are made one by one through :func:`customer_upsert` instead."""
    wa_ids = {form for identity in identities.values() for form in identity.wa_ids}
    bsuids = {identity.bsuid for identity in identities.values() if identity.bsuid}
    pool = list(Customer.objects.filter(Q(wa_id__in=wa_ids) | Q(bsuid__in=bsuids)).order_by("pk"))
    new = {
        key: _customer_new(identity)
        for key, identity in identities.items()
        if customer_among(pool, identity) is None
    }
    customers: dict[str, Customer] = {}
    if len(new) > 1:
        try:
            with transaction.atomic():
                created = Customer.objects.bulk_create(list(new.values()))
        except IntegrityError:
            pass
        else:
            customers = dict(zip(new, created, strict=True))
    for key, identity in identities.items():
        if key in customers:
            continue
        known = customer_among(pool, identity)
        if known is not None and _up_to_date(known, identity):
            customers[key] = known  # a customer who writes again: nothing to write, no savepoint
            continue
        customer = customer_upsert(identity=identity, candidates=pool)
        if customer not in pool:
            pool.append(customer)
        customers[key] = customer
    return customers


def _up_to_date(customer: Customer, identity: CustomerIdentity) -> bool:
    """Would :func:`customer_upsert` leave ``customer`` as it is (its name, user id, number and
    phone already what the identity says)? Only certain answers: when unsure, it is asked."""
    canonical = identity.wa_ids[0] if identity.wa_ids else ""
    return (
        (not identity.name or customer.name == identity.name or customer.name_set_by_desk)
        and (not identity.bsuid or bool(customer.bsuid))
        and (not canonical or (customer.wa_id == canonical and bool(customer.phone)))
    )


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


@dataclass(frozen=True)
class NumberChange:
    customer: Customer
    conversations: list[Conversation]
    applied: bool
    other: Customer | None = None  # who has the new number already, when not applied


@transaction.atomic
def customer_change_number(
    *,
    customer: Customer,
    identity: CustomerIdentity,
    actor: User | None = None,
    conversation: Conversation | None = None,
) -> NumberChange:
    """Move the customer to a new number (``identity``: its forms, canonical first, and phone).

    Writes a ``number_changed`` event on each of their conversations in progress (and on
    ``conversation``) and emits ``conversation.updated``. When another customer already has the
    new number, both are left untouched (the unique ``wa_id`` holds) and the events say so
    (``applied: false``). The caller holds :func:`customers_lock` for the new number.
    """
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.wa_id in identity.wa_ids:
        return NumberChange(customer=customer, conversations=[], applied=True)  # already there
    conversations = _conversations_of(customer, conversation)

    def holder() -> Customer | None:
        return Customer.objects.filter(wa_id__in=identity.wa_ids).exclude(pk=customer.pk).first()

    old_wa_id, old_phone = customer.wa_id, customer.phone
    before = {"wa_id": old_wa_id, "phone": old_phone}
    other = holder()
    if other is None:
        customer.wa_id, customer.phone = identity.wa_ids[0], identity.phone
        try:
            with transaction.atomic():
                customer.save(update_fields=["wa_id", "phone", "updated_at"])
        except IntegrityError:  # created by a worker that did not take the lock: a conflict too
            customer.wa_id, customer.phone = old_wa_id, old_phone
            other = holder()
            if other is None:
                raise
    after = (
        {"wa_id": identity.wa_ids[0], "applied": False, "other_customer": other.pk}
        if other is not None
        else {"wa_id": customer.wa_id, "phone": customer.phone, "applied": True}
    )
    ConversationEvent.objects.bulk_create(
        ConversationEvent(
            conversation=item,
            actor=actor,
            kind=EventKind.NUMBER_CHANGED,
            before=before,
            after=after,
        )
        for item in conversations
    )
    if other is None:
        conversations_changed(conversations=conversations, changes=["customer"])
    return NumberChange(
        customer=customer, conversations=conversations, applied=other is None, other=other
    )
