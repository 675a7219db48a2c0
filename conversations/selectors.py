"""Reads about conversations, scoped to what the asking user may see (contract §4 "Roles").

Every interface reads through here: the visibility rule, the console's inbox and its tab counts,
the one timeline of a conversation (console and ``GET /conversations/:id/history``), the
supervisors' board. Each read costs a fixed number of queries, whatever the number of rows.
"""

import re
from collections.abc import Collection, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import (
    Count,
    Exists,
    F,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import presence
from accounts.models import Availability, Role, User
from common.api import id_param, page_param
from common.exceptions import NotPermitted
from common.replica import read_alias, replica_reads
from departments.models import AssignmentMode, Department

from .models import (
    Conversation,
    ConversationEvent,
    ConversationNote,
    ConversationStatus,
    Customer,
    Direction,
    EventKind,
    Message,
    MessageReaction,
    MessageStatus,
    MessageType,
    Priority,
    QuickReply,
    Tag,
)
from .search import Unaccent, conversation_list_search, search_time_limit
from .text import text_unaccent

# The queue: the most urgent first, then the customer who has waited longest.
QUEUE_ORDER = (F("priority_rank").desc(), F("last_inbound_at").asc(nulls_last=True), "id")


def conversation_order_as_queue(rows: QuerySet[Conversation]) -> QuerySet[Conversation]:
    return rows.order_by(*QUEUE_ORDER)


# What lists of conversations prefetch to show their tags and their contact's (two queries
# whatever the number of rows).
CONVERSATION_PREFETCH = ("tags", "customer__tags")


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


def conversation_get_visible(*, user: User, pk: int, with_tags: bool = False) -> Conversation:
    """The conversation ``pk`` if ``user`` may see it; ``Conversation.DoesNotExist`` otherwise
    (``with_tags``: with its tags and its contact's, for a page that shows them)."""
    rows = conversation_list_visible_to(user=user)
    if with_tags:
        rows = rows.prefetch_related(*CONVERSATION_PREFETCH)
    return rows.get(pk=pk)


def _visible_customers_q(*, user: User) -> Q:
    """A contact is visible to ``user`` when at least one of its conversations is (the one
    visibility rule); supervisors and admins see every contact, with conversations or not."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.sees_everything:
        return Q()
    visible = Conversation.objects.filter(
        conversation_visibility_q(user=user), customer_id=OuterRef("pk")
    )
    return Q(Exists(visible))


CONTACT_PAGE_SIZE = 25
CONTACT_CONVERSATIONS_PAGE_SIZE = 25


def customer_list_visible_to(
    *, user: User, search: str = "", tag: int | None = None
) -> QuerySet[Customer]:
    """The contacts ``user`` may see, the most recent activity first (``last_activity_at``: the
    latest of their conversations ``user`` sees), with their tags prefetched: one query per page
    and one for the tags, whatever the number of rows.

    ``search``: the name (accents and case ignored) or, with 3 digits or more, the phone number.
    ``tag``: only the contacts with that tag."""
    visible = conversation_list_visible_to(user=user).filter(customer_id=OuterRef("pk"))
    rows = Customer.objects.filter(_visible_customers_q(user=user)).annotate(
        last_activity_at=Subquery(
            visible.order_by("-last_message_at").values("last_message_at")[:1]
        )
    )
    search = search.strip()
    if search:
        plain = text_unaccent(search)
        match = Q(plain_name__icontains=plain)
        digits = "".join(ch for ch in search if ch.isdigit())
        if len(digits) >= 3:
            match |= Q(phone__contains=digits) | Q(wa_id__contains=digits)
        rows = rows.annotate(plain_name=Unaccent("name")).filter(match)
    if tag is not None:
        rows = rows.filter(
            Exists(Customer.tags.through.objects.filter(customer_id=OuterRef("pk"), tag_id=tag))
        )
    return rows.prefetch_related("tags").order_by(
        F("last_activity_at").desc(nulls_last=True), "name", "pk"
    )


def customer_get_visible(*, user: User, pk: int, with_tags: bool = False) -> Customer:
    """The contact ``pk`` if ``user`` may see it (:func:`_visible_customers_q`); else
    ``Customer.DoesNotExist`` (``with_tags``: with its tags, for a page that shows them)."""
    rows = Customer.objects.filter(_visible_customers_q(user=user))
    if with_tags:
        rows = rows.prefetch_related("tags")
    return rows.get(pk=pk)


def customer_is_visible_to(*, user: User, customer: Customer) -> bool:
    return Customer.objects.filter(_visible_customers_q(user=user), pk=customer.pk).exists()


def customer_list_conversations(*, user: User, customer: Customer) -> QuerySet[Conversation]:
    """The contact's conversations ``user`` may see, most recent activity first, with their tags
    (the API's and the contact page's list: a fixed number of queries)."""
    return (
        conversation_list_visible_to(user=user)
        .filter(customer_id=customer.pk)
        .prefetch_related(*CONVERSATION_PREFETCH)
    )


def tag_list() -> QuerySet[Tag]:
    return Tag.objects.order_by("name")


def tag_get(*, pk: int) -> Tag:
    return Tag.objects.get(pk=pk)


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


def user_marks_read(*, user: User, conversation: Conversation) -> bool:
    """Whether ``user`` reading the conversation clears its unread count: its assignee's reading,
    or an agent's on a conversation nobody has yet. A supervisor or admin looking at a colleague's
    conversation (or the queue) leaves the badge for the agents."""
    if conversation.assigned_to_id is not None:
        return conversation.assigned_to_id == user.pk
    return not user.sees_everything


# What each role may do with a conversation it can see; the ``user_can_*`` selectors add that it
# can see it (and whether it is closed).


def _may_take_over(user: User, conversation: Conversation) -> bool:
    # An agent claims what waits (bot or queue) or is unassigned, never a colleague's conversation.
    return user.sees_everything or conversation.assigned_to_id in (None, user.pk)


def _may_transfer(user: User, conversation: Conversation) -> bool:
    return user.sees_everything or conversation.assigned_to_id in (None, user.pk)


def _may_close(user: User, conversation: Conversation) -> bool:
    return user.sees_everything or conversation.assigned_to_id == user.pk


def _may_reopen(user: User, conversation: Conversation) -> bool:
    return user.sees_everything or conversation.assigned_to_id in (None, user.pk)


def user_can_take_over(*, user: User, conversation: Conversation) -> bool:
    if conversation.is_closed or not conversation_is_visible_to(
        user=user, conversation=conversation
    ):
        return False
    return _may_take_over(user, conversation)


def user_can_transfer(*, user: User, conversation: Conversation) -> bool:
    if conversation.is_closed or not conversation_is_visible_to(
        user=user, conversation=conversation
    ):
        return False
    return _may_transfer(user, conversation)


def user_can_close(*, user: User, conversation: Conversation) -> bool:
    if conversation.is_closed or not conversation_is_visible_to(
        user=user, conversation=conversation
    ):
        return False
    return _may_close(user, conversation)


def user_can_reopen(*, user: User, conversation: Conversation) -> bool:
    if not conversation.is_closed or not conversation_is_visible_to(
        user=user, conversation=conversation
    ):
        return False
    return _may_reopen(user, conversation)


@dataclass(frozen=True)
class ConversationRights:
    reply: bool
    take_over: bool
    transfer: bool
    close: bool
    reopen: bool


def conversation_rights(*, user: User, conversation: Conversation) -> ConversationRights:
    """Every ``user_can_*`` at once, asking for the user's departments once at most (the console's
    pane shows them all)."""
    closed = conversation.is_closed
    rules = {
        "take_over": not closed and _may_take_over(user, conversation),
        "transfer": not closed and _may_transfer(user, conversation),
        "close": not closed and _may_close(user, conversation),
        "reopen": closed and _may_reopen(user, conversation),
    }
    visible = any(rules.values()) and conversation_is_visible_to(
        user=user, conversation=conversation
    )
    return ConversationRights(
        reply=user_can_reply(user=user, conversation=conversation),
        **{name: visible and allowed for name, allowed in rules.items()},
    )


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


def quick_reply_list_for(
    *, conversation: Conversation, user: User | None = None
) -> QuerySet[QuickReply]:
    """The active quick replies offered in this conversation's composer: the general ones, its
    department's, and ``user``'s personal ones (nobody else's)."""
    shared_q = Q(department__isnull=True)
    if conversation.department_id:
        shared_q |= Q(department_id=conversation.department_id)
    scope_q = Q(owner__isnull=True) & shared_q
    if user is not None and user.is_authenticated:
        scope_q |= Q(owner=user)
    return QuickReply.objects.filter(scope_q, is_active=True).order_by("title", "id")


def quick_reply_list_visible_to(*, user: User) -> QuerySet[QuickReply]:
    """The quick replies ``user`` may read: their own personal ones, and the shared ones
    (supervisors and admins: all of them; agents: the active general ones and their departments').
    Someone else's personal reply is never among them."""
    if not user.is_authenticated or not user.is_active:
        return QuickReply.objects.none()
    if user.sees_everything:
        shared_q = Q()
    else:
        shared_q = Q(is_active=True) & (
            Q(department__isnull=True) | Q(department__in=user.departments.values("pk"))
        )
    return (
        QuickReply.objects.filter(Q(owner=user) | (Q(owner__isnull=True) & shared_q))
        .select_related("department")
        .order_by("title", "id")
    )


def quick_reply_get_visible(*, user: User, pk: int) -> QuickReply:
    """``QuickReply.DoesNotExist`` for one ``user`` may not read (someone else's personal one)."""
    return quick_reply_list_visible_to(user=user).get(pk=pk)


# The variables a quick reply may hold, filled in for the open conversation: the customer's name,
# the agent's name and the conversation's protocol (the desk's number for it: its id, shown as
# "#42" in the console).
QUICK_REPLY_VARIABLES = ("nome", "agente", "protocolo")
_VARIABLE_RE = re.compile(r"\{\{\s*(nome|agente|protocolo)\s*\}\}")


def quick_reply_render(*, body: str, conversation: Conversation, user: User) -> str:
    """``body`` with ``{{nome}}``, ``{{agente}}`` and ``{{protocolo}}`` filled in, in one pass (a
    customer named "{{agente}}" stays so). Plain text: the template escapes it where shown."""
    values = {
        "nome": conversation.customer.name,
        "agente": user.name or user.get_short_name(),
        "protocolo": str(conversation.pk),
    }
    return _VARIABLE_RE.sub(lambda m: values[m.group(1)], body)


def conversation_list_past_for_customer(
    *, user: User, conversation: Conversation, limit: int = 10
) -> list[Conversation]:
    """The customer's other conversations that ``user`` may see, most recent first."""
    return list(
        conversation_list_visible_to(user=user)
        .filter(customer_id=conversation.customer_id)
        .exclude(pk=conversation.pk)[:limit]
    )


def department_list_active() -> QuerySet[Department]:
    """The departments the console offers (filters, transfer targets)."""
    return Department.objects.filter(is_active=True).only("pk", "name")


def department_list_startable_by(*, user: User) -> QuerySet[Department]:
    """The departments ``user`` may start a conversation in: an agent's own, else every one."""
    found = department_list_active().order_by("name")
    return found if user.sees_everything else found.filter(pk__in=user.departments.values("pk"))


def user_list_inbox_agents() -> QuerySet[User]:
    """The people the inbox can be filtered by: every active user but the admins."""
    return (
        User.objects.people()
        .filter(is_active=True)
        .exclude(role=Role.ADMIN)
        .only("pk", "name", "email")
    )


def user_list_transfer_targets(*, conversation: Conversation) -> QuerySet[User]:
    """The agents and supervisors ``conversation`` may be handed to (not its current assignee),
    each with ``open_count`` (the open conversations they hold: the picker shows an agent's load
    against their capacity) in the same query."""
    held = (
        Conversation.objects.filter(assigned_to=OuterRef("pk"), status__in=ASSIGNED_OPEN_STATUSES)
        .order_by()
        .values("assigned_to")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        User.objects.people()
        .filter(is_active=True, role__in=[Role.AGENT, Role.SUPERVISOR])
        .exclude(pk=conversation.assigned_to_id or 0)
        .only("pk", "name", "email", "role", "max_conversations")
        .annotate(open_count=Coalesce(Subquery(held), 0))
    )


def conversation_get_assignee(*, conversation_id: int) -> User | None:
    """Who the conversation is assigned to now, as stored (one query)."""
    return User.objects.filter(assigned_conversations__pk=conversation_id).first()


def user_get_active(*, pk: int) -> User | None:
    """An active user to hand a conversation to (the service checks the rest)."""
    return User.objects.people().filter(pk=pk, is_active=True).first()


def department_get(*, pk: int) -> Department | None:
    return Department.objects.filter(pk=pk).first()


def message_get_retryable(
    *, conversation: Conversation, pk: int, types: Collection[str]
) -> Message | None:
    """The conversation's outbound message ``pk`` if it failed and is of one of ``types``."""
    return conversation.messages.filter(
        pk=pk, direction=Direction.OUT, status=MessageStatus.FAILED, type__in=types
    ).first()


def message_get_quotable(*, conversation: Conversation, pk: int) -> Message | None:
    """The conversation's message ``pk`` that a reply may quote (anything but a reaction or a
    system line)."""
    return (
        conversation.messages.exclude(type__in=[MessageType.REACTION, MessageType.SYSTEM])
        .filter(pk=pk)
        .first()
    )


def message_get_reactable(*, conversation: Conversation, pk: int) -> Message | None:
    """The customer's message ``pk`` of the conversation that the desk may react to (one WhatsApp
    knows, i.e. with its id)."""
    return (
        conversation.messages.filter(pk=pk, direction=Direction.IN, wa_message_id__isnull=False)
        .exclude(type__in=[MessageType.REACTION, MessageType.SYSTEM])
        .select_related("conversation")
        .first()
    )


# --- the console's inbox ------------------------------------------------------------------------

INBOX_PAGE_SIZE = 25


@dataclass(frozen=True)
class Tab:
    key: str
    label: Any


TABS = (
    Tab("inbox", _("Inbox")),
    Tab("mine", _("Mine")),
    Tab("queue", _("Queue")),
    Tab("bot", _("Bot")),
    Tab("all", _("All open")),
    Tab("closed", _("Closed")),
)
TAB_KEYS = frozenset(tab.key for tab in TABS)


@dataclass(frozen=True)
class TabCount:
    key: str
    label: Any
    count: int
    capped: bool = False  # there are more than ``count`` (``LIST_COUNT_CAP``): shown "N+"


def _tab_filters(*, user: User) -> dict[str, Q]:
    """What each tab shows, on top of what the user may see."""
    not_closed = ~Q(status=ConversationStatus.CLOSED)
    if user.sees_everything:
        queue = Q(status=ConversationStatus.PENDING)
    else:
        queue = Q(status=ConversationStatus.PENDING, department__in=user.departments.values("pk"))
    mine = Q(assigned_to=user) & not_closed
    return {
        "inbox": queue | mine,
        "mine": mine,
        "queue": queue,
        "bot": Q(status=ConversationStatus.BOT),
        "all": not_closed,
        "closed": Q(status=ConversationStatus.CLOSED),
    }


@dataclass(frozen=True)
class InboxQuery:
    """What the inbox shows: a tab, a search, filters and a page (the console's query string)."""

    tab: str = "inbox"
    q: str = ""
    department: int | None = None
    agent: int | None = None
    status: str = ""
    number: int | None = None  # the business number (``whatsapp_account``) it came through
    tag: int | None = None
    priority: str = ""
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "InboxQuery":
        """From a query string; anything unknown or malformed falls back to the default."""
        tab = params.get("tab", "inbox")
        status = params.get("status", "")
        return cls(
            tab=tab if tab in TAB_KEYS else "inbox",
            q=params.get("q", "").strip()[:100],
            department=id_param(params.get("department")),
            agent=id_param(params.get("agent")),
            status=status if status in ConversationStatus.values else "",
            number=id_param(params.get("number")),
            tag=id_param(params.get("tag")),
            priority=priority
            if (priority := params.get("priority", "")) in Priority.values
            else "",
            page=page_param(params.get("page")),
        )

    def params(self, **override: Any) -> str:
        """The query string that gives this query back, with ``override`` applied."""
        values = {
            "tab": self.tab,
            "q": self.q,
            "department": self.department or "",
            "agent": self.agent or "",
            "status": self.status,
            "number": self.number or "",
            "tag": self.tag or "",
            "priority": self.priority,
            "page": self.page if self.page > 1 else "",
        } | override
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    @property
    def filtered(self) -> bool:
        return bool(
            self.q
            or self.department
            or self.agent
            or self.status
            or self.number
            or self.tag
            or self.priority
        )

    @property
    def as_queue(self) -> bool:
        """The queue lists the most urgent first, then the longest waiting."""
        return self.tab == "queue" or self.status == ConversationStatus.PENDING


@dataclass(frozen=True)
class InboxPage:
    conversations: Sequence[Conversation]
    has_next: bool
    has_previous: bool


@dataclass(frozen=True)
class TabSummary:
    tabs: list[TabCount]
    unread: int  # conversations of the Inbox tab with something the customer wrote unread


def _capped_counts(
    parts: Mapping[str, QuerySet[Any] | tuple[QuerySet[Any], ...]], *, cap: int
) -> dict[str, int]:
    """How many rows each queryset of ``parts`` has, counting at most ``cap + 1`` of each: one
    query of scalar subqueries (``SELECT (SELECT count(*) FROM (… LIMIT cap+1)), …``), so a big
    desk never pays an exact COUNT(*) over all its rows at each page. A part given as a tuple of
    disjoint querysets is their sum: each one's own index serves it, where their ``OR`` had
    PostgreSQL filter one index's rows until ``cap`` of them matched (7 ms of 9 at 10M messages).
    """
    selects: list[str] = []
    params: list[Any] = []
    for key, rows in parts.items():
        terms = []
        for index, piece in enumerate(rows if isinstance(rows, tuple) else (rows,)):
            sql, values = piece.order_by().values("pk")[: cap + 1].query.sql_with_params()
            terms.append(f'(SELECT count(*) FROM ({sql}) AS "capped_{key}_{index}")')  # noqa: S608
            params.extend(values)
        selects.append(" + ".join(terms))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(selects)}", params)
        counts = cursor.fetchone()
    return dict(zip(parts, counts, strict=True))


