"""The agent console (contract §7): inbox, conversation, actions, supervisor board.

Every read goes through ``conversations.selectors`` (an invisible conversation is a 404, never an
IDOR), every write through ``conversations.services`` (a ``ServiceError`` becomes a message in the
page). Full pages for plain requests; the partial named like its DOM id for htmx requests.
"""

import contextlib
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url, reswap, retarget, trigger_client_event

from accounts.models import User
from common.api import id_param
from common.exceptions import NotPermitted, ServiceError
from common.replica import replica_reads

from . import selectors, services
from .channels import ChannelNumber, TemplateChoice, channel_numbers_active, conversation_channel
from .error_codes import ConversationErrorCode
from .forms import template_request_from_post
from .models import (
    Conversation,
    ConversationStatus,
    Direction,
    EventKind,
    Message,
    MessageType,
    Priority,
    SenderKind,
)
from .search import SearchBusy, SearchTooSlow
from .services import automate, organise
from .services.templates import TemplateRequest, template_content
from .uploads import UploadKind, upload_validate

PAGE_TEMPLATE = "conversations/console.html"

# The composer's emoji picker and the reactions offered on a customer's message: small built-in
# sets (no library, nothing fetched).
COMPOSER_EMOJI = (
    "😀",
    "😂",
    "😊",
    "😍",
    "🙂",
    "😉",
    "😅",
    "🤔",
    "😢",
    "😮",
    "🙏",
    "👍",
    "👎",
    "👏",
    "🙌",
    "💪",
    "👋",
    "🎉",
    "❤️",
    "🔥",
    "✅",
    "❌",
    "⏳",
    "📦",
)
REACTION_EMOJI = ("👍", "❤️", "😂", "😮", "😢", "🙏")


def _numbers(request: HttpRequest) -> list[ChannelNumber]:
    """The desk's active numbers when it has several (none with one: no clutter), asked once per
    request (a full page shows them in the list and in the pane)."""
    if not hasattr(request, "_desk_numbers"):
        numbers = channel_numbers_active()
        request._desk_numbers = numbers if len(numbers) > 1 else []  # type: ignore[attr-defined]
    found: list[ChannelNumber] = request._desk_numbers  # type: ignore[attr-defined]
    return found


def _inbox(request: HttpRequest, query: selectors.InboxQuery) -> dict[str, Any]:
    """Tabs with counts and one page of conversations: a fixed number of queries."""
    user: User = request.user  # type: ignore[assignment]
    search_error = ""
    try:
        page = selectors.conversation_list_inbox(user=user, query=query)
    except (SearchTooSlow, SearchBusy) as exc:
        page = selectors.InboxPage((), has_next=False, has_previous=False)
        search_error = exc.message
    summary = selectors.conversation_tab_summary(user=user)
    return {
        "tabs": summary.tabs,
        "unread_total": summary.unread,
        "query": query,
        "conversations": page.conversations,
        "has_next": page.has_next,
        "has_previous": page.has_previous,
        "search_error": search_error,
        "next_params": query.params(page=query.page + 1),
        "previous_params": query.params(page=query.page - 1),
        "params": query.params(),
        "params_no_page": query.params(page=""),
        "departments": list(selectors.department_list_active()),
        "agents": list(selectors.user_list_inbox_agents()),
        "statuses": ConversationStatus.choices,
        "numbers": _numbers(request),
        "priorities": Priority.choices,
        "all_tags": selectors.tag_list(),  # lazy: one query when the template lists them
        "now_day": timezone.localdate().strftime("%Y%m%d"),
    }


def _inbox_query(request: HttpRequest) -> selectors.InboxQuery:
    return selectors.InboxQuery.from_params(request.GET)


def _list_params(request: HttpRequest) -> str:
    """The query string of the list the agent came from (the pane's back link): the request's
    own, or for an htmx action (posted without it) the address bar's."""
    params = request.GET
    current = request.htmx.current_url if request.htmx else None  # type: ignore[attr-defined]
    if not params and current:
        params = QueryDict(urlsplit(current).query)
    return selectors.InboxQuery.from_params(params).params()


