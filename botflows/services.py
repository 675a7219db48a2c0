"""Writes of the bot's configuration: settings, the flow editor, publishing, the demo flow, AI
drafts and summaries.

The conversation engine (answering customers) lives in :mod:`botflows.engine`.
"""

import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import AuditAction, User
from accounts.services import audit_log_record
from common import realtime
from common.exceptions import NotPermitted, ServiceError
from conversations.models import Conversation, ConversationStatus
from departments.models import Department
from whatsapp.models import WhatsAppAccount

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
    SessionState,
    Validation,
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


@transaction.atomic
def bot_config_save(*, values: dict[str, Any], actor: User | None) -> list[str]:
    """Store several settings at once (the /bot/ page's form), all or none; admins only.
    Returns the keys stored."""
    actor = _require_bot_admin(actor)
    for key, value in values.items():
        bot_config_set(key=key, value=value, actor=actor)
    return sorted(values)


# --- Flow editor (the console's /bot/flows/<id>/ page) -------------------------------------------
#
# Every edit changes only the flow's rows, i.e. the draft: customers see nothing until the flow is
# published, and conversations in progress keep the version they started on.

_OPTION_RENUMBER_OFFSET = 1000  # clear of any real number while options are renumbered


def _require_bot_admin(actor: User | None) -> User:
    if actor is None or not (actor.is_active and actor.is_admin):
        raise NotPermitted(_("Only administrators can change the bot."))
    return actor


def _node_state(node: FlowNode) -> dict[str, Any]:
    return {
        "flow": node.flow_id,
        "key": node.key,
        "kind": node.kind,
        "text": node.text,
        "next_node": node.next_node_id,
        "department": node.department_id,
        "field_name": node.field_name,
        "validation": node.validation,
        "pattern": node.pattern,
        "error_text": node.error_text,
        "menu_button": node.menu_button,
        "url": node.url,
        "secret": "(set)" if node.secret else "",  # the audit log never holds the secret
        "fallback_node": node.fallback_node_id,
    }


def _option_state(option: MenuOption) -> dict[str, Any]:
    return {
        "node": option.node_id,
        "number": option.number,
        "title": option.title,
        "description": option.description,
        "keywords": option.keywords,
        "action": option.action,
        "target_node": option.target_node_id,
        "department": option.department_id,
    }


def _audit(
    *,
    actor: User,
    target: FlowNode | MenuOption | Flow,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    target_repr: str = "",
) -> None:
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target=target,
        target_repr=target_repr,
        before=before,
        after=after,
    )


def _lock_flow(flow: Flow) -> Flow:
    return Flow.objects.select_for_update().get(pk=flow.pk)


def _validate_node(*, node: FlowNode, flow: Flow) -> None:
    key = node.key.strip()
    if not key:
        raise ServiceError(_("Every node needs a key."), code="missing_key")
    taken = FlowNode.objects.filter(flow=flow, key=key)
    if node.pk:
        taken = taken.exclude(pk=node.pk)
    if taken.exists():
        raise ServiceError(
            _("This flow already has a node called %(key)s.") % {"key": key}, code="key_taken"
        )
    if node.kind not in NodeKind.values:
        raise ServiceError(_("Unknown kind of node."), code="invalid_kind")
    if node.next_node is not None:
        if node.next_node.flow_id != flow.pk:
            raise ServiceError(
                _("The next node must belong to this flow."), code="invalid_next_node"
            )
        if node.pk and node.next_node.pk == node.pk:
            raise ServiceError(_("A node cannot continue into itself."), code="invalid_next_node")
    _validate_http_node(node=node, flow=flow)
    if node.kind == NodeKind.COLLECT and not node.field_name:
        raise ServiceError(_("Name the field this node collects."), code="missing_field")
    if node.validation == Validation.REGEX:
        if not node.pattern:
            raise ServiceError(_("A regular expression needs a pattern."), code="invalid_pattern")
        try:
            re.compile(node.pattern)
        except re.error as exc:
            raise ServiceError(
                _("The pattern is not a valid regular expression."), code="invalid_pattern"
            ) from exc
    if node.pk and node.kind != NodeKind.MENU and node.options.exists():
        raise ServiceError(
            _("Delete the menu options of this node before changing its kind."),
            code="has_options",
        )


