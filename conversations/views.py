"""The agent console (contract §7): inbox, conversation, actions, supervisor board.

Every read goes through ``conversations.selectors`` (an invisible conversation is a 404, never an
IDOR), every write through ``conversations.services`` (a ``ServiceError`` becomes a message in the
page). Full pages for plain requests; the partial named like its DOM id for htmx requests.
"""

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Count, Exists, Min, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from accounts import presence
from accounts.models import Role, User
from common.exceptions import ServiceError
from departments.models import Department
from whatsapp.models import MessageTemplate
from whatsapp.services.templates import (
    template_body_text,
    template_message_content,
    template_placeholders,
)

from . import selectors, services
from .models import (
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageReaction,
    MessageStatus,
    MessageType,
)

PAGE_SIZE = 25
PAGE_TEMPLATE = "conversations/console.html"


@dataclass(frozen=True)
class Tab:
    key: str
    label: Any


TABS = (
    Tab("inbox", _("Inbox")),
    Tab("mine", _("Mine")),
    Tab("queue", _("Queue")),
    Tab("bot", _("Bot")),
    Tab("all", _("All")),
    Tab("closed", _("Closed")),
)
TAB_KEYS = {tab.key for tab in TABS}


def _tab_filters(user: User) -> dict[str, Q]:
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


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@dataclass
class InboxQuery:
    tab: str
    q: str
    department: int | None
    agent: int | None
    status: str
    page: int

    @classmethod
    def from_request(cls, request: HttpRequest) -> "InboxQuery":
        tab = request.GET.get("tab", "inbox")
        status = request.GET.get("status", "")
        return cls(
            tab=tab if tab in TAB_KEYS else "inbox",
            q=request.GET.get("q", "").strip()[:100],
            department=_int(request.GET.get("department")),
            agent=_int(request.GET.get("agent")),
            status=status if status in ConversationStatus.values else "",
            page=max(_int(request.GET.get("page")) or 1, 1),
        )

    def params(self, **override: Any) -> str:
        values = {
            "tab": self.tab,
            "q": self.q,
            "department": self.department or "",
            "agent": self.agent or "",
            "status": self.status,
            "page": self.page if self.page > 1 else "",
        } | override
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.department or self.agent or self.status)


def _inbox(request: HttpRequest, query: InboxQuery) -> dict[str, Any]:
    """Tabs with counts and one page of conversations: a fixed number of queries."""
    user: User = request.user  # type: ignore[assignment]
    visible = selectors.conversation_list_visible_to(user=user)
    filters = _tab_filters(user)
    counts = visible.order_by().aggregate(
        **{key: Count("pk", filter=q) for key, q in filters.items()}
    )
    rows: QuerySet[Conversation] = visible.filter(filters[query.tab])
    if query.department:
        rows = rows.filter(department_id=query.department)
    if query.agent:
        rows = rows.filter(assigned_to_id=query.agent)
    if query.status:
        rows = rows.filter(status=query.status)
    if query.q:
        digits = "".join(ch for ch in query.q if ch.isdigit())
        match: Q = Q(customer__name__icontains=query.q) | Exists(  # type: ignore[assignment]
            Message.objects.filter(conversation=OuterRef("pk"), body__icontains=query.q)
        )
        if len(digits) >= 3:
            match |= Q(customer__phone__contains=digits)
        rows = rows.filter(match)
    last = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .exclude(type=MessageType.REACTION)
        .order_by("-created_at", "-id")
    )
    rows = rows.annotate(
        last_body=Subquery(last.values("body")[:1]),
        last_type=Subquery(last.values("type")[:1]),
        last_direction=Subquery(last.values("direction")[:1]),
    )
    offset = (query.page - 1) * PAGE_SIZE
    page = list(rows[offset : offset + PAGE_SIZE + 1])
    has_next = len(page) > PAGE_SIZE
    departments = list(Department.objects.filter(is_active=True).only("pk", "name"))
    agents = list(
        User.objects.people()
        .filter(is_active=True)
        .exclude(role=Role.ADMIN)
        .only("pk", "name", "email")
    )
    return {
        "tabs": [{"key": t.key, "label": t.label, "count": counts[t.key]} for t in TABS],
        "query": query,
        "conversations": page[:PAGE_SIZE],
        "has_next": has_next,
        "has_previous": query.page > 1,
        "next_params": query.params(page=query.page + 1),
        "previous_params": query.params(page=query.page - 1),
        "params": query.params(),
        "params_no_page": query.params(page=""),
        "departments": departments,
        "agents": agents,
        "statuses": ConversationStatus.choices,
        "now_day": timezone.localdate().strftime("%Y%m%d"),
    }