def _text(request: HttpRequest, name: str, limit: int) -> str:
    """A posted text field with the browser's CRLF line breaks turned into plain newlines."""
    return request.POST.get(name, "").replace("\r\n", "\n").strip()[:limit]


class ConversationGone(Http404):
    """The conversation does not exist or is out of the user's reach (never says which)."""


def _visible_or_404(request: HttpRequest, pk: int, *, with_tags: bool = False) -> Conversation:
    try:
        return selectors.conversation_get_visible(user=request.user, pk=pk, with_tags=with_tags)  # type: ignore[arg-type]
    except Conversation.DoesNotExist as exc:
        raise ConversationGone(_("No such conversation.")) from exc


def _gone_fragment(request: HttpRequest) -> HttpResponse:
    """What an htmx request gets for a conversation it can no longer see: the pane says so, the
    list refreshes (a plain request still gets the 404 page)."""
    response = render(
        request,
        f"{PAGE_TEMPLATE}#conversation_pane",
        {
            "conversation": None,
            "notice": _("This conversation is no longer available to you."),
            "back_params": _list_params(request),
        },
    )
    retarget(response, "#conversation-pane")
    reswap(response, "outerHTML")
    return trigger_client_event(response, "inbox:refresh")


def conversation_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ConversationGone:
            if request.htmx:  # type: ignore[attr-defined]
                return _gone_fragment(request)
            raise

    return wrapper


# What the console's timeline shows of what happened to a conversation (not its bookkeeping:
# "marked read", "first response", "created", "queued").
CONSOLE_EVENT_KINDS = (
    EventKind.TAKEN_OVER,
    EventKind.ASSIGNED,
    EventKind.TRANSFERRED,
    EventKind.CLOSED,
    EventKind.REOPENED,
    EventKind.CSAT_RECEIVED,
    EventKind.TAGS_CHANGED,
    EventKind.PRIORITY_CHANGED,
)


def _name_targets(
    timeline: list[selectors.TimelineItem],
    conversation: Conversation,
    agents: list[User],
    departments: list[Any],
) -> None:
    """Give each transfer and assignment line whom it went to (``target_name``), from the people
    and departments the pane loads anyway: no query of its own."""
    people = {a.pk: a.name for a in agents}
    if conversation.assigned_to is not None:
        people[conversation.assigned_to.pk] = conversation.assigned_to.name
    places = {d.pk: d.name for d in departments}
    if conversation.department is not None:
        places[conversation.department.pk] = conversation.department.name
    for item in timeline:
        event = item.event
        if event is None or event.kind not in (EventKind.TRANSFERRED, EventKind.ASSIGNED):
            continue
        after = event.after or {}
        before = event.before or {}
        name = people.get(after.get("assigned_to") or 0)
        if not name and after.get("department") != before.get("department"):
            name = places.get(after.get("department") or 0)
        event.target_name = name or ""  # type: ignore[attr-defined]


def _first_unread_id(timeline: list[selectors.TimelineItem]) -> int | None:
    for item in timeline:
        m = item.message
        if m is not None and m.direction == Direction.IN and m.read_at is None:
            return m.pk
    return None


def _quick_replies(conversation: Conversation, user: User) -> list[Any]:
    """The composer's quick replies, each with ``text``: its variables filled in for this
    conversation (the template escapes it)."""
    replies = list(selectors.quick_reply_list_for(conversation=conversation, user=user))
    for reply in replies:
        reply.text = selectors.quick_reply_render(  # type: ignore[attr-defined]
            body=reply.body, conversation=conversation, user=user
        )
    return replies