def _validate_http_node(*, node: FlowNode, flow: Flow) -> None:
    if node.kind != NodeKind.HTTP:
        return
    if not node.url.startswith(("https://", "http://")):
        raise ServiceError(
            _("An external service node needs the URL it calls (https://…)."), code="missing_url"
        )
    fallback = node.fallback_node
    if fallback is not None and (
        fallback.flow_id != flow.pk or (node.pk and fallback.pk == node.pk)
    ):
        raise ServiceError(
            _("The fallback node must be another node of this flow."), code="invalid_fallback"
        )


def _apply_node_fields(
    node: FlowNode,
    *,
    key: str,
    kind: str,
    text: str,
    next_node: FlowNode | None,
    department: Department | None,
    field_name: str,
    validation: str,
    pattern: str,
    error_text: str,
    menu_button: str,
    url: str,
    secret: str,
    fallback_node: FlowNode | None,
) -> None:
    node.key = key.strip()
    node.kind = kind
    node.text = text
    node.next_node = next_node
    node.department = department
    node.field_name = field_name.strip()
    node.validation = validation or Validation.TEXT
    node.pattern = pattern
    node.error_text = error_text
    node.menu_button = menu_button
    node.url = url.strip()
    node.secret = secret
    node.fallback_node = fallback_node


@transaction.atomic
def flow_node_create(
    *,
    actor: User | None,
    flow: Flow,
    key: str,
    kind: str,
    text: str = "",
    next_node: FlowNode | None = None,
    department: Department | None = None,
    field_name: str = "",
    validation: str = Validation.TEXT,
    pattern: str = "",
    error_text: str = "",
    menu_button: str = "",
    url: str = "",
    secret: str = "",
    fallback_node: FlowNode | None = None,
) -> FlowNode:
    """Add a step at the end of the flow; the first node of a flow becomes its start node."""
    admin = _require_bot_admin(actor)
    flow = _lock_flow(flow)
    node = FlowNode(flow=flow)
    _apply_node_fields(
        node,
        key=key,
        kind=kind,
        text=text,
        next_node=next_node,
        department=department,
        field_name=field_name,
        validation=validation,
        pattern=pattern,
        error_text=error_text,
        menu_button=menu_button,
        url=url,
        secret=secret,
        fallback_node=fallback_node,
    )
    _validate_node(node=node, flow=flow)
    last = flow.nodes.aggregate(last=Max("position"))["last"]
    node.position = 0 if last is None else last + 1
    node.save()
    if flow.start_node_id is None:
        flow.start_node = node
        flow.save(update_fields=["start_node", "updated_at"])
    _audit(actor=admin, target=node, after={"created": _node_state(node)})
    return node


@transaction.atomic
def flow_node_update(
    *,
    actor: User | None,
    node: FlowNode,
    key: str,
    kind: str,
    text: str,
    next_node: FlowNode | None,
    department: Department | None,
    field_name: str,
    validation: str,
    pattern: str,
    error_text: str,
    menu_button: str,
    url: str = "",
    secret: str | None = None,
    fallback_node: FlowNode | None = None,
) -> FlowNode:
    """Change one step of the flow (its draft: publish to make it live)."""
    admin = _require_bot_admin(actor)
    flow = _lock_flow(node.flow)
    node = FlowNode.objects.select_for_update().get(pk=node.pk)
    before = _node_state(node)
    if secret is None:  # not given (the editor leaves it empty): keep the one set before
        secret = node.secret
    _apply_node_fields(
        node,
        key=key,
        kind=kind,
        text=text,
        next_node=next_node,
        department=department,
        field_name=field_name,
        validation=validation,
        pattern=pattern,
        error_text=error_text,
        menu_button=menu_button,
        url=url,
        secret=secret,
        fallback_node=fallback_node,
    )
    _validate_node(node=node, flow=flow)
    node.save()
    after = _node_state(node)
    if after != before:
        _audit(actor=admin, target=node, before=before, after=after)
    return node


