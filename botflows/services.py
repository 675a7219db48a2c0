"""Writes of the bot's configuration: settings, flow publishing, the demo flow, AI drafts.

The conversation engine (answering customers) lives in :mod:`botflows.engine`.
"""

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import User
from conversations.models import Conversation
from departments.models import Department
from supportdesk.exceptions import ServiceError

from . import ai, selectors
from .models import (
    BotConfiguration,
    BotSession,
    Flow,
    FlowNode,
    FlowVersion,
    MenuOption,
    NodeKind,
    OptionAction,
)

# --- Settings ----------------------------------------------------------------------------------


def _validate_config(key: str, value: Any) -> None:
    if key in selectors.NUMERIC_CONFIG_LIMITS:
        low, high = selectors.NUMERIC_CONFIG_LIMITS[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise ServiceError(
                _("%(key)s must be a number between %(low)s and %(high)s.")
                % {"key": key, "low": low, "high": high},
                code="invalid_value",
            )
    elif key == "handoff_keywords":
        if not isinstance(value, list) or not all(
            isinstance(word, str) and word.strip() for word in value
        ):
            raise ServiceError(_("handoff_keywords must be a list of words."), code="invalid_value")
    elif key == "ai_enabled":
        if not isinstance(value, bool):
            raise ServiceError(_("ai_enabled must be true or false."), code="invalid_value")
    elif (key.startswith("message_") or key in ("ai_system_prompt", "handoff_department")) and (
        value is not None and not isinstance(value, str)
    ):
        raise ServiceError(_("%(key)s must be a text.") % {"key": key}, code="invalid_value")
    if (
        key == "handoff_department"
        and value
        and not Department.objects.filter(name__iexact=str(value).strip()).exists()
    ):
        raise ServiceError(
            _("There is no department called %(name)s.") % {"name": value},
            code="invalid_value",
        )


@transaction.atomic
def bot_config_set(
    *, key: str, value: Any, actor: User | None, description: str | None = None
) -> BotConfiguration:
    """Store one setting (created when missing), after checking its type for known keys."""
    _validate_config(key, value)
    row, _created = BotConfiguration.objects.select_for_update().get_or_create(
        key=key, defaults={"value": value, "updated_by": actor}
    )
    row.value = value
    row.updated_by = actor
    if description is not None:
        row.description = description
    row.save()
    return row


# --- Publishing --------------------------------------------------------------------------------


def _synthetic_key(node: FlowNode, option: MenuOption) -> str:
    return f"_{node.key}_{option.number}"


def _node_definition(node: FlowNode) -> dict[str, Any]:
    return {
        "kind": node.kind,
        "text": node.text,
        "next": node.next_node.key if node.next_node_id and node.next_node else None,
        "department": node.department_id,
        "field": node.field_name,
        "validation": node.validation,
        "pattern": node.pattern,
        "error_text": node.error_text,
        "menu_button": node.menu_button,
        "options": [],
    }


def flow_definition(*, flow: Flow) -> dict[str, Any]:
    """The flow's rows as one JSON document the engine runs.

    Options that lead to a department, a human or the AI become small nodes of their own
    (``_<menu key>_<number>``), so the engine only ever moves from node to node.
    """
    nodes = list(
        flow.nodes.select_related("next_node").prefetch_related("options__target_node").all()
    )
    if not nodes:
        raise ServiceError(_("A flow needs at least one node."), code="empty_flow")
    start = flow.start_node if flow.start_node_id else nodes[0]
    if start is None or start.flow_id != flow.pk:
        raise ServiceError(_("The start node belongs to another flow."), code="invalid_start")
    definition: dict[str, Any] = {"start": start.key, "nodes": {}}
    for node in nodes:
        entry = _node_definition(node)
        if node.next_node is not None and node.next_node.flow_id != flow.pk:
            raise ServiceError(
                _("Node %(key)s continues in another flow.") % {"key": node.key},
                code="invalid_target",
            )
        if node.kind == NodeKind.MENU and not node.options.all():
            raise ServiceError(
                _("Menu %(key)s has no options.") % {"key": node.key}, code="empty_menu"
            )
        if node.kind == NodeKind.COLLECT and not node.field_name:
            raise ServiceError(
                _("Node %(key)s must name the field it collects.") % {"key": node.key},
                code="missing_field",
            )
        for option in node.options.all():
            if option.action == OptionAction.NODE:
                if option.target_node is None or option.target_node.flow_id != flow.pk:
                    raise ServiceError(
                        _("Option %(number)s of %(key)s needs a target node of this flow.")
                        % {"number": option.number, "key": node.key},
                        code="invalid_target",
                    )
                target = option.target_node.key
            else:
                target = _synthetic_key(node, option)
                definition["nodes"][target] = {
                    **_node_definition(node),
                    "kind": NodeKind.AI if option.action == OptionAction.AI else NodeKind.HUMAN,
                    "text": "",
                    "next": None,
                    "department": option.department_id,
                }
            entry["options"].append(
                {
                    "number": option.number,
                    "title": option.title,
                    "description": option.description,
                    "keywords": [w.strip() for w in option.keywords.split(",") if w.strip()],
                    "target": target,
                }
            )
        definition["nodes"][node.key] = entry
    return definition


@transaction.atomic
def flow_publish(*, flow: Flow, actor: User | None) -> FlowVersion:
    """Freeze the flow's current rows as a new version; new conversations start on it, those in
    progress keep the version they started on."""
    flow = Flow.objects.select_for_update().get(pk=flow.pk)
    definition = flow_definition(flow=flow)
    latest = flow.versions.aggregate(latest=Max("number"))["latest"] or 0
    if latest:
        current = flow.versions.get(number=latest)
        if current.definition == definition:
            return current
    return FlowVersion.objects.create(
        flow=flow, number=latest + 1, definition=definition, published_by=actor
    )


# --- Demo flow (contract §3) --------------------------------------------------------------------

DEMO_DEPARTMENTS = ("Suporte", "Vendas", "Financeiro")


def _demo_texts() -> dict[str, Any]:
    """Greeting and menu texts: the ``greeting``/``menu`` bot settings when present (``seed_demo``
    stores them), else the translated defaults."""
    stored = dict(
        BotConfiguration.objects.filter(key__in=["greeting", "menu"]).values_list("key", "value")
    )
    stored_menu = stored.get("menu")
    menu: dict[str, Any] = stored_menu if isinstance(stored_menu, dict) else {}
    options = [
        (str(o.get("label") or o.get("department")), str(o.get("department") or o.get("label")))
        for o in (menu.get("options") or [])
        if isinstance(o, dict) and (o.get("label") or o.get("department"))
    ]
    greeting = stored.get("greeting")
    return {
        "greeting": greeting
        if isinstance(greeting, str) and greeting.strip()
        else _("Hello! Welcome to our customer service."),
        "prompt": str(menu.get("text") or "")
        or _("How can we help you? Choose an option or type its number:"),
        "button": str(menu.get("button") or "")[:20] or _("Options")[:20],
        "options": options[:10] or [(name, name) for name in DEMO_DEPARTMENTS],
    }


@transaction.atomic
def flow_ensure_demo() -> Flow:
    """The demo flow of contract §3: a greeting, then ``1`` Suporte, ``2`` Vendas,
    ``3`` Financeiro (reply buttons; the numbers work as plain text too).

    Idempotent: creates only what is missing and publishes only when something changed.
    """
    with translation.override(settings.LANGUAGE_CODE):
        texts = _demo_texts()
        flow = Flow.objects.filter(is_default=True).first()
        if flow is None:
            flow = Flow.objects.create(name=_("Main menu"), is_default=True)
        menu, created = FlowNode.objects.get_or_create(
            flow=flow,
            key="menu",
            defaults={
                "kind": NodeKind.MENU,
                "position": 1,
                "text": texts["prompt"],
                "error_text": _("Sorry, I did not understand. Please choose one of the options."),
                "menu_button": texts["button"],
            },
        )
        if created or not menu.options.exists():
            for number, (label, department_name) in enumerate(texts["options"], start=1):
                department = Department.objects.get_or_create(name=department_name)[0]
                MenuOption.objects.get_or_create(
                    node=menu,
                    number=number,
                    defaults={
                        "title": label[:24],
                        "action": OptionAction.DEPARTMENT,
                        "department": department,
                    },
                )
        greeting, _created = FlowNode.objects.get_or_create(
            flow=flow,
            key="greeting",
            defaults={
                "kind": NodeKind.MESSAGE,
                "position": 0,
                "text": texts["greeting"],
                "next_node": menu,
            },
        )
        if flow.start_node_id is None:
            flow.start_node = greeting
            flow.save(update_fields=["start_node", "updated_at"])
        flow_publish(flow=flow, actor=None)
    return flow


# --- AI for agents -----------------------------------------------------------------------------


def bot_draft_reply(*, conversation: Conversation) -> str:
    """An AI draft the agent may edit and send; never sent by itself."""
    config = selectors.bot_config_values()
    if not ai.ai_available(config=config):
        raise ServiceError(_("AI answers are off."), code="ai_disabled")
    draft = ai.ai_draft(conversation=conversation, config=config)
    if draft is None:
        raise ServiceError(_("The AI could not write a draft right now."), code="ai_failed")
    return draft


def bot_summarize(*, conversation: Conversation) -> str:
    """Store a short AI summary of what the customer wants on the conversation's bot session."""
    config = selectors.bot_config_values()
    if not ai.ai_available(config=config):
        return ""
    summary = ai.ai_summary(conversation=conversation, config=config)
    if summary:
        BotSession.objects.filter(conversation=conversation).update(summary=summary)
    return summary or ""
