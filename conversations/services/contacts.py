"""Contacts (the desk's name and notes for a customer) and quick replies (shared ones are the
admins', in the back office; personal ones their owner's, in the console).

A contact's change emits ``conversation.updated`` (``changes``: ``customer.name``,
``customer.notes``) for each of its conversations in progress, as a change of its tags does: the
consoles showing them refresh, subscribers of outgoing webhooks hear of it. Contract §8 has no
contact event of its own and this keeps it so.
"""

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.models import User
from common.events import emit_many
from common.exceptions import NotPermitted, ServiceError
from departments.models import Department

from .. import selectors
from ..error_codes import ConversationErrorCode
from ..models import ConversationStatus, Customer, QuickReply
from ._base import _lock
from .organise import _updated

CONTACT_NAME_MAX = 200
CONTACT_NOTES_MAX = 5000


def _clean_contact(*, name: str | None, notes: str | None) -> tuple[str | None, str | None]:
    if name is not None:
        name = " ".join(name.split())
        if not name:
            raise ServiceError(
                _("A contact needs a name."), code=ConversationErrorCode.CONTACT_INVALID
            )
        if len(name) > CONTACT_NAME_MAX:
            raise ServiceError(
                _("The name is too long (at most %(max)d characters).") % {"max": CONTACT_NAME_MAX},
                code=ConversationErrorCode.CONTACT_INVALID,
            )
    if notes is not None:
        notes = notes.replace("\r\n", "\n").strip()
        if len(notes) > CONTACT_NOTES_MAX:
            raise ServiceError(
                _("The notes are too long (at most %(max)d characters).")
                % {"max": CONTACT_NOTES_MAX},
                code=ConversationErrorCode.CONTACT_INVALID,
            )
    return name, notes


@transaction.atomic
def customer_update(
    *, customer: Customer, actor: User, name: str | None = None, notes: str | None = None
) -> Customer:
    """The desk's name and notes of a contact ``actor`` may see (``None``: left as it is).

    A name given here sticks: the customer's WhatsApp profile name no longer replaces it."""
    name, notes = _clean_contact(name=name, notes=notes)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if not selectors.customer_is_visible_to(user=actor, customer=customer):
        raise Customer.DoesNotExist
    changes: list[str] = []
    fields: list[str] = []
    if name is not None and (name != customer.name or not customer.name_set_by_desk):
        if name != customer.name:
            changes.append("customer.name")
        customer.name = name
        customer.name_set_by_desk = True
        fields += ["name", "name_set_by_desk"]
    if notes is not None and notes != customer.notes:
        customer.notes = notes
        changes.append("customer.notes")
        fields.append("notes")
    if not fields:
        return customer
    customer.save(update_fields=[*fields, "updated_at"])
    if changes:
        active = [
            _lock(c)
            for c in customer.conversations.exclude(status=ConversationStatus.CLOSED).order_by("pk")
        ]
        emit_many(_updated(c, actor=actor, changes=changes) for c in active)
    return customer


# --- quick replies ----------------------------------------------------------------------------


def _clean_reply(*, shortcut: str, title: str, body: str) -> tuple[str, str, str]:
    shortcut = shortcut.strip().lstrip("/").lower()
    title = " ".join(title.split())
    body = body.replace("\r\n", "\n").strip()
    if not shortcut or len(shortcut) > 40 or not all(ch.isalnum() or ch in "-_" for ch in shortcut):
        raise ServiceError(
            _("A shortcut is up to 40 letters, digits, hyphens or underscores."),
            code=ConversationErrorCode.QUICK_REPLY_INVALID,
        )
    if not title or len(title) > 100:
        raise ServiceError(
            _("A quick reply needs a title of up to 100 characters."),
            code=ConversationErrorCode.QUICK_REPLY_INVALID,
        )
    if not body or len(body) > 4096:
        raise ServiceError(
            _("A quick reply needs a text of up to 4096 characters."),
            code=ConversationErrorCode.QUICK_REPLY_INVALID,
        )
    return shortcut, title, body