@transaction.atomic
def flow_node_delete(*, actor: User | None, node: FlowNode) -> None:
    """Remove a step and its menu options. Refused while other steps lead to it, and for the start
    node while the flow has other nodes (nothing is left pointing nowhere)."""
    admin = _require_bot_admin(actor)
    flow = _lock_flow(node.flow)
    node = FlowNode.objects.select_for_update().get(pk=node.pk)
    if flow.start_node_id == node.pk and flow.nodes.exclude(pk=node.pk).exists():
        raise ServiceError(
            _("%(key)s is the start node: choose another start node first.") % {"key": node.key},
            code="is_start",
        )
    users = sorted(
        set(
            FlowNode.objects.filter(Q(next_node=node) | Q(fallback_node=node), flow=flow)
            .exclude(pk=node.pk)
            .values_list("key", flat=True)
        )
        | set(
            MenuOption.objects.filter(target_node=node)
            .exclude(node=node)
            .values_list("node__key", flat=True)
        )
    )
    if users:
        raise ServiceError(
            _("%(key)s is still used by %(users)s: change those first.")
            % {"key": node.key, "users": ", ".join(users)},
            code="in_use",
        )
    before = {
        **_node_state(node),
        "options": [_option_state(option) for option in node.options.all()],
    }
    _audit(actor=admin, target=node, before={"deleted": before})
    node.delete()


@transaction.atomic
def flow_set_start(*, actor: User | None, flow: Flow, node: FlowNode) -> Flow:
    """Make ``node`` the step every new conversation starts with (after publishing)."""
    admin = _require_bot_admin(actor)
    flow = _lock_flow(flow)
    if node.flow_id != flow.pk:
        raise ServiceError(_("The start node must belong to this flow."), code="invalid_start")
    before = {"start_node": flow.start_node_id}
    flow.start_node = node
    flow.save(update_fields=["start_node", "updated_at"])
    if before["start_node"] != node.pk:
        _audit(actor=admin, target=flow, before=before, after={"start_node": node.pk})
    return flow


def _validate_option(*, option: MenuOption, menu: FlowNode) -> None:
    if menu.kind != NodeKind.MENU:
        raise ServiceError(_("Only menus have options."), code="not_a_menu")
    if not option.title.strip():
        raise ServiceError(_("Every option needs a title."), code="missing_title")
    if option.action not in OptionAction.values:
        raise ServiceError(_("Unknown action."), code="invalid_action")
    if option.action == OptionAction.NODE:
        if option.target_node is None or option.target_node.flow_id != menu.flow_id:
            raise ServiceError(
                _("Choose the node of this flow the option leads to."), code="invalid_target"
            )
    elif option.action == OptionAction.DEPARTMENT and option.department is None:
        raise ServiceError(
            _("Choose the department whose queue the option leads to."),
            code="missing_department",
        )


def _apply_option_fields(
    option: MenuOption,
    *,
    title: str,
    description: str,
    keywords: str,
    action: str,
    target_node: FlowNode | None,
    department: Department | None,
) -> None:
    option.title = title.strip()
    option.description = description.strip()
    option.keywords = ", ".join(w.strip() for w in keywords.split(",") if w.strip())
    option.action = action
    # Keep only what the action uses, so the editor never shows a stale target.
    option.target_node = target_node if action == OptionAction.NODE else None
    option.department = department if action != OptionAction.NODE else None


def _renumber(menu: FlowNode, ordered: list[int]) -> None:
    """Number the menu's options 1, 2, 3… in the order of ``ordered`` (option ids)."""
    MenuOption.objects.filter(node=menu).update(number=F("number") + _OPTION_RENUMBER_OFFSET)
    for number, pk in enumerate(ordered, start=1):
        MenuOption.objects.filter(pk=pk).update(number=number)


def _lock_menu(menu: FlowNode) -> FlowNode:
    _lock_flow(menu.flow)
    return FlowNode.objects.select_for_update().get(pk=menu.pk)