def conversation_tab_summary(*, user: User) -> TabSummary:
    """How many conversations ``user`` finds in each tab (of those they may see), and how many of
    their Inbox are unread (the page title's badge): one query. Each is counted up to
    ``LIST_COUNT_CAP``, then says so (``capped``). The Inbox (the queue or theirs) is counted as
    the queue plus theirs that are not in it."""
    cap = int(settings.LIST_COUNT_CAP)
    filters = _tab_filters(user=user)
    visible = Conversation.objects.filter(conversation_visibility_q(user=user))
    parts: dict[str, QuerySet[Any] | tuple[QuerySet[Any], ...]]
    parts = {key: visible.filter(q) for key, q in filters.items() if key != "inbox"}
    queue, theirs = filters["queue"], filters["mine"] & ~filters["queue"]
    parts["inbox"] = (visible.filter(queue), visible.filter(theirs))
    unread = Q(unread_count__gt=0)
    parts["_unread"] = (visible.filter(queue & unread), visible.filter(theirs & unread))
    counts = _capped_counts(parts, cap=cap)
    return TabSummary(
        tabs=[
            TabCount(
                key=tab.key,
                label=tab.label,
                count=min(counts[tab.key], cap),
                capped=counts[tab.key] > cap,
            )
            for tab in TABS
        ],
        unread=min(counts["_unread"], cap),
    )


