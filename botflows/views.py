"""Console pages of the bot: the admins' settings page and flow editor, the hand-off context and
AI drafts.

Reads go through ``botflows.selectors`` / ``conversations.selectors``, writes through
``botflows.services``; a ``ServiceError`` becomes a message on the page.
"""

import json
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.models import User
from common.exceptions import ServiceError
from conversations import selectors as conversation_selectors
from conversations.models import Conversation

from . import selectors, services
from .forms import BotSettingsForm, FlowForm, FlowNodeForm, MenuOptionForm
from .models import Flow, FlowNode, MenuOption
from .selectors import CONFIG_DEFAULTS

PAGE_TEMPLATE = "botflows/settings.html"
EDITOR_TEMPLATE = "botflows/flow_editor.html"


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


def _flow_form(*, data: Any = None, instance: Flow | None = None) -> FlowForm:
    return FlowForm(
        data,
        instance=instance or Flow(),
        accounts=selectors.whatsapp_account_choices(flow=instance),
    )


def _settings_form(
    data: Any = None, *, rows: list[dict[str, Any]] | None = None
) -> BotSettingsForm:
    rows = selectors.bot_config_list() if rows is None else rows
    return BotSettingsForm(
        data,
        values={row["key"]: row["value"] for row in rows},
        help_texts={key: help_text for key, (_default, help_text) in CONFIG_DEFAULTS.items()},
        departments=selectors.department_names_active(),
        ai_available=bool(settings.OPENAI_API_KEY),
    )


def _settings_context(
    *, create_form: FlowForm | None = None, settings_form: BotSettingsForm | None = None
) -> dict[str, Any]:
    rows = selectors.bot_config_list()  # one query for the form and the others
    other_rows = [row for row in rows if row["key"] not in CONFIG_DEFAULTS]
    for row in other_rows:
        row["json"] = json.dumps(row["value"], ensure_ascii=False)
    return {
        "page": "bot",
        "flows": selectors.flow_list(),
        "settings_form": settings_form or _settings_form(rows=rows),
        "other_rows": other_rows,
        "create_form": create_form or _flow_form(),
    }


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """After a change that leaves the page: a full-page redirect, for htmx too."""
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
@require_GET
def bot_settings(request: HttpRequest) -> HttpResponse:
    _admin(request)
    return render(request, PAGE_TEMPLATE, _settings_context())


@login_required
@require_POST
def bot_flow_create(request: HttpRequest) -> HttpResponse:
    """The /bot/ page's "New flow" form; a new flow opens in its editor."""
    actor = _admin(request)
    form = _flow_form(data=request.POST)
    flow = form.submit(partial(services.flow_create, actor=actor))
    if flow is not None:
        messages.success(
            request, _("Flow %(name)s created: add its first node.") % {"name": flow.name}
        )
        return _go(request, reverse("botflows:flow_editor", args=[flow.pk]))
    template = f"{PAGE_TEMPLATE}#flow_create" if request.htmx else PAGE_TEMPLATE  # type: ignore[attr-defined]
    return render(request, template, _settings_context(create_form=form))


@login_required
@require_POST
def bot_settings_save(request: HttpRequest) -> HttpResponse:
    """The /bot/ page's settings form: every known setting as a field of its kind."""
    actor = _admin(request)
    form = _settings_form(request.POST)
    if form.is_valid():
        try:
            saved = services.bot_config_save(values=form.changed_values(), actor=actor)
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                _("Settings saved.")
                if saved
                else _("Nothing changed: the settings are as they were."),
            )
            return redirect(reverse("botflows:settings") + "#config-title")
    messages.error(request, _("The settings were not saved: check the fields marked below."))
    return render(request, PAGE_TEMPLATE, _settings_context(settings_form=form), status=400)


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
    if request.POST.get("return_to") == "editor":
        return redirect("botflows:flow_editor", pk=flow.pk)
    return redirect("botflows:settings")


# --- Flow editor -------------------------------------------------------------------------------
#
# One page per flow; every action answers with the ``flow_editor`` partial for htmx (the form
# with its errors in place, or the fresh editor and a message) and with the page (errors) or a
# redirect to it (success) otherwise.