def _pane(
    request: HttpRequest, conversation: Conversation, *, header_only: bool = False, **extra: Any
) -> dict[str, Any]:
    """The pane's context; ``header_only`` leaves out what only the messages and the composer
    show (the timeline, the quick replies): the header the console fetches after every
    (re)connection costs no more than it shows."""
    user: User = request.user  # type: ignore[assignment]
    expires = conversation.window_expires_at
    rights = selectors.conversation_rights(user=user, conversation=conversation)
    can_reply = rights.reply
    # The channel says what it accepts now (WhatsApp: free-form only inside the 24-hour window).
    capabilities = conversation_channel(conversation).capabilities(conversation=conversation)
    window_open = capabilities.free_form
    timeline = (
        []
        if header_only
        else selectors.conversation_timeline(
            conversation=conversation,
            notes=True,
            events=True,
            event_kinds=CONSOLE_EVENT_KINDS,
            reactions_on_messages=True,
        )
    )
    can_take_over = rights.take_over and conversation.assigned_to_id != user.pk
    transfer_agents = list(selectors.user_list_transfer_targets(conversation=conversation))
    transfer_departments = list(selectors.department_list_active())
    _name_targets(timeline, conversation, transfer_agents, transfer_departments)
    return {
        "conversation": conversation,
        "show_number": bool(_numbers(request)),
        "timeline": timeline,
        "first_unread_id": _first_unread_id(timeline),
        "back_params": _list_params(request),
        "marks_read": selectors.user_marks_read(user=user, conversation=conversation),
        "window_open": window_open,
        "templates": _approved_templates(conversation) if can_reply and not window_open else [],
        "retryable_types": RETRYABLE_TYPES,
        "composer_emoji": COMPOSER_EMOJI,
        "can_quote": can_reply and window_open,
        # the assigned agent reacts to the customer's messages while the channel accepts it
        "reaction_emoji": REACTION_EMOJI
        if can_reply and window_open and capabilities.reactions
        else (),
        "window_expires_at": expires,
        "max_text_length": capabilities.max_text_length,
        "can_reply": can_reply,
        "ai_drafts": can_reply and window_open and bool(settings.OPENAI_API_KEY),
        "quick_replies": _quick_replies(conversation, user)
        if can_reply and window_open and not header_only
        else [],
        "can_take_over": can_take_over,
        # a supervisor stepping into an agent's live conversation confirms it first
        "take_over_confirm": can_take_over
        and conversation.assigned_to_id is not None
        and conversation.status == ConversationStatus.OPEN,
        "can_transfer": rights.transfer,
        "can_close": rights.close,
        "can_reopen": rights.reopen,
        "past_conversations": selectors.conversation_list_past_for_customer(
            user=user, conversation=conversation
        ),
        "transfer_agents": transfer_agents,
        "transfer_departments": transfer_departments,
        # organise.user_can_organise's rule, from the rights at hand (no second look-up): the
        # transfer right while open, the reopen right once closed
        "can_organise": rights.transfer or rights.reopen,
        "priorities": Priority.choices,
        "all_tags": selectors.tag_list(),
        **extra,
    }


# --- pages --------------------------------------------------------------------------------------


@require_GET
@login_required
def console(request: HttpRequest) -> HttpResponse:
    query = _inbox_query(request)
    return render(request, PAGE_TEMPLATE, {"page": "inbox", **_inbox(request, query)})