def conversation_tab_counts(*, user: User) -> list[TabCount]:
    """How many conversations ``user`` finds in each tab (of those they may see): one query."""
    return conversation_tab_summary(user=user).tabs


def _inbox_rows(*, user: User, query: InboxQuery) -> QuerySet[Conversation]:
    """The rows of :func:`conversation_list_inbox`, unevaluated (a search reads its customers)."""
    rows = conversation_list_visible_to(user=user).filter(_tab_filters(user=user)[query.tab])
    if query.department:
        rows = rows.filter(department_id=query.department)
    if query.agent:
        rows = rows.filter(assigned_to_id=query.agent)
    if query.status:
        rows = rows.filter(status=query.status)
    if query.number:
        rows = rows.filter(whatsapp_account_id=query.number)
    if query.tag:
        rows = rows.filter(
            Exists(
                Conversation.tags.through.objects.filter(
                    conversation_id=OuterRef("pk"), tag_id=query.tag
                )
            )
        )
    if query.priority:
        rows = rows.filter(priority=query.priority)
    if query.q:
        rows = conversation_list_search(rows=rows, text=query.q)
    if query.as_queue:
        rows = conversation_order_as_queue(rows)
    rows = rows.prefetch_related(*CONVERSATION_PREFETCH)
    last = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .exclude(type=MessageType.REACTION)
        .exclude(status=MessageStatus.SCHEDULED)
        .order_by("-created_at", "-id")
    )
    rows = rows.annotate(
        last_body=Subquery(last.values("body")[:1]),
        last_type=Subquery(last.values("type")[:1]),
        last_direction=Subquery(last.values("direction")[:1]),
    )
    return rows