def _text(request: HttpRequest, name: str, limit: int) -> str:
    """A posted text field with the browser's CRLF line breaks turned into plain newlines."""
    return request.POST.get(name, "").replace("\r\n", "\n").strip()[:limit]


def _visible_or_404(request: HttpRequest, pk: int) -> Conversation:
    try:
        return selectors.conversation_get_visible(user=request.user, pk=pk)  # type: ignore[arg-type]
    except Conversation.DoesNotExist as exc:
        raise Http404(_("No such conversation.")) from exc


def _pane(request: HttpRequest, conversation: Conversation, **extra: Any) -> dict[str, Any]:
    user: User = request.user  # type: ignore[assignment]
    # Reactions are shown on the message they react to (``MessageReaction``), not as messages.
    shown = list(
        selectors.conversation_list_messages(conversation=conversation)
        .exclude(type=MessageType.REACTION)
        .prefetch_related(
            Prefetch(
                "reactions",
                queryset=MessageReaction.objects.exclude(emoji=""),
                to_attr="reaction_list",
            )
        )
    )
    notes = list(conversation.notes.select_related("author"))
    for note in notes:
        note.is_note = True  # type: ignore[attr-defined]
    timeline: list[Any] = sorted([*shown, *notes], key=lambda item: (item.created_at, item.pk))
    now = timezone.now()
    expires = conversation.window_expires_at
    past = list(
        selectors.conversation_list_visible_to(user=user)
        .filter(customer_id=conversation.customer_id)
        .exclude(pk=conversation.pk)[:10]
    )
    can_reply = selectors.user_can_reply(user=user, conversation=conversation)
    window_open = bool(expires and expires > now)
    return {
        "conversation": conversation,
        "messages": timeline,
        "window_open": window_open,
        "templates": _approved_templates(conversation) if can_reply and not window_open else [],
        "retryable_types": RETRYABLE_TYPES,
        "window_expires_at": expires,
        "can_reply": can_reply,
        "ai_drafts": can_reply and window_open and bool(settings.OPENAI_API_KEY),
        "quick_replies": list(selectors.quick_reply_list_for(conversation=conversation))
        if can_reply and window_open
        else [],
        "can_take_over": selectors.user_can_take_over(user=user, conversation=conversation)
        and conversation.assigned_to_id != user.pk,
        "can_transfer": selectors.user_can_transfer(user=user, conversation=conversation),
        "can_close": selectors.user_can_close(user=user, conversation=conversation),
        "can_reopen": selectors.user_can_reopen(user=user, conversation=conversation),
        "past_conversations": past,
        "transfer_agents": list(
            User.objects.people()
            .filter(is_active=True, role__in=[Role.AGENT, Role.SUPERVISOR])
            .exclude(pk=conversation.assigned_to_id or 0)
            .only("pk", "name", "email")
        ),
        "transfer_departments": list(Department.objects.filter(is_active=True).only("pk", "name")),
        **extra,
    }


# --- pages --------------------------------------------------------------------------------------


@require_GET
@login_required
def console(request: HttpRequest) -> HttpResponse:
    query = InboxQuery.from_request(request)
    return render(request, PAGE_TEMPLATE, {"page": "inbox", **_inbox(request, query)})


