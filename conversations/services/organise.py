"""Organising the desk: tags (admins define them, agents apply them), priorities (set by people
and raised by the admins' automatic rules).

Every change to a conversation's tags or priority writes a ``ConversationEvent`` (before/after)
and emits ``conversation.updated`` with the changed fields.
"""

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from common.events import emit_many
from common.exceptions import NotPermitted, ServiceError

from .. import events, selectors
from ..error_codes import ConversationErrorCode
from ..models import (
    PRIORITY_RANK,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Customer,
    Direction,
    EventKind,
    Message,
    Priority,
    PriorityRule,
    RuleCondition,
    SenderKind,
    Tag,
    color_validator,
)
from ..serializers import conversation_payload
from ..text import text_unaccent
from ._base import _event, _lock

# --- tags (admins) ----------------------------------------------------------------------------


def _require_admin(actor: User) -> None:
    if not (actor.is_active and actor.is_admin):
        raise NotPermitted(
            _("Only administrators manage tags."), code=ConversationErrorCode.ADMIN_ONLY
        )


def _clean_tag(*, name: str, color: str, exclude_pk: int | None = None) -> tuple[str, str]:
    name = " ".join(name.split())[:40]
    if not name:
        raise ServiceError(_("A tag needs a name."), code=ConversationErrorCode.TAG_INVALID)
    try:
        color_validator(color)
    except Exception as exc:
        raise ServiceError(
            _("Enter a colour as #rrggbb."), code=ConversationErrorCode.TAG_INVALID
        ) from exc
    taken = Tag.objects.annotate(lower=Lower("name")).filter(lower=name.lower())
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise ServiceError(
            _("There is already a tag with that name."), code=ConversationErrorCode.TAG_NAME_TAKEN
        )
    return name, color.lower()


@transaction.atomic
def tag_create(*, actor: User, name: str, color: str = "#6b7280") -> Tag:
    _require_admin(actor)
    name, color = _clean_tag(name=name, color=color)
    try:
        with transaction.atomic():
            return Tag.objects.create(name=name, color=color)
    except IntegrityError as exc:  # a concurrent twin
        raise ServiceError(
            _("There is already a tag with that name."), code=ConversationErrorCode.TAG_NAME_TAKEN
        ) from exc


@transaction.atomic
def tag_update(*, actor: User, tag: Tag, name: str | None = None, color: str | None = None) -> Tag:
    _require_admin(actor)
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    tag.name, tag.color = _clean_tag(
        name=tag.name if name is None else name,
        color=tag.color if color is None else color,
        exclude_pk=tag.pk,
    )
    tag.save(update_fields=["name", "color", "updated_at"])
    return tag


@transaction.atomic
def tag_delete(*, actor: User, tag: Tag) -> None:
    """Removes the tag everywhere: each conversation that had it gets a ``tags_changed`` row and
    a ``conversation.updated`` (the history keeps the name in the events that named it)."""
    _require_admin(actor)
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    tagged = list(
        Conversation.objects.filter(tags=tag)
        .select_for_update(of=("self",))
        .order_by("pk")
        .prefetch_related("tags")
    )
    ConversationEvent.objects.bulk_create(
        _event(
            conversation=c,
            actor=actor,
            kind=EventKind.TAGS_CHANGED,
            before={"tags": _names(c.tags.all())},
            after={"tags": _names(t for t in c.tags.all() if t.pk != tag.pk)},
        )
        for c in tagged
    )
    tag.delete()
    rows = Conversation.objects.select_related("customer", "department", "assigned_to")
    emit_many(
        _updated(c, actor=actor, changes=["tags"])
        for c in rows.prefetch_related(*selectors.CONVERSATION_PREFETCH).filter(
            pk__in=[c.pk for c in tagged]
        )
    )


# --- tags on conversations and contacts (agents) ------------------------------------------------


def user_can_organise(*, user: User, conversation: Conversation) -> bool:
    """Tags and priority: supervisors and admins on any conversation, an agent on those it may
    see that are its own or wait in its queue (not a colleague's)."""
    if not (user.is_authenticated and user.is_active):
        return False
    if not selectors.conversation_is_visible_to(user=user, conversation=conversation):
        return False
    return user.sees_everything or conversation.assigned_to_id in (None, user.pk)