def conversation_list_inbox(*, user: User, query: InboxQuery) -> InboxPage:
    """One page of ``query.tab`` with its filters and search, most recent activity first (the
    queue: most urgent first, then the longest waiting): one query, and two for the tags (a
    search on PostgreSQL: one more, the customers matching, and its time limit's).

    Each row carries its last message (reactions aside) as ``last_body``, ``last_type`` and
    ``last_direction`` for the preview.
    """
    # A search may read the replica, and is stopped past its time limit (SearchTooSlow): from
    # its first query (the matching customers) to the page.
    with (
        replica_reads() if query.q else nullcontext(),
        search_time_limit(using=read_alias()) if query.q else nullcontext(),
    ):
        rows = _inbox_rows(user=user, query=query)
        offset = (query.page - 1) * INBOX_PAGE_SIZE
        page = list(rows[offset : offset + INBOX_PAGE_SIZE + 1])
    return InboxPage(
        conversations=page[:INBOX_PAGE_SIZE],
        has_next=len(page) > INBOX_PAGE_SIZE,
        has_previous=query.page > 1,
    )


# --- the timeline of a conversation -------------------------------------------------------------


class TimelineKind(StrEnum):
    EVENT = "event"
    MESSAGE = "message"
    NOTE = "note"


# At the same instant, what happened to the conversation comes before what was said; messages and
# notes of the same instant keep the order the console always gave them (by id).
_TIMELINE_RANK = {TimelineKind.EVENT: 0, TimelineKind.MESSAGE: 1, TimelineKind.NOTE: 1}