@transaction.atomic
def menu_option_create(
    *,
    actor: User | None,
    node: FlowNode,
    title: str,
    action: str,
    description: str = "",
    keywords: str = "",
    target_node: FlowNode | None = None,
    department: Department | None = None,
) -> MenuOption:
    """Add an option at the end of a menu (the next free number)."""
    admin = _require_bot_admin(actor)
    menu = _lock_menu(node)
    option = MenuOption(node=menu)
    _apply_option_fields(
        option,
        title=title,
        description=description,
        keywords=keywords,
        action=action,
        target_node=target_node,
        department=department,
    )
    _validate_option(option=option, menu=menu)
    option.number = (menu.options.aggregate(last=Max("number"))["last"] or 0) + 1
    option.save()
    _audit(actor=admin, target=option, after={"created": _option_state(option)})
    return option


@transaction.atomic
def menu_option_update(
    *,
    actor: User | None,
    option: MenuOption,
    title: str,
    action: str,
    description: str,
    keywords: str,
    target_node: FlowNode | None,
    department: Department | None,
) -> MenuOption:
    admin = _require_bot_admin(actor)
    menu = _lock_menu(option.node)
    option = MenuOption.objects.select_for_update().get(pk=option.pk)
    before = _option_state(option)
    _apply_option_fields(
        option,
        title=title,
        description=description,
        keywords=keywords,
        action=action,
        target_node=target_node,
        department=department,
    )
    _validate_option(option=option, menu=menu)
    option.save()
    after = _option_state(option)
    if after != before:
        _audit(actor=admin, target=option, before=before, after=after)
    return option


@transaction.atomic
def menu_option_delete(*, actor: User | None, option: MenuOption) -> None:
    """Remove an option; the others are numbered 1, 2, 3… again (customers type those)."""
    admin = _require_bot_admin(actor)
    menu = _lock_menu(option.node)
    option = MenuOption.objects.select_for_update().get(pk=option.pk)
    _audit(actor=admin, target=option, before={"deleted": _option_state(option)})
    option.delete()
    _renumber(menu, list(menu.options.order_by("number").values_list("pk", flat=True)))


@transaction.atomic
def menu_option_move(*, actor: User | None, option: MenuOption, offset: int) -> MenuOption:
    """Move an option up (``-1``) or down (``+1``) in its menu; numbers follow the order."""
    admin = _require_bot_admin(actor)
    if offset not in (-1, 1):
        raise ServiceError(_("Options move one place at a time."), code="invalid_offset")
    menu = _lock_menu(option.node)
    ordered = list(menu.options.order_by("number").values_list("pk", flat=True))
    if option.pk not in ordered:
        raise ServiceError(_("This option is not in that menu."), code="invalid_option")
    index = ordered.index(option.pk)
    other = index + offset
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
        before = option.number
        _renumber(menu, ordered)
        option.refresh_from_db()
        _audit(
            actor=admin, target=option, before={"number": before}, after={"number": option.number}
        )
    return option


# --- Flows themselves (the console's /bot/ page and each editor's settings) ----------------------
#
# One flow per WhatsApp number (``Flow.whatsapp_account`` is one-to-one) and one default flow (the
# ``flow_one_default`` constraint): making a flow the default takes the mark from the previous one
# in the same transaction. Published versions are kept while a ``BotSession`` points at them
# (``on_delete=PROTECT``), so a flow with history is retired (deactivated, its number and default
# mark released) rather than deleted.


def _flow_state(flow: Flow) -> dict[str, Any]:
    return {
        "name": flow.name,
        "whatsapp_account": flow.whatsapp_account_id,
        "is_default": flow.is_default,
        "is_active": flow.is_active,
    }


def _lock_account(account: WhatsAppAccount | None, *, flow: Flow | None) -> WhatsAppAccount | None:
    """Lock the number, so two admins cannot give it two flows; refused when another flow has it."""
    if account is None:
        return None
    account = WhatsAppAccount.objects.select_for_update().get(pk=account.pk)
    taken = Flow.objects.filter(whatsapp_account=account)
    if flow is not None and flow.pk:
        taken = taken.exclude(pk=flow.pk)
    other = taken.first()
    if other is not None:
        raise ServiceError(
            _("%(number)s already has a flow: %(flow)s.") % {"number": account, "flow": other.name},
            code="number_taken",
        )
    return account