def _tags(tag_ids: Collection[int]) -> list[Tag]:
    tags = list(Tag.objects.filter(pk__in=set(tag_ids)).order_by("name"))
    if len(tags) != len(set(tag_ids)):
        raise ServiceError(_("Unknown tag."), code=ConversationErrorCode.UNKNOWN_TAG)
    return tags


def _names(tags: Iterable[Tag]) -> list[dict[str, object]]:
    return [{"id": t.pk, "name": t.name} for t in tags]


def _updated(conversation: Conversation, *, actor: User | None, changes: list[str]):  # type: ignore[no-untyped-def]
    return events.ConversationUpdated(
        conversation=conversation_payload(conversation),
        actor_id=actor.pk if actor is not None else None,
        changes=changes,
    )


@transaction.atomic
def conversation_tags_set(
    *, conversation: Conversation, actor: User, tag_ids: Collection[int]
) -> Conversation:
    """Replace the conversation's tags with ``tag_ids``."""
    conversation = _lock(conversation)
    if not user_can_organise(user=actor, conversation=conversation):
        raise NotPermitted(_("You cannot change the tags of this conversation."))
    tags = _tags(tag_ids)
    before = list(conversation.tags.order_by("name"))
    if {t.pk for t in before} == {t.pk for t in tags}:
        return conversation
    conversation.tags.set(tags)
    _event(
        conversation=conversation,
        actor=actor,
        kind=EventKind.TAGS_CHANGED,
        before={"tags": _names(before)},
        after={"tags": _names(tags)},
    ).save(force_insert=True)
    conversation = _lock(conversation)
    emit_many([_updated(conversation, actor=actor, changes=["tags"])])
    return conversation