@dataclass(frozen=True)
class TimelineItem:
    """One entry of a conversation's timeline: exactly one of ``message``, ``event``, ``note``."""

    kind: TimelineKind
    created_at: datetime
    pk: int
    message: Message | None = None
    event: ConversationEvent | None = None
    note: ConversationNote | None = None

    @property
    def sort_key(self) -> tuple[datetime, int, int]:
        return (self.created_at, _TIMELINE_RANK[self.kind], self.pk)


def conversation_timeline(
    *,
    conversation: Conversation,
    notes: bool = False,
    events: bool = True,
    event_kinds: Collection[str] | None = None,
    reactions_on_messages: bool = False,
) -> list[TimelineItem]:
    """Messages, and optionally events and internal notes, oldest first: at most three queries.

    - ``events``: what happened to the conversation (take-overs, transfers with their notes,
      closings...), "marked read" aside; the history API shows them. ``event_kinds`` keeps only
      those kinds (the console shows what a person did, not its bookkeeping).
    - ``notes``: the team's internal notes, which only the console shows.
    - ``reactions_on_messages``: reactions are not entries of their own; each message carries the
      emoji put on it as ``reaction_list`` (the console). Otherwise a reaction is a message like
      any other (the API).
    """
    messages = conversation_list_messages(conversation=conversation)
    if reactions_on_messages:
        messages = messages.exclude(type=MessageType.REACTION).prefetch_related(
            Prefetch(
                "reactions",
                queryset=MessageReaction.objects.exclude(emoji=""),
                to_attr="reaction_list",
            )
        )
    # A scheduled message stands at the moment it will go (after everything else, until then).
    items = [
        TimelineItem(
            kind=TimelineKind.MESSAGE,
            created_at=m.send_at
            if m.status == MessageStatus.SCHEDULED and m.send_at
            else m.created_at,
            pk=m.pk,
            message=m,
        )
        for m in messages
    ]
    if events:
        rows = conversation_list_events(conversation=conversation).exclude(kind=EventKind.READ)
        if event_kinds is not None:
            rows = rows.filter(kind__in=list(event_kinds))
        items += [
            TimelineItem(kind=TimelineKind.EVENT, created_at=e.created_at, pk=e.pk, event=e)
            for e in rows
        ]
    if notes:
        items += [
            TimelineItem(kind=TimelineKind.NOTE, created_at=n.created_at, pk=n.pk, note=n)
            for n in conversation.notes.select_related("author").order_by("created_at", "id")
        ]
    items.sort(key=lambda item: item.sort_key)
    return items