@require_GET
@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The tabs and the list, refreshed by the live socket and by filters.

    A search or a filter puts the page's own URL (``/?…``) in the address bar, never this
    fragment's; the socket's refreshes (``X-Inbox-Refresh``) leave the address alone.
    """
    query = _inbox_query(request)
    response = render(request, f"{PAGE_TEMPLATE}#inbox", _inbox(request, query))
    if request.htmx and not request.headers.get("X-Inbox-Refresh"):  # type: ignore[attr-defined]
        params = query.params()
        push_url(response, reverse("conversations:console") + (f"?{params}" if params else ""))
    return response


@require_GET
@login_required
@conversation_view
def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _visible_or_404(request, pk, with_tags=True)
    context = _pane(request, conversation)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, f"{PAGE_TEMPLATE}#conversation_pane", context)
    query = _inbox_query(request)
    return render(request, PAGE_TEMPLATE, {"page": "inbox", **_inbox(request, query), **context})


@require_GET
@login_required
@conversation_view
def conversation_messages(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _visible_or_404(request, pk)
    return render(request, f"{PAGE_TEMPLATE}#message_list", _pane(request, conversation))


@require_GET
@login_required
@conversation_view
def conversation_header(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _visible_or_404(request, pk, with_tags=True)
    return render(
        request,
        f"{PAGE_TEMPLATE}#conversation_header",
        _pane(request, conversation, header_only=True),
    )


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
        if exc.code == ConversationErrorCode.AT_CAPACITY and request.user.sees_everything:  # type: ignore[union-attr]
            # a supervisor may go past the agent's capacity: the same request, "anyway"
            extra = {**(extra or {}), "capacity_override": _override(request)}
    try:
        conversation = selectors.conversation_get_visible(user=request.user, pk=pk, with_tags=True)  # type: ignore[arg-type]
    except Conversation.DoesNotExist:
        # e.g. transferred to a department the agent does not work in: it left their view
        return render(
            request,
            f"{PAGE_TEMPLATE}#conversation_pane",
            {
                "conversation": None,
                "notice": _("The conversation was handed over."),
                "back_params": _list_params(request),
            },
        )
    return render(
        request,
        f"{PAGE_TEMPLATE}#conversation_pane",
        _pane(request, conversation, error=error, **(extra or {})),
    )


def _override(request: HttpRequest) -> dict[str, Any]:
    """What the "… anyway" button posts again: the refused form's fields, ``over_capacity``."""
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in {"csrfmiddlewaretoken", "over_capacity"}
        for value in values
    ]
    return {"url": request.path, "fields": fields}


def _over_capacity(request: HttpRequest) -> bool:
    return request.POST.get("over_capacity") in {"1", "true", "on"}


@require_POST
@login_required
@conversation_view
def conversation_take_over(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.conversation_take_over, extra={"autofocus_composer": True})


@require_POST
@login_required
@conversation_view
def conversation_close(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.conversation_close)


@require_POST
@login_required
@conversation_view
def conversation_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, services.conversation_reopen, over_capacity=_over_capacity(request))


@require_POST
@login_required
@conversation_view
def conversation_organise(request: HttpRequest, pk: int) -> HttpResponse:
    """The pane's priority and tags form; the row changes at once."""
    tag_ids = [i for i in (id_param(v) for v in request.POST.getlist("tags")) if i]
    response = _act(
        request,
        pk,
        organise.conversation_organise,
        priority=request.POST.get("priority", ""),
        tag_ids=tag_ids,
    )
    return trigger_client_event(response, "inbox:refresh")