@transaction.atomic
def customer_tags_set(*, customer: Customer, actor: User, tag_ids: Collection[int]) -> Customer:
    """Replace the contact's tags; its conversations in progress show it in their history."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if not selectors.customer_is_visible_to(user=actor, customer=customer):
        raise Customer.DoesNotExist
    tags = _tags(tag_ids)
    before = list(customer.tags.order_by("name"))
    if {t.pk for t in before} == {t.pk for t in tags}:
        return customer
    customer.tags.set(tags)
    active = [
        _lock(c)
        for c in customer.conversations.exclude(status=ConversationStatus.CLOSED).order_by("pk")
    ]
    for conversation in active:
        _event(
            conversation=conversation,
            actor=actor,
            kind=EventKind.TAGS_CHANGED,
            before={"contact_tags": _names(before)},
            after={"contact_tags": _names(tags)},
        ).save(force_insert=True)
    emit_many(_updated(c, actor=actor, changes=["customer.tags"]) for c in active)
    return customer


# --- priority ---------------------------------------------------------------------------------


def _rank(priority: str) -> int:
    return PRIORITY_RANK[Priority(priority)]


def _priority_write(
    conversation: Conversation,
    *,
    priority: str,
    actor: User | None,
    rule: PriorityRule | None = None,
) -> None:
    """Set the (locked) conversation's priority and write its history row (the rule that set it,
    when a rule did)."""
    before = conversation.priority
    conversation.priority = priority
    conversation.save(update_fields=["priority", "updated_at"])
    after = {"priority": priority} if rule is None else {"priority": priority, "rule": rule.name}
    _event(
        conversation=conversation,
        actor=actor,
        kind=EventKind.PRIORITY_CHANGED,
        before={"priority": before},
        after=after,
    ).save(force_insert=True)


@transaction.atomic
def conversation_priority_set(
    *, conversation: Conversation, actor: User, priority: str
) -> Conversation:
    if priority not in Priority.values:
        raise ServiceError(_("Unknown priority."), code=ConversationErrorCode.INVALID_PRIORITY)
    conversation = _lock(conversation)
    if not user_can_organise(user=actor, conversation=conversation):
        raise NotPermitted(_("You cannot change the priority of this conversation."))
    if conversation.priority == priority:
        return conversation
    _priority_write(conversation, priority=priority, actor=actor)
    conversation = _lock(conversation)
    emit_many([_updated(conversation, actor=actor, changes=["priority"])])
    return conversation


def _raise_priorities(targets: dict[int, tuple[PriorityRule, str]]) -> list[int]:
    """Raise each conversation to its rule's priority if it is lower now (in the database, so a
    concurrent change by a person is never overwritten by a lower value): the raised ids."""
    raised: list[int] = []
    for conversation_id, (rule, priority) in sorted(targets.items()):
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .filter(pk=conversation_id, priority_rank__lt=_rank(priority))
            .exclude(status=ConversationStatus.CLOSED)
            .first()
        )
        if conversation is None:
            continue
        _priority_write(conversation, priority=priority, actor=None, rule=rule)
        raised.append(conversation_id)
    return raised


def _best(current: tuple[PriorityRule, str] | None, rule: PriorityRule) -> tuple[PriorityRule, str]:
    if current is None or _rank(rule.priority) > _rank(current[1]):
        return rule, rule.priority
    return current


def priority_rules_for_messages(*, messages: Sequence[Message]) -> list[int]:
    """The rules about what a customer wrote (contact tags, words), applied to the conversations
    of these inbound ``messages`` inside the caller's transaction: the ids raised (the caller's
    ``conversation.updated``/``message.created`` carry the new priority)."""
    rules = list(
        PriorityRule.objects.filter(
            is_active=True, condition__in=[RuleCondition.CONTACT_TAG, RuleCondition.KEYWORDS]
        )
    )
    if not rules:
        return []
    targets: dict[int, tuple[PriorityRule, str]] = {}
    tag_rules = [r for r in rules if r.condition == RuleCondition.CONTACT_TAG]
    customer_tags: dict[int, set[int]] = {}
    if tag_rules:
        pairs = Conversation.objects.filter(
            pk__in={m.conversation_id for m in messages}, customer__tags__isnull=False
        ).values_list("pk", "customer__tags")
        for conversation_id, tag_id in pairs:
            customer_tags.setdefault(conversation_id, set()).add(tag_id)
    for message in messages:
        text = text_unaccent(message.body).casefold()
        for rule in rules:
            if rule.condition == RuleCondition.CONTACT_TAG:
                hit = rule.tag_id in customer_tags.get(message.conversation_id, set())
            else:
                hit = any(text_unaccent(w).casefold() in text for w in rule.words)
            if hit:
                targets[message.conversation_id] = _best(targets.get(message.conversation_id), rule)
    return _raise_priorities(targets)


def _waiting_q(*, since: datetime) -> Q:
    """Customers whose last message is older than ``since`` and nobody at the desk answered."""
    answered = Message.objects.filter(
        conversation=OuterRef("pk"),
        direction=Direction.OUT,
        sender=SenderKind.AGENT,
        created_at__gte=OuterRef("last_inbound_at"),
    )
    return Q(
        status__in=[ConversationStatus.PENDING, ConversationStatus.OPEN],
        last_inbound_at__lte=since,
    ) & ~Q(Exists(answered))


@transaction.atomic
def priority_rules_apply_waiting(*, now: datetime | None = None) -> int:
    """The "waiting longer than N minutes" rules over every conversation (the beat task): how
    many conversations were raised; each gets its event row and ``conversation.updated``."""
    now = now or timezone.now()
    targets: dict[int, tuple[PriorityRule, str]] = {}
    for rule in PriorityRule.objects.filter(is_active=True, condition=RuleCondition.WAITING):
        ids = Conversation.objects.filter(
            _waiting_q(since=now - timedelta(minutes=rule.minutes or 0)),
            priority_rank__lt=_rank(rule.priority),
        ).values_list("pk", flat=True)
        for pk in ids:
            targets[pk] = _best(targets.get(pk), rule)
    raised = _raise_priorities(targets)
    if raised:
        rows = Conversation.objects.select_related(
            "customer", "department", "assigned_to"
        ).prefetch_related("tags", "customer__tags")
        emit_many(_updated(c, actor=None, changes=["priority"]) for c in rows.filter(pk__in=raised))
    return len(raised)


@transaction.atomic
def conversation_organise(
    *, conversation: Conversation, actor: User, priority: str, tag_ids: Collection[int]
) -> Conversation:
    """The console's form: priority and tags at once (each change its own event row)."""
    conversation = conversation_priority_set(
        conversation=conversation, actor=actor, priority=priority
    )
    return conversation_tags_set(conversation=conversation, actor=actor, tag_ids=tag_ids)