# --- the supervisors' board ---------------------------------------------------------------------


@dataclass(frozen=True)
class Board:
    """``agents`` carry ``open_count`` and ``online``; ``departments`` carry ``queued``,
    ``with_bot``, ``in_progress`` and ``oldest_waiting`` (the oldest waiting customer's message)."""

    agents: Sequence[User]
    online_count: int
    departments: Sequence[Department]
    # Conversations no department has yet: with the bot before the menu, or in the general queue.
    no_department: dict[str, Any]


def conversation_board(*, user: User) -> Board:
    """Queues per department and load per agent, for supervisors and admins: two queries and one
    presence look-up in the cache. ``NotPermitted`` for anyone else."""
    if not (user.is_authenticated and user.is_active and user.sees_everything):
        raise NotPermitted(gettext("Only supervisors and administrators can do this."))
    open_statuses = [ConversationStatus.OPEN, ConversationStatus.PENDING]
    agents = list(
        User.objects.people()
        .filter(is_active=True, role__in=[Role.AGENT, Role.SUPERVISOR])
        .annotate(
            open_count=Count(
                "assigned_conversations",
                filter=Q(assigned_conversations__status__in=open_statuses),
            )
        )
        .order_by("name")
    )
    online = presence.online_user_ids(candidates=[a.pk for a in agents])
    for agent in agents:
        agent.online = agent.pk in online  # type: ignore[attr-defined]
    pending = Q(conversations__status=ConversationStatus.PENDING)
    departments = list(
        Department.objects.filter(is_active=True)
        .annotate(
            queued=Count("conversations", filter=pending),
            with_bot=Count("conversations", filter=Q(conversations__status=ConversationStatus.BOT)),
            in_progress=Count(
                "conversations", filter=Q(conversations__status=ConversationStatus.OPEN)
            ),
            oldest_waiting=Min("conversations__last_inbound_at", filter=pending),
        )
        .order_by("name")
    )
    waiting = Q(status=ConversationStatus.PENDING)
    no_department = Conversation.objects.filter(department__isnull=True).aggregate(
        queued=Count("pk", filter=waiting),
        with_bot=Count("pk", filter=Q(status=ConversationStatus.BOT)),
        in_progress=Count("pk", filter=Q(status=ConversationStatus.OPEN)),
        oldest_waiting=Min("last_inbound_at", filter=waiting),
    )
    return Board(
        agents=agents,
        online_count=len(online),
        departments=departments,
        no_department=no_department,
    )