def _node_form(flow: Flow, *, data: Any = None, instance: FlowNode | None = None) -> FlowNodeForm:
    return FlowNodeForm(
        data,
        instance=instance or FlowNode(flow=flow),
        nodes=selectors.flow_node_choices(flow=flow),
        departments=selectors.department_choices(),
    )


def _option_form(
    flow: Flow, *, menu: FlowNode, data: Any = None, instance: MenuOption | None = None
) -> MenuOptionForm:
    return MenuOptionForm(
        data,
        instance=instance or MenuOption(node=menu),
        nodes=selectors.flow_node_choices(flow=flow),
        departments=selectors.department_choices(),
    )


def _editor(
    request: HttpRequest,
    flow_pk: int,
    *,
    new_node_form: FlowNodeForm | None = None,
    node_form: FlowNodeForm | None = None,
    option_form: MenuOptionForm | None = None,
    flow_form: FlowForm | None = None,
) -> HttpResponse:
    flow = selectors.flow_get_for_editor(pk=flow_pk)
    if flow is None:
        raise Http404
    context = {
        "page": "bot",
        "flow": flow,
        "flow_form": flow_form or _flow_form(instance=flow),
        "new_node_form": new_node_form or _node_form(flow),
        "node_form": node_form,
        "option_form": option_form,
    }
    template = f"{EDITOR_TEMPLATE}#flow_editor" if request.htmx else EDITOR_TEMPLATE  # type: ignore[attr-defined]
    return render(request, template, context)


def _saved(request: HttpRequest, flow_pk: int, message: str) -> HttpResponse:
    messages.success(request, message)
    if request.htmx:  # type: ignore[attr-defined]
        return _editor(request, flow_pk)
    return redirect("botflows:flow_editor", pk=flow_pk)


def _refused(request: HttpRequest, flow_pk: int, exc: ServiceError) -> HttpResponse:
    messages.error(request, exc.message)
    if request.htmx:  # type: ignore[attr-defined]
        return _editor(request, flow_pk)
    return redirect("botflows:flow_editor", pk=flow_pk)


def _editor_node(flow_pk: int, node_pk: int) -> FlowNode:
    return get_object_or_404(FlowNode.objects.select_related("flow"), pk=node_pk, flow_id=flow_pk)


def _editor_option(flow_pk: int, option_pk: int) -> MenuOption:
    return get_object_or_404(
        MenuOption.objects.select_related("node__flow"), pk=option_pk, node__flow_id=flow_pk
    )


@login_required
@require_GET
def bot_flow_editor(request: HttpRequest, pk: int) -> HttpResponse:
    _admin(request)
    return _editor(request, pk)


@login_required
@require_POST
def bot_flow_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """The editor's "Flow settings" form: name, number, default, active."""
    actor = _admin(request)
    flow = get_object_or_404(Flow, pk=pk)
    form = _flow_form(data=request.POST, instance=flow)
    saved = form.submit(partial(services.flow_update, actor=actor, flow=flow))
    if saved is not None:
        return _saved(request, pk, _("Flow %(name)s saved.") % {"name": saved.name})
    return _editor(request, pk, flow_form=form)


@login_required
@require_POST
def bot_flow_delete(request: HttpRequest, pk: int) -> HttpResponse:
    actor = _admin(request)
    flow = get_object_or_404(Flow, pk=pk)
    try:
        retired = services.flow_delete(actor=actor, flow=flow)
    except ServiceError as exc:
        return _refused(request, pk, exc)
    if retired is None:
        messages.success(request, _("Flow %(name)s deleted.") % {"name": flow.name})
    else:
        messages.success(
            request,
            _(
                "Past conversations ran on %(name)s, so it is kept for their history: it is now "
                "inactive, without number or default mark."
            )
            % {"name": flow.name},
        )
    return _go(request, reverse("botflows:settings"))