def _take_default(flow: Flow | None) -> list[int]:
    """Un-default every other flow (locked first); returns the ids that lost the mark."""
    others = Flow.objects.select_for_update().filter(is_default=True)
    if flow is not None and flow.pk:
        others = others.exclude(pk=flow.pk)
    previous = [row.pk for row in others.order_by("pk")]
    if previous:
        Flow.objects.filter(pk__in=previous).update(is_default=False)
    return previous


def _save_flow(flow: Flow, *, take_default: bool) -> list[int]:
    """Save the flow; made default, it first takes the mark from the other flows (returned).

    Another admin's new default flow committed meanwhile is not among the rows locked at first
    (it did not exist yet): the save then fails on ``flow_one_default`` and is tried once more,
    now seeing that flow. A second failure is a message, not a 500."""
    for attempt in range(2):
        previous = _take_default(flow) if take_default else []
        try:
            with transaction.atomic():
                flow.save()
        except IntegrityError as exc:
            if attempt:
                raise ServiceError(
                    _("Another change to the flows was saved at the same time; please try again."),
                    code="conflict",
                ) from exc
        else:
            return previous
    raise AssertionError("unreachable")


def _validate_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ServiceError(_("Every flow needs a name."), code="missing_name")
    return name


@transaction.atomic
def flow_create(
    *,
    actor: User | None,
    name: str,
    whatsapp_account: WhatsAppAccount | None = None,
    is_default: bool = False,
    is_active: bool = True,
) -> Flow:
    """A new empty flow (its nodes come from the editor). Made default, it takes the mark from
    the previous default flow."""
    admin = _require_bot_admin(actor)
    flow = Flow(name=_validate_name(name), is_default=is_default, is_active=is_active)
    flow.whatsapp_account = _lock_account(whatsapp_account, flow=None)
    previous = _save_flow(flow, take_default=is_default)
    after: dict[str, Any] = {"created": _flow_state(flow)}
    if previous:
        after["undefaulted"] = previous
    _audit(actor=admin, target=flow, after=after)
    return flow


@transaction.atomic
def flow_update(
    *,
    actor: User | None,
    flow: Flow,
    name: str,
    whatsapp_account: WhatsAppAccount | None,
    is_default: bool,
    is_active: bool,
) -> Flow:
    """Rename a flow, move it to another number (or none), make it the default or (in)active.

    Takes effect at once: a flow's number and default mark decide which flow new conversations
    start on (the version they run is still the published one). The default flow stays default
    until another flow is made default, while other flows exist (numbers without a flow of their
    own need it)."""
    admin = _require_bot_admin(actor)
    flow = _lock_flow(flow)
    before = _flow_state(flow)
    name = _validate_name(name)
    if flow.is_default and not is_default and Flow.objects.exclude(pk=flow.pk).exists():
        raise ServiceError(
            _(
                "Numbers without a flow of their own use the default flow: make another flow the "
                "default instead."
            ),
            code="default_required",
        )
    account = _lock_account(whatsapp_account, flow=flow)
    take_default = is_default and not flow.is_default
    flow.name = name
    flow.whatsapp_account = account
    flow.is_default = is_default
    flow.is_active = is_active
    previous = _save_flow(flow, take_default=take_default)
    after = _flow_state(flow)
    if after != before:
        changes: dict[str, Any] = dict(after)
        if previous:
            changes["undefaulted"] = previous
        _audit(actor=admin, target=flow, before=before, after=changes)
    return flow


def flow_sessions_in_progress(*, flow: Flow) -> int:
    """Conversations still running on one of the flow's published versions."""
    return (
        BotSession.objects.filter(flow_version__flow=flow, state=SessionState.ACTIVE)
        .exclude(conversation__status=ConversationStatus.CLOSED)
        .count()
    )