# --- Automatic assignment (services/assignment.py) ------------------------------------------------

# A conversation counts against its agent's capacity until it is closed.
ASSIGNED_OPEN_STATUSES = (ConversationStatus.OPEN, ConversationStatus.PENDING)


def conversation_list_waiting(*, department_ids: Collection[int]) -> QuerySet[Conversation]:
    """The conversations waiting unassigned in these departments' queues, in the queue's order
    (the most urgent first, then the longest waiting), ready for the assignment's lock."""
    rows = Conversation.objects.filter(
        status=ConversationStatus.PENDING,
        assigned_to__isnull=True,
        department_id__in=list(department_ids),
    ).select_related("customer", "department", "assigned_to", "whatsapp_account")
    return conversation_order_as_queue(rows)


def assignment_list_candidates(
    *, department_ids: Collection[int], user_id: int | None = None
) -> list[User]:
    """The agents automatic assignment may give these departments' conversations to now (by id):
    active agents of the departments who are available and online. Their capacity is checked by
    the service under their row lock."""
    rows = (
        User.objects.people()
        .filter(
            is_active=True,
            role=Role.AGENT,
            availability=Availability.AVAILABLE,
            memberships__department_id__in=list(department_ids),
        )
        .distinct()
        .order_by("pk")
    )
    if user_id is not None:
        rows = rows.filter(pk=user_id)
    users = list(rows)
    online = presence.online_user_ids(candidates=[u.pk for u in users])
    return [u for u in users if u.pk in online]