def _taken(*, reply: QuickReply, exclude_pk: int | None) -> bool:
    rows = QuickReply.objects.filter(shortcut=reply.shortcut)
    rows = rows.filter(owner=reply.owner) if reply.owner_id else rows.filter(owner__isnull=True)
    if exclude_pk is not None:
        rows = rows.exclude(pk=exclude_pk)
    return rows.exists()


def _save(reply: QuickReply, *, exclude_pk: int | None) -> QuickReply:
    taken = ServiceError(
        _("There is already a quick reply with that shortcut."),
        code=ConversationErrorCode.QUICK_REPLY_SHORTCUT_TAKEN,
    )
    if _taken(reply=reply, exclude_pk=exclude_pk):
        raise taken
    try:
        with transaction.atomic():
            reply.save()
    except IntegrityError as exc:  # a concurrent twin
        raise taken from exc
    return reply


def user_can_manage_quick_reply(*, user: User, reply: QuickReply) -> bool:
    """Its owner manages a personal reply; admins manage the shared ones."""
    if not (user.is_authenticated and user.is_active):
        return False
    if reply.owner_id is not None:
        return reply.owner_id == user.pk
    return user.is_admin


@transaction.atomic
def quick_reply_create(
    *,
    actor: User,
    shortcut: str,
    title: str,
    body: str,
    personal: bool = True,
    department: Department | None = None,
    is_active: bool = True,
) -> QuickReply:
    """A personal quick reply of ``actor``; or (admins, ``personal=False``) a shared one, general
    or for ``department``."""
    if not personal and not actor.is_admin:
        raise NotPermitted(_("Only administrators manage shared quick replies."))
    if personal and department is not None:
        raise ServiceError(
            _("A personal quick reply is not tied to a department."),
            code=ConversationErrorCode.QUICK_REPLY_INVALID,
        )
    shortcut, title, body = _clean_reply(shortcut=shortcut, title=title, body=body)
    reply = QuickReply(
        shortcut=shortcut,
        title=title,
        body=body,
        owner=actor if personal else None,
        department=None if personal else department,
        is_active=is_active,
    )
    return _save(reply, exclude_pk=None)


_UNSET = object()


@transaction.atomic
def quick_reply_update(
    *,
    reply: QuickReply,
    actor: User,
    shortcut: str | None = None,
    title: str | None = None,
    body: str | None = None,
    is_active: bool | None = None,
    department: Department | object | None = _UNSET,
) -> QuickReply:
    """Change a quick reply ``actor`` manages (:func:`user_can_manage_quick_reply`)."""
    reply = QuickReply.objects.select_for_update().get(pk=reply.pk)
    if not user_can_manage_quick_reply(user=actor, reply=reply):
        raise NotPermitted(_("You cannot change this quick reply."))
    reply.shortcut, reply.title, reply.body = _clean_reply(
        shortcut=reply.shortcut if shortcut is None else shortcut,
        title=reply.title if title is None else title,
        body=reply.body if body is None else body,
    )
    if is_active is not None:
        reply.is_active = is_active
    if department is not _UNSET:
        if reply.owner_id is not None and department is not None:
            raise ServiceError(
                _("A personal quick reply is not tied to a department."),
                code=ConversationErrorCode.QUICK_REPLY_INVALID,
            )
        reply.department = department  # type: ignore[assignment]
    return _save(reply, exclude_pk=reply.pk)


@transaction.atomic
def quick_reply_delete(*, reply: QuickReply, actor: User) -> None:
    reply = QuickReply.objects.select_for_update().get(pk=reply.pk)
    if not user_can_manage_quick_reply(user=actor, reply=reply):
        raise NotPermitted(_("You cannot delete this quick reply."))
    reply.delete()