@transaction.atomic
def flow_delete(*, actor: User | None, flow: Flow) -> Flow | None:
    """Delete a flow with its nodes and versions (returns ``None``).

    Refused while conversations in progress run on one of its versions, and for the default flow
    while other flows exist. A flow whose versions past conversations ran on keeps them (they are
    the bot's history, and ``BotSession.flow_version`` protects them): it is retired instead —
    inactive, without number or default mark — and returned."""
    admin = _require_bot_admin(actor)
    flow = _lock_flow(flow)
    in_progress = flow_sessions_in_progress(flow=flow)
    if in_progress:
        raise ServiceError(
            ngettext(
                "%(count)d conversation in progress still runs on %(flow)s: delete it once it "
                "ends, or deactivate the flow so that new conversations do not start on it.",
                "%(count)d conversations in progress still run on %(flow)s: delete it once they "
                "end, or deactivate the flow so that new conversations do not start on it.",
                in_progress,
            )
            % {"count": in_progress, "flow": flow.name},
            code="in_progress",
        )
    if flow.is_default and Flow.objects.exclude(pk=flow.pk).exists():
        raise ServiceError(
            _("%(flow)s is the default flow: make another flow the default first.")
            % {"flow": flow.name},
            code="is_default",
        )
    before = _flow_state(flow)
    if BotSession.objects.filter(flow_version__flow=flow).exists():
        flow.is_active = False
        flow.is_default = False
        flow.whatsapp_account = None
        flow.save(update_fields=["is_active", "is_default", "whatsapp_account", "updated_at"])
        _audit(actor=admin, target=flow, before=before, after={"retired": _flow_state(flow)})
        return flow
    _audit(
        actor=admin,
        target=flow,
        before={"deleted": {**before, "nodes": list(flow.nodes.values_list("key", flat=True))}},
    )
    Flow.objects.filter(pk=flow.pk).update(start_node=None)
    flow.delete()
    return None


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
        "url": node.url,
        "secret": node.secret,
        "fallback": node.fallback_node.key
        if node.fallback_node_id and node.fallback_node
        else None,
        "options": [],
    }


def flow_definition(*, flow: Flow) -> dict[str, Any]:
    """The flow's rows as one JSON document the engine runs.

    Options that lead to a department, a human or the AI become small nodes of their own
    (``_<menu key>_<number>``), so the engine only ever moves from node to node.
    """
    nodes = list(
        flow.nodes.select_related("next_node", "fallback_node")
        .prefetch_related("options__target_node")
        .all()
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
        if node.fallback_node is not None and node.fallback_node.flow_id != flow.pk:
            raise ServiceError(
                _("Node %(key)s falls back to another flow.") % {"key": node.key},
                code="invalid_target",
            )
        if node.kind == NodeKind.HTTP and not node.url:
            raise ServiceError(
                _("Node %(key)s needs the URL of its service.") % {"key": node.key},
                code="missing_url",
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


BOT_CONTEXT_EVENT = "bot_context_update"


def bot_context_broadcast(*, conversation_id: int) -> None:
    """Tell the consoles showing this conversation that what the bot learned changed (after
    commit). The frame names the conversation, so the socket re-checks who may see it."""
    state = (
        Conversation.objects.filter(pk=conversation_id)
        .values_list("department_id", "assigned_to_id")
        .first()
    )
    if state is None:
        return
    department_id, assigned_to_id = state
    realtime.broadcast_on_commit(
        event=BOT_CONTEXT_EVENT,
        data={"conversationId": conversation_id},
        groups=[
            *realtime.conversation_audience(
                department_id=department_id, assigned_to_id=assigned_to_id
            ),
            realtime.conversation_group(conversation_id),
        ],
    )


@transaction.atomic
def bot_session_store_summary(*, conversation: Conversation, summary: str) -> bool:
    """Keep the AI summary on the conversation's bot session; the open console refreshes."""
    stored = BotSession.objects.filter(conversation=conversation).update(summary=summary)
    if stored:
        bot_context_broadcast(conversation_id=conversation.pk)
    return bool(stored)


def bot_summarize(*, conversation: Conversation) -> str:
    """Store a short AI summary of what the customer wants on the conversation's bot session.

    The model is called outside any transaction; only the store is atomic."""
    config = selectors.bot_config_values()
    if not ai.ai_available(config=config):
        return ""
    summary = ai.ai_summary(conversation=conversation, config=config)
    if summary:
        bot_session_store_summary(conversation=conversation, summary=summary)
    return summary or ""