def agent_open_counts(*, user_ids: Collection[int]) -> dict[int, int]:
    """How many conversations each of these agents has open (assigned, not closed)."""
    rows = (
        Conversation.objects.filter(
            assigned_to_id__in=list(user_ids), status__in=ASSIGNED_OPEN_STATUSES
        )
        .order_by()
        .values("assigned_to_id")
        .annotate(n=Count("pk"))
    )
    return {row["assigned_to_id"]: row["n"] for row in rows}


def department_list_automatic(*, department_ids: Collection[int] | None = None) -> dict[int, str]:
    """The active departments whose queue assigns automatically: {id: assignment mode}."""
    rows = Department.objects.filter(is_active=True).exclude(assignment=AssignmentMode.MANUAL)
    if department_ids is not None:
        rows = rows.filter(pk__in=list(department_ids))
    return dict(rows.order_by("pk").values_list("pk", "assignment"))


def department_list_automatic_of(*, user_ids: Collection[int]) -> dict[int, list[int]]:
    """For each of these users who is an agent, the automatically assigning departments they
    work in (supervisors and admins are never given conversations automatically)."""
    rows = (
        Department.objects.filter(
            is_active=True,
            memberships__user_id__in=list(user_ids),
            memberships__user__role=Role.AGENT,
        )
        .exclude(assignment=AssignmentMode.MANUAL)
        .order_by("pk")
        .values_list("memberships__user_id", "pk")
    )
    out: dict[int, list[int]] = {}
    for user_id, department_id in rows:
        out.setdefault(user_id, []).append(department_id)
    return out


def department_list_automatic_waiting() -> list[int]:
    """The automatically assigning departments with conversations waiting in their queue."""
    waiting = Conversation.objects.filter(
        department=OuterRef("pk"), status=ConversationStatus.PENDING, assigned_to__isnull=True
    )
    rows = Department.objects.filter(Exists(waiting), is_active=True).exclude(
        assignment=AssignmentMode.MANUAL
    )
    return list(rows.order_by("pk").values_list("pk", flat=True))


def conversation_get_handed_away_by(*, conversation: Conversation) -> int | None:
    """Who passed the conversation on in its latest transfer (None: nobody did)."""
    return (
        conversation.transfers.order_by("-created_at", "-id")
        .values_list("from_user_id", flat=True)
        .first()
    )
