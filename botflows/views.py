"""Console pages of the bot: the admins' settings page, the hand-off context and AI drafts.

Reads go through ``botflows.selectors`` / ``conversations.selectors``, writes through
``botflows.services``; a ``ServiceError`` becomes a message on the page.
"""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from conversations import selectors as conversation_selectors
from conversations.models import Conversation
from supportdesk.exceptions import ServiceError

from . import selectors, services
from .models import Flow

PAGE_TEMPLATE = "botflows/settings.html"


def _admin(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not user.is_active or not user.is_admin:
        raise PermissionDenied
    return user


def _visible_conversation(request: HttpRequest, pk: int) -> tuple[User, Conversation]:
    user = request.user
    if not isinstance(user, User):
        raise Http404
    try:
        return user, conversation_selectors.conversation_get_visible(user=user, pk=pk)
    except Conversation.DoesNotExist as exc:
        raise Http404 from exc


def _settings_context() -> dict[str, Any]:
    rows = selectors.bot_config_list()
    for row in rows:
        row["json"] = json.dumps(row["value"], ensure_ascii=False, indent=2)
    return {"page": "bot", "flows": selectors.flow_list(), "config_rows": rows}


@login_required
@require_GET
def bot_settings(request: HttpRequest) -> HttpResponse:
    _admin(request)
    return render(request, PAGE_TEMPLATE, _settings_context())


@login_required
@require_POST
def bot_setting_save(request: HttpRequest, key: str) -> HttpResponse:
    actor = _admin(request)
    raw = request.POST.get("value", "")
    try:
        value = json.loads(raw) if raw.strip() else None
    except ValueError:
        messages.error(request, _("%(key)s: the value is not valid JSON.") % {"key": key})
    else:
        try:
            services.bot_config_set(key=key, value=value, actor=actor)
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("%(key)s saved.") % {"key": key})
    return redirect("botflows:settings")


@login_required
@require_POST
def bot_flow_publish(request: HttpRequest, pk: int) -> HttpResponse:
    actor = _admin(request)
    flow = get_object_or_404(Flow, pk=pk)
    try:
        version = services.flow_publish(flow=flow, actor=actor)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("%(flow)s: version %(number)s is live for new conversations.")
            % {"flow": flow.name, "number": version.number},
        )
    return redirect("botflows:settings")


@login_required
@require_GET
def bot_handoff_context(request: HttpRequest, pk: int) -> HttpResponse:
    """The bot's summary and collected values, for the top of the conversation (htmx partial)."""
    _user, conversation = _visible_conversation(request, pk)
    session = selectors.bot_session_get(conversation=conversation)
    return render(request, "botflows/handoff_context.html", {"session": session})


@login_required
@require_POST
def bot_draft(request: HttpRequest, pk: int) -> HttpResponse:
    """An AI draft for the composer (htmx partial). Never sent: the agent edits and sends it."""
    user, conversation = _visible_conversation(request, pk)
    if not conversation_selectors.user_can_reply(user=user, conversation=conversation):
        raise PermissionDenied
    draft, error = "", ""
    try:
        draft = services.bot_draft_reply(conversation=conversation)
    except ServiceError as exc:
        error = exc.message
    return render(request, "botflows/draft.html", {"draft": draft, "error": error})