@login_required
@require_POST
def bot_node_create(request: HttpRequest, pk: int) -> HttpResponse:
    actor = _admin(request)
    flow = get_object_or_404(Flow, pk=pk)
    form = _node_form(flow, data=request.POST)
    node = form.submit(partial(services.flow_node_create, actor=actor, flow=flow))
    if node is not None:
        return _saved(request, pk, _("Node %(key)s added.") % {"key": node.key})
    return _editor(request, pk, new_node_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def bot_node_edit(request: HttpRequest, pk: int, node_pk: int) -> HttpResponse:
    actor = _admin(request)
    node = _editor_node(pk, node_pk)
    if request.method == "GET":
        return _editor(request, pk, node_form=_node_form(node.flow, instance=node))
    form = _node_form(node.flow, data=request.POST, instance=node)
    saved = form.submit(partial(services.flow_node_update, actor=actor, node=node))
    if saved is not None:
        return _saved(request, pk, _("Node %(key)s saved.") % {"key": saved.key})
    return _editor(request, pk, node_form=form)


@login_required
@require_POST
def bot_node_delete(request: HttpRequest, pk: int, node_pk: int) -> HttpResponse:
    actor = _admin(request)
    node = _editor_node(pk, node_pk)
    try:
        services.flow_node_delete(actor=actor, node=node)
    except ServiceError as exc:
        return _refused(request, pk, exc)
    return _saved(request, pk, _("Node %(key)s deleted.") % {"key": node.key})


@login_required
@require_POST
def bot_node_set_start(request: HttpRequest, pk: int, node_pk: int) -> HttpResponse:
    actor = _admin(request)
    node = _editor_node(pk, node_pk)
    try:
        services.flow_set_start(actor=actor, flow=node.flow, node=node)
    except ServiceError as exc:
        return _refused(request, pk, exc)
    return _saved(request, pk, _("Conversations now start at %(key)s.") % {"key": node.key})


@login_required
@require_http_methods(["GET", "POST"])
def bot_option_create(request: HttpRequest, pk: int, node_pk: int) -> HttpResponse:
    actor = _admin(request)
    menu = _editor_node(pk, node_pk)
    if request.method == "GET":
        return _editor(request, pk, option_form=_option_form(menu.flow, menu=menu))
    form = _option_form(menu.flow, menu=menu, data=request.POST)
    option = form.submit(partial(services.menu_option_create, actor=actor, node=menu))
    if option is not None:
        return _saved(
            request,
            pk,
            _("Option %(number)s added to %(key)s.") % {"number": option.number, "key": menu.key},
        )
    return _editor(request, pk, option_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def bot_option_edit(request: HttpRequest, pk: int, option_pk: int) -> HttpResponse:
    actor = _admin(request)
    option = _editor_option(pk, option_pk)
    menu = option.node
    if request.method == "GET":
        return _editor(request, pk, option_form=_option_form(menu.flow, menu=menu, instance=option))
    form = _option_form(menu.flow, menu=menu, data=request.POST, instance=option)
    saved = form.submit(partial(services.menu_option_update, actor=actor, option=option))
    if saved is not None:
        return _saved(request, pk, _("Option %(number)s saved.") % {"number": saved.number})
    return _editor(request, pk, option_form=form)


@login_required
@require_POST
def bot_option_delete(request: HttpRequest, pk: int, option_pk: int) -> HttpResponse:
    actor = _admin(request)
    option = _editor_option(pk, option_pk)
    try:
        services.menu_option_delete(actor=actor, option=option)
    except ServiceError as exc:
        return _refused(request, pk, exc)
    return _saved(request, pk, _("Option “%(title)s” deleted.") % {"title": option.title})


@login_required
@require_POST
def bot_option_move(request: HttpRequest, pk: int, option_pk: int) -> HttpResponse:
    actor = _admin(request)
    option = _editor_option(pk, option_pk)
    offset = {"up": -1, "down": 1}.get(request.POST.get("direction", ""))
    if offset is None:
        return _refused(request, pk, ServiceError(_("Move an option up or down.")))
    try:
        option = services.menu_option_move(actor=actor, option=option, offset=offset)
    except ServiceError as exc:
        return _refused(request, pk, exc)
    return _saved(
        request,
        pk,
        _("“%(title)s” is now option %(number)s.")
        % {"title": option.title, "number": option.number},
    )


@login_required
@require_GET
def bot_handoff_context(request: HttpRequest, pk: int) -> HttpResponse:
    """The bot's summary and collected values, for the top of the conversation (htmx partial)."""
    _user, conversation = _visible_conversation(request, pk)
    session = selectors.bot_session_get(conversation=conversation)
    return render(
        request,
        "botflows/handoff_context.html",
        {"session": session, "conversation": conversation},
    )


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