@require_POST
@login_required
@conversation_view
def conversation_read(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _visible_or_404(request, pk)
    if not selectors.user_marks_read(user=request.user, conversation=conversation):  # type: ignore[arg-type]
        return HttpResponse(status=204)  # a supervisor looking on leaves the agent's badge alone
    with contextlib.suppress(ServiceError):  # nothing to tell: the page just stays as it is
        services.conversation_mark_read(conversation=conversation, actor=request.user)  # type: ignore[arg-type]
    return HttpResponse(status=204)


@require_POST
@login_required
@conversation_view
def conversation_transfer(request: HttpRequest, pk: int) -> HttpResponse:
    to_user_id = id_param(request.POST.get("to_user"))
    to_department_id = id_param(request.POST.get("to_department"))
    to_user = selectors.user_get_active(pk=to_user_id) if to_user_id else None
    to_department = selectors.department_get(pk=to_department_id) if to_department_id else None
    response = _act(
        request,
        pk,
        services.conversation_transfer,
        to_user=to_user,
        to_department=to_department,
        note=_text(request, "note", 1000),
        over_capacity=_over_capacity(request),
    )
    return trigger_client_event(response, "inbox:refresh")  # the row moves at once


@require_POST
@login_required
@conversation_view
def conversation_send(request: HttpRequest, pk: int) -> HttpResponse:
    body = _text(request, "body", 4096)
    reply_to_id = id_param(request.POST.get("reply_to"))
    upload = request.FILES.get("attachment")
    if request.POST.get("send_at", "").strip():
        # "Schedule": the composer's date and time, in the desk's time zone
        return _act(
            request,
            pk,
            _schedule,
            extra={"autofocus_composer": True},
            body=body,
            send_at=request.POST["send_at"].strip(),
            reply_to_id=reply_to_id,
            upload=upload,
        )
    if upload is None:
        return _act(
            request,
            pk,
            _send,
            extra={"autofocus_composer": True},
            body=body,
            reply_to_id=reply_to_id,
        )
    if upload.size and upload.size > settings.API_UPLOAD_MAX_BYTES:
        conversation = _visible_or_404(request, pk)
        limit = filesizeformat(settings.API_UPLOAD_MAX_BYTES)
        return render(
            request,
            f"{PAGE_TEMPLATE}#conversation_pane",
            _pane(request, conversation, error=_("Files are limited to %s.") % limit),
        )
    try:
        classified = upload_validate(
            filename=upload.name, content_type=upload.content_type, size=upload.size
        )
    except ServiceError as exc:
        conversation = _visible_or_404(request, pk)
        return render(
            request,
            f"{PAGE_TEMPLATE}#conversation_pane",
            _pane(request, conversation, error=exc.message),
        )
    return _act(
        request,
        pk,
        _send_file,
        extra={"autofocus_composer": True},
        body=body,
        upload=upload,
        classified=classified,
        reply_to_id=reply_to_id,
    )


def _send_file(
    *,
    conversation: Conversation,
    actor: User,
    body: str,
    upload: UploadedFile,
    classified: UploadKind,
    reply_to_id: int | None,
) -> Conversation:
    services.message_create_outbound(
        conversation=conversation,
        actor=actor,
        body=body,
        reply_to=_quoted(conversation, reply_to_id),
        type=classified.type,
        media_file=upload,
        media_mime_type=classified.mime_type,
        media_filename=classified.filename,
        media_size=upload.size,
    )
    return conversation


@require_POST
@login_required
@conversation_view
def conversation_note(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, _note, body=_text(request, "body", 4000))


def _note(*, conversation: Conversation, actor: User, body: str) -> Conversation:
    services.conversation_note_create(conversation=conversation, actor=actor, body=body)
    return conversation


def _quoted(conversation: Conversation, reply_to_id: int | None) -> Message | None:
    """The message a reply quotes (``reply_to``), of this conversation only."""
    if reply_to_id is None:
        return None
    quoted = selectors.message_get_quotable(conversation=conversation, pk=reply_to_id)
    if quoted is None:
        raise ServiceError(gettext("The quoted message is not part of this conversation."))
    return quoted


def _send(
    *, conversation: Conversation, actor: User, body: str, reply_to_id: int | None = None
) -> Conversation:
    services.message_create_outbound(
        conversation=conversation,
        actor=actor,
        body=body,
        reply_to=_quoted(conversation, reply_to_id),
    )
    return conversation


def _schedule(
    *,
    conversation: Conversation,
    actor: User,
    body: str,
    send_at: str,
    reply_to_id: int | None,
    upload: UploadedFile | None,
) -> Conversation:
    moment = parse_datetime(send_at)
    if moment is None:
        raise ServiceError(gettext("Choose the date and time to send it."))
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    media: dict[str, Any] = {}
    kind: str = MessageType.TEXT
    if upload is not None:
        classified = upload_validate(
            filename=upload.name, content_type=upload.content_type, size=upload.size
        )
        kind = classified.type
        media = {
            "media_file": upload,
            "media_mime_type": classified.mime_type,
            "media_filename": classified.filename,
            "media_size": upload.size,
        }
    automate.message_schedule(
        conversation=conversation,
        actor=actor,
        send_at=moment,
        body=body,
        type=kind,
        reply_to=_quoted(conversation, reply_to_id),
        **media,
    )
    return conversation


@require_POST
@login_required
@conversation_view
def message_cancel_scheduled(request: HttpRequest, pk: int, message_pk: int) -> HttpResponse:
    """Cancel one of the conversation's scheduled messages (the Cancel button, confirmed)."""
    conversation = _visible_or_404(request, pk)
    message = conversation.messages.filter(pk=message_pk, direction="out").first()
    if message is None:
        raise Http404
    return _act(request, pk, _cancel_scheduled, message=message)


def _cancel_scheduled(*, conversation: Conversation, actor: User, message: Message) -> Conversation:
    automate.message_schedule_cancel(message=message, actor=actor)
    return conversation


@require_POST
@login_required
@conversation_view
def message_react(request: HttpRequest, pk: int, message_pk: int) -> HttpResponse:
    """The assigned agent's emoji on a customer's message (an empty ``emoji`` takes it back)."""
    conversation = _visible_or_404(request, pk)
    message = selectors.message_get_reactable(conversation=conversation, pk=message_pk)
    if message is None:
        raise Http404
    return _act(
        request, pk, _react, message=message, emoji=request.POST.get("emoji", "").strip()[:32]
    )


def _react(
    *, conversation: Conversation, actor: User, message: Message, emoji: str
) -> Conversation:
    services.message_react(message=message, sender=SenderKind.AGENT, emoji=emoji, actor=actor)
    return conversation


def _approved_templates(conversation: Conversation) -> list[TemplateChoice]:
    return conversation_channel(conversation).templates_approved(conversation=conversation)


@require_POST
@login_required
@conversation_view
def conversation_send_template(request: HttpRequest, pk: int) -> HttpResponse:
    """Outside the 24-hour window only an approved template may start the conversation again:
    the picker's fields give each part of it its parameters (a media header: a link or a file)."""
    _visible_or_404(request, pk)
    template = template_request_from_post(request.POST, request.FILES)
    return _act(request, pk, _send_template, template=template)


def _send_template(
    *, conversation: Conversation, actor: User, template: TemplateRequest
) -> Conversation:
    body, fields = template_content(conversation=conversation, template=template)
    services.message_create_outbound(
        conversation=conversation, actor=actor, body=body, type=MessageType.TEMPLATE, **fields
    )
    return conversation


RETRYABLE_TYPES = (MessageType.TEXT, MessageType.TEMPLATE)


@require_POST
@login_required
@conversation_view
def message_retry(request: HttpRequest, pk: int, message_pk: int) -> HttpResponse:
    """Send a failed text or template message again, as a new message."""
    conversation = _visible_or_404(request, pk)
    failed = selectors.message_get_retryable(
        conversation=conversation, pk=message_pk, types=RETRYABLE_TYPES
    )
    if failed is None:
        raise Http404
    return _act(request, pk, _resend, failed=failed)


def _resend(*, conversation: Conversation, actor: User, failed: Message) -> Conversation:
    extra: dict[str, Any] = {"raw_payload": failed.raw_payload} if failed.raw_payload else {}
    if failed.type == MessageType.TEMPLATE and (failed.media_file or failed.media_id):
        # the header's file: sent again by its media id when the channel holds it already
        extra.update(
            media_file=failed.media_file,
            media_id=failed.media_id,
            media_mime_type=failed.media_mime_type,
            media_filename=failed.media_filename,
            media_size=failed.media_size,
        )
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


@require_GET
@login_required
def board(request: HttpRequest) -> HttpResponse:
    try:
        with replica_reads():
            board = selectors.conversation_board(user=request.user)  # type: ignore[arg-type]
    except NotPermitted as exc:
        raise PermissionDenied(exc.message) from exc
    context = {
        "agents": board.agents,
        "online_count": board.online_count,
        "board_departments": board.departments,
        "board_no_department": board.no_department,
        "now": timezone.now(),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "conversations/board.html#board", context)
    return render(request, "conversations/board.html", {"page": "board", **context})