@require_GET
@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The tabs and the list, refreshed by the live socket and by filters."""
    query = InboxQuery.from_request(request)
    return render(request, f"{PAGE_TEMPLATE}#inbox", _inbox(request, query))


@require_GET
@login_required
def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _visible_or_404(request, pk)
    context = _pane(request, conversation)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, f"{PAGE_TEMPLATE}#conversation_pane", context)
    query = InboxQuery.from_request(request)
    return render(request, PAGE_TEMPLATE, {"page": "inbox", **_inbox(request, query), **context})


@require_GET
@login_required
def conversation_messages(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _visible_or_404(request, pk)
    return render(request, f"{PAGE_TEMPLATE}#message_list", _pane(request, conversation))


@require_GET
@login_required
def conversation_header(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _visible_or_404(request, pk)
    return render(request, f"{PAGE_TEMPLATE}#conversation_header", _pane(request, conversation))


# --- actions ------------------------------------------------------------------------------------


def _act(
    request: HttpRequest, pk: int, action: Any, extra: dict[str, Any] | None = None, **kwargs: Any
) -> HttpResponse:
    conversation = _visible_or_404(request, pk)
    error = None
    try:
        conversation = action(conversation=conversation, actor=request.user, **kwargs)
    except ServiceError as exc:
        error = exc.message
    try:
        conversation = selectors.conversation_get_visible(user=request.user, pk=pk)  # type: ignore[arg-type]
    except Conversation.DoesNotExist:
        # e.g. transferred to a department the agent does not work in: it left their view
        return render(
            request,
            f"{PAGE_TEMPLATE}#conversation_pane",
            {"conversation": None, "notice": _("The conversation was handed over.")},
        )
    return render(
        request,
        f"{PAGE_TEMPLATE}#conversation_pane",
        _pane(request, conversation, error=error, **(extra or {})),
    )


@require_POST
@login_required
def conversation_take_over(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.conversation_take_over)


@require_POST
@login_required
def conversation_close(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.conversation_close)


@require_POST
@login_required
def conversation_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.conversation_reopen)


@require_POST
@login_required
def conversation_read(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _visible_or_404(request, pk)
    with contextlib.suppress(ServiceError):  # nothing to tell: the page just stays as it is
        services.conversation_mark_read(conversation=conversation, actor=request.user)  # type: ignore[arg-type]
    return HttpResponse(status=204)


@require_POST
@login_required
def conversation_transfer(request: HttpRequest, pk: int) -> HttpResponse:
    to_user_id = _int(request.POST.get("to_user"))
    to_department_id = _int(request.POST.get("to_department"))
    to_user = (
        User.objects.people().filter(pk=to_user_id, is_active=True).first() if to_user_id else None
    )
    to_department = (
        Department.objects.filter(pk=to_department_id).first() if to_department_id else None
    )
    return _act(
        request,
        pk,
        services.conversation_transfer,
        to_user=to_user,
        to_department=to_department,
        note=_text(request, "note", 1000),
    )


@require_POST
@login_required
def conversation_send(request: HttpRequest, pk: int) -> HttpResponse:
    body = _text(request, "body", 4096)
    upload = request.FILES.get("attachment")
    if upload is None:
        return _act(request, pk, _send, extra={"autofocus_composer": True}, body=body)
    if upload.size and upload.size > settings.API_UPLOAD_MAX_BYTES:
        conversation = _visible_or_404(request, pk)
        limit = filesizeformat(settings.API_UPLOAD_MAX_BYTES)
        return render(
            request,
            f"{PAGE_TEMPLATE}#conversation_pane",
            _pane(request, conversation, error=_("Files are limited to %s.") % limit),
        )
    return _act(
        request,
        pk,
        _send_file,
        extra={"autofocus_composer": True},
        body=body,
        upload=upload,
    )


def _media_type(content_type: str) -> str:
    kind = content_type.split("/", 1)[0]
    if kind in ("image", "audio", "video") and content_type != "image/svg+xml":
        return kind
    return MessageType.DOCUMENT


def _send_file(
    *, conversation: Conversation, actor: User, body: str, upload: UploadedFile
) -> Conversation:
    content_type = upload.content_type or "application/octet-stream"
    services.message_create_outbound(
        conversation=conversation,
        actor=actor,
        body=body,
        type=_media_type(content_type),
        media_file=upload,
        media_mime_type=content_type,
        media_filename=(upload.name or "file")[:255],
        media_size=upload.size,
    )
    return conversation


@require_POST
@login_required
def conversation_note(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, _note, body=_text(request, "body", 4000))


def _note(*, conversation: Conversation, actor: User, body: str) -> Conversation:
    services.conversation_note_create(conversation=conversation, actor=actor, body=body)
    return conversation


def _send(*, conversation: Conversation, actor: User, body: str) -> Conversation:
    services.message_create_outbound(conversation=conversation, actor=actor, body=body)
    return conversation


def _approved_templates(conversation: Conversation) -> list[MessageTemplate]:
    templates = MessageTemplate.objects.filter(
        account_id=conversation.whatsapp_account_id, status__iexact="APPROVED"
    )
    found = list(templates)
    for template in found:
        template.body_text = template_body_text(template)  # type: ignore[attr-defined]
        template.parameter_count = len(template_placeholders(template))  # type: ignore[attr-defined]
    return found


@require_POST
@login_required
def conversation_send_template(request: HttpRequest, pk: int) -> HttpResponse:
    """Outside the 24-hour window only an approved template may start the conversation again."""
    conversation = _visible_or_404(request, pk)
    # Any synced template of the number: the sender's check names a state that is not approved
    # (e.g. paused since the picker was drawn) and a wrong number of parameters.
    template = MessageTemplate.objects.filter(
        pk=_int(request.POST.get("template")) or 0,
        account_id=conversation.whatsapp_account_id,
    ).first()
    if template is None:
        return render(
            request,
            f"{PAGE_TEMPLATE}#conversation_pane",
            _pane(request, conversation, error=_("Choose an approved template.")),
        )
    parameters = [
        line.strip() for line in request.POST.get("parameters", "").splitlines() if line.strip()
    ]
    body, raw_payload = template_message_content(template=template, parameters=parameters)
    return _act(request, pk, _send_template, body=body, raw_payload=raw_payload)


def _send_template(
    *, conversation: Conversation, actor: User, body: str, raw_payload: dict[str, Any]
) -> Conversation:
    services.message_create_outbound(
        conversation=conversation,
        actor=actor,
        body=body,
        type=MessageType.TEMPLATE,
        raw_payload=raw_payload,
    )
    return conversation


RETRYABLE_TYPES = (MessageType.TEXT, MessageType.TEMPLATE)


@require_POST
@login_required
def message_retry(request: HttpRequest, pk: int, message_pk: int) -> HttpResponse:
    """Send a failed text or template message again, as a new message."""
    conversation = _visible_or_404(request, pk)
    failed = get_object_or_404(
        Message,
        pk=message_pk,
        conversation=conversation,
        direction=Direction.OUT,
        status=MessageStatus.FAILED,
        type__in=RETRYABLE_TYPES,
    )
    return _act(request, pk, _resend, failed=failed)


def _resend(*, conversation: Conversation, actor: User, failed: Message) -> Conversation:
    extra: dict[str, Any] = {"raw_payload": failed.raw_payload} if failed.raw_payload else {}
    services.message_create_outbound(
        conversation=conversation,
        actor=actor,
        body=failed.body,
        type=failed.type,
        reply_to=failed.reply_to,
        **extra,
    )
    return conversation


# --- supervisor board ---------------------------------------------------------------------------


def _board(request: HttpRequest) -> dict[str, Any]:
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
    departments = list(
        Department.objects.filter(is_active=True)
        .annotate(
            queued=Count("conversations", filter=Q(conversations__status="pending")),
            with_bot=Count("conversations", filter=Q(conversations__status="bot")),
            in_progress=Count("conversations", filter=Q(conversations__status="open")),
            oldest_waiting=Min(
                "conversations__last_inbound_at", filter=Q(conversations__status="pending")
            ),
        )
        .order_by("name")
    )
    return {
        "agents": agents,
        "online_count": len(online),
        "board_departments": departments,
        "now": timezone.now(),
    }


@require_GET
@login_required
def board(request: HttpRequest) -> HttpResponse:
    if not request.user.sees_everything:  # type: ignore[union-attr]
        raise PermissionDenied
    context = _board(request)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "conversations/board.html#board", context)
    return render(request, "conversations/board.html", {"page": "board", **context})
