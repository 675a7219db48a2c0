"""The bot's conversation engine: one inbound message in, the next step of the flow out.

:func:`bot_handle_inbound` is what the Celery task calls. It

1. locks the conversation and claims the message (a :class:`BotTurn` per inbound message: the same
   message is never answered twice, an older message arriving late is ignored);
2. advances the conversation's :class:`BotSession` on the flow version it started on (publishing
   a new version never changes a conversation in progress);
3. replies through ``conversations.services.message_create_outbound`` (queued; the WhatsApp sender
   delivers it) and hands over through ``conversation_route_to_department``;
4. for free text, asks the AI *after* releasing the lock, then applies the answer under the lock
   again; any AI failure hands the customer to a human, so nobody is left without a reply;
5. on an ``http`` node, likewise calls the external service (``botflows.http_node``) with no
   transaction open, then applies its answer under the lock; a failure takes the node's fallback.
"""

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from common.exceptions import ServiceError
from conversations import services as conversation_services
from conversations.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageType,
    SenderKind,
)
from conversations.replies import reply_choice
from conversations.serializers import conversation_payload, message_payload
from departments.models import Department

from . import ai, http_node, selectors
from .models import BotSession, BotTurn, NodeKind, SessionState, Validation
from .services import bot_context_broadcast, bot_summarize

logger = logging.getLogger(__name__)

MAX_HOPS = 20  # message nodes chained in one step; more is a loop in the flow


# --- Text helpers ------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Lower case, no accents, words separated by single spaces."""
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9]+", plain))


def _contains_phrase(text: str, phrase: str) -> bool:
    phrase = normalize(phrase)
    return bool(phrase) and f" {phrase} " in f" {normalize(text)} "


def _fill(template: str, **values: Any) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", str(value))
    return template


def wants_human(*, text: str, config: dict[str, Any]) -> bool:
    keywords = config.get("handoff_keywords") or []
    return any(isinstance(k, str) and _contains_phrase(text, k) for k in keywords)


# --- Rendering ---------------------------------------------------------------------------------


def option_id(node_key: str, number: int) -> str:
    return f"{node_key}:{number}"


def render_menu(
    *, node_key: str, node: dict[str, Any], prefix: str = ""
) -> tuple[str, str, dict[str, Any] | None]:
    """(readable body, message type, Meta ``interactive`` object or None) for a menu node.

    Reply buttons when they fit Meta's limits (≤ 3, titles ≤ 20), else a list (≤ 10 rows, titles
    ≤ 24, descriptions ≤ 72), else numbered text. The body always lists the numbers.
    """
    options = node["options"]
    text = node["text"] or _("Choose an option:")
    if prefix:
        text = f"{prefix}\n\n{text}"
    numbered = "\n".join(f"{o['number']}. {o['title']}" for o in options)
    body = f"{text}\n\n{numbered}"[:4096]
    if len(options) <= 3 and all(len(o["title"]) <= 20 for o in options) and len(text) <= 1024:
        return (
            body,
            MessageType.INTERACTIVE,
            {
                "type": "button",
                "body": {"text": text},
                "action": {
                    "buttons": [
                        {
                            "type": "reply",
                            "reply": {"id": option_id(node_key, o["number"]), "title": o["title"]},
                        }
                        for o in options
                    ]
                },
            },
        )
    if (
        len(options) <= 10
        and all(len(o["title"]) <= 24 and len(o.get("description") or "") <= 72 for o in options)
        and len(text) <= 4096
    ):
        button = (node.get("menu_button") or _("Options"))[:20]
        rows = []
        for o in options:
            row = {"id": option_id(node_key, o["number"]), "title": o["title"]}
            if o.get("description"):
                row["description"] = o["description"]
            rows.append(row)
        return (
            body,
            MessageType.INTERACTIVE,
            {
                "type": "list",
                "body": {"text": text},
                "action": {"button": button, "sections": [{"title": button[:24], "rows": rows}]},
            },
        )
    return body, MessageType.TEXT, None


# --- Input -------------------------------------------------------------------------------------


def _reply(message: Message) -> tuple[str, str]:
    """(id, title) of a tapped button or list row, from the stored Meta message object."""
    return reply_choice(message.raw_payload)


def match_option(
    *, node_key: str, node: dict[str, Any], text: str, reply_id: str = ""
) -> dict[str, Any] | None:
    """The option the customer chose: by button/list id, number, title or keyword words."""
    options = node["options"]
    by_number = {str(o["number"]): o for o in options}
    prefix = f"{node_key}:"
    if reply_id.startswith(prefix) and reply_id[len(prefix) :] in by_number:
        return by_number[reply_id[len(prefix) :]]
    number = re.fullmatch(r"\s*(\d{1,3})\s*[.)\-:]?\s*", text)
    if number:
        return by_number.get(str(int(number.group(1))))
    said = normalize(text)
    if not said:
        return None

    def phrases(option: dict[str, Any]) -> list[str]:
        return [p for p in (normalize(option["title"]), *map(normalize, option["keywords"])) if p]

    exact = [o for o in options if said in phrases(o)]
    if len(exact) == 1:
        return exact[0]
    partial = [o for o in options if any(_contains_phrase(said, p) for p in phrases(o))]
    return partial[0] if len(partial) == 1 else None


_NAME = re.compile(r"[^\W\d_]{2,}(?:[\s'.\-]+[^\W\d_]+)*")


def validate_value(  # noqa: PLR0911 - one return per validation reads best
    *, node: dict[str, Any], text: str
) -> str | None:
    """The cleaned value for a collect node, or None when it does not pass its validation."""
    value = text.strip()
    if not value or len(value) > 500:
        return None
    kind = node.get("validation") or Validation.TEXT
    if kind == Validation.NAME:
        return " ".join(value.split()) if _NAME.fullmatch(value) else None
    if kind == Validation.EMAIL:
        try:
            validate_email(value)
        except ValidationError:
            return None
        return value.lower()
    if kind == Validation.NUMBER:
        digits = re.sub(r"[\s.\-/#]", "", value)
        return digits if digits.isdigit() else None
    if kind == Validation.PHONE:
        try:
            parsed = phonenumbers.parse(value, "BR")
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if kind == Validation.REGEX and node.get("pattern"):
        try:
            return value if re.fullmatch(node["pattern"], value) else None
        except re.error:
            logger.warning("invalid pattern in bot node: %r", node["pattern"])
            return value
    return value


def _retry_text(node: dict[str, Any], config: dict[str, Any]) -> str:
    if node.get("error_text"):
        return str(node["error_text"])
    if node["kind"] == NodeKind.COLLECT:
        defaults: dict[str, str] = {
            Validation.NAME: _("Please type your name."),
            Validation.EMAIL: _(
                "That does not look like an e-mail address. Please try again "
                "(for example name@example.com)."
            ),
            Validation.NUMBER: _("Please type numbers only."),
            Validation.PHONE: _("That does not look like a phone number. Please include the DDD."),
        }
        default = defaults.get(str(node.get("validation")), "")
        if default:
            return str(default)
    return str(config.get("message_retry") or _("Sorry, I did not understand. Please try again."))


# --- The run of one step -----------------------------------------------------------------------


@dataclass
class _Run:
    conversation: Conversation
    session: BotSession
    config: dict[str, Any]
    now: datetime
    outcome: str = ""
    needs_ai: bool = False
    ai_department_id: int | None = None
    handed_off: bool = False
    http_key: str = ""  # an http node waiting for its call (made after the lock is released)
    turn: BotTurn | None = None
    session_new: bool = False  # created by this turn: it has no turns to look for
    sent: list[Message] = field(default_factory=list)
    pending: list[conversation_services.OutboundDraft] = field(default_factory=list)  # to _flush

    @property
    def nodes(self) -> dict[str, Any]:
        version = self.session.flow_version
        return version.definition.get("nodes", {}) if version else {}

    @property
    def start(self) -> str:
        version = self.session.flow_version
        return str(version.definition.get("start", "")) if version else ""


def _lock_conversation(conversation_id: int) -> Conversation:
    """The conversation under its row lock, with what its payload shows (the replies are
    written under this lock: ``messages_create_bot(locked=True)``)."""
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("customer", "department", "assigned_to", "whatsapp_account")
        .get(pk=conversation_id)
    )


def _send(run: _Run, body: str, interactive: dict[str, Any] | None = None) -> None:
    """Queue a reply (written with the turn's others by :func:`_flush`); an interactive message
    the channel refuses goes out as plain text."""
    if interactive:
        draft = conversation_services.OutboundDraft(
            body=body,
            type=MessageType.INTERACTIVE,
            media={"raw_payload": {"interactive": interactive}},
        )
        try:
            conversation_services.message_outbound_check(conversation=run.conversation, draft=draft)
        except ServiceError as exc:
            if exc.code == "window_closed":
                raise
            logger.warning("interactive bot message refused (%s); sending text", exc.code)
        else:
            run.pending.append(draft)
            return
    draft = conversation_services.OutboundDraft(body=body[:4096])
    conversation_services.message_outbound_check(conversation=run.conversation, draft=draft)
    run.pending.append(draft)


def _flush(run: _Run) -> None:
    """Write the replies queued so far, in one go (before the conversation moves on: a route,
    a close, the end of the turn)."""
    if run.pending:
        run.sent.extend(
            conversation_services.messages_create_bot(
                conversation=run.conversation, drafts=run.pending, locked=True
            )
        )
        run.pending = []


def _department(department_id: int | None) -> Department | None:
    if not department_id:
        return None
    return Department.objects.filter(pk=department_id, is_active=True).first()


def _default_department(config: dict[str, Any]) -> Department | None:
    name = config.get("handoff_department")
    if not isinstance(name, str) or not name.strip():
        return None
    return Department.objects.filter(name__iexact=name.strip(), is_active=True).first()


def _format_opening(moment: datetime | None) -> str:
    if moment is None:
        return _("as soon as possible")
    return moment.strftime("%d/%m %H:%M")


def _handoff(run: _Run, *, department: Department | None, reason: str, text: str = "") -> None:
    """To the human queue: ``pending`` in that department, with the place in line (or the
    out-of-hours notice). The conversation waits in the queue either way."""
    department = department or _default_department(run.config)
    _flush(run)
    run.conversation = conversation_services.conversation_route_to_department(
        conversation=run.conversation, department=department, actor=None, reason=reason
    )
    run.session.state = SessionState.HANDED_OFF
    name = department.name if department else ""
    if not text:
        text = str(run.config.get("message_handoff") or "") or (
            _("All right! I am passing you to our {department} team.")
            if department
            else _("All right! I am passing you to one of our agents.")
        )
    parts = [_fill(text, department=name)]
    availability = selectors.department_availability(department=department, now=run.now)
    if availability.is_open:
        position = selectors.conversation_queue_position(conversation=run.conversation)
        template = str(run.config.get("message_queue_position") or "") or _(
            "You are number {position} in the queue. An agent will answer you soon."
        )
        parts.append(_fill(template, position=position, department=name))
    else:
        template = (
            availability.message
            or str(run.config.get("message_out_of_hours") or "")
            or _(
                "We are closed right now. Your message is in our queue and an agent will answer "
                "when we open again ({next_opening})."
            )
        )
        parts.append(
            _fill(
                template,
                department=name,
                next_opening=_format_opening(availability.next_opening),
            )
        )
    _send(run, "\n\n".join(p for p in parts if p))
    run.handed_off = True
    run.outcome = f"handoff:{reason}"


def _send_menu(run: _Run, key: str, node: dict[str, Any], prefix: str = "") -> None:
    body, _type, interactive = render_menu(node_key=key, node=node, prefix=prefix)
    _send(run, body, interactive)


def _enter(run: _Run, key: str) -> None:  # noqa: PLR0912 - one branch per kind of node
    """Run nodes from ``key`` until one waits for the customer (or the flow ends)."""
    for _hop in range(MAX_HOPS):
        node = run.nodes.get(key)
        if node is None:
            logger.warning("bot flow node %r is missing; handing over", key)
            _handoff(run, department=None, reason="broken_flow")
            return
        run.session.node_key = key
        run.session.attempts = 0
        kind = node["kind"]
        if kind == NodeKind.MESSAGE:
            if node["text"]:
                _send(run, node["text"])
            if not node.get("next"):
                run.outcome = "message"
                return
            key = node["next"]
            continue
        if kind == NodeKind.MENU:
            _send_menu(run, key, node)
            run.outcome = "menu"
        elif kind == NodeKind.COLLECT:
            _send(run, node["text"] or _("Please type your answer."))
            run.outcome = "collect"
        elif kind == NodeKind.AI:
            if not ai.ai_available(config=run.config):
                _handoff(run, department=_department(node.get("department")), reason="ai_off")
                return
            prompt = node["text"] or str(run.config.get("message_ai_prompt") or "")
            _send(run, prompt or _("Sure! Type your question and I will try to help."))
            run.outcome = "ai_prompt"
        elif kind == NodeKind.HTTP:
            run.http_key = key
            run.outcome = "http_pending"
        elif kind == NodeKind.HUMAN:
            _handoff(
                run,
                department=_department(node.get("department")),
                reason="flow",
                text=node["text"],
            )
        else:  # END
            if node["text"]:
                _send(run, node["text"])
            run.session.state = SessionState.ENDED
            _flush(run)
            run.conversation = conversation_services.conversation_close(
                conversation=run.conversation, actor=None
            )
            run.outcome = "ended"
        return
    _handoff(run, department=None, reason="loop")


def _invalid(run: _Run, key: str, node: dict[str, Any]) -> None:
    run.session.attempts += 1
    if run.session.attempts >= int(run.config.get("max_invalid_attempts") or 3):
        _handoff(run, department=None, reason="invalid_input")
        return
    retry = _retry_text(node, run.config)
    if node["kind"] == NodeKind.MENU:
        _send_menu(run, key, node, prefix=retry)
    else:
        _send(run, retry)
    run.outcome = "invalid"


def _ask_ai(run: _Run, department_id: int | None) -> None:
    if run.session.ai_turns >= int(run.config.get("ai_max_turns") or 0):
        _handoff(run, department=_department(department_id), reason="ai_turns")
        return
    run.needs_ai = True
    run.ai_department_id = department_id
    run.outcome = "ai_pending"


def _looks_like_free_text(text: str) -> bool:
    return len(re.findall(r"[^\W\d_]{2,}", text)) >= 2


def _first_waiting_node(run: _Run) -> str:
    """The key of the first node of the flow that waits for the customer."""
    key = run.start
    for _hop in range(MAX_HOPS):
        node = run.nodes.get(key)
        if node is None or node["kind"] != NodeKind.MESSAGE or not node.get("next"):
            return key
        key = node["next"]
    return key


def _menu_already_shown(run: _Run, message: Message) -> bool:
    if run.session.node_key or (not run.session_new and run.session.turns.exists()):
        return False
    node = run.nodes.get(_first_waiting_node(run))
    if node is None or node["kind"] != NodeKind.MENU:
        return False
    return Message.objects.filter(
        conversation=run.conversation,
        direction=Direction.OUT,
        sender=SenderKind.BOT,
        pk__lt=message.pk,
    ).exists()


def _advance(run: _Run, message: Message) -> None:  # noqa: PLR0912
    reply_id, reply_title = _reply(message)
    text = message.body or reply_title
    if run.session.flow_version is None:
        _handoff(run, department=None, reason="no_flow")
        return
    if wants_human(text=text, config=run.config):
        _handoff(run, department=None, reason="keyword")
        return
    key = run.session.node_key
    node = run.nodes.get(key) if key else None
    if node is None and _menu_already_shown(run, message):
        # The customer answers a menu sent before this session existed (e.g. demo data).
        key = _first_waiting_node(run)
        node = run.nodes.get(key)
        run.session.node_key = key
    if node is None:  # a new conversation (or one whose node vanished): greet from the start
        _enter(run, run.start)
        return
    if node["kind"] == NodeKind.MENU:
        option = match_option(node_key=key, node=node, text=text, reply_id=reply_id)
        if option is not None:
            _enter(run, option["target"])
            run.outcome = f"option:{option['number']}:{run.outcome}"
        elif ai.ai_available(config=run.config) and _looks_like_free_text(text):
            _ask_ai(run, department_id=None)
        else:
            _invalid(run, key, node)
    elif node["kind"] == NodeKind.COLLECT:
        value = validate_value(node=node, text=text)
        if value is None:
            _invalid(run, key, node)
            return
        run.session.collected = {**run.session.collected, node["field"]: value}
        if node.get("next"):
            _enter(run, node["next"])
        else:
            _handoff(run, department=_department(node.get("department")), reason="collected")
    elif node["kind"] == NodeKind.AI:
        _ask_ai(run, department_id=node.get("department"))
    elif node["kind"] == NodeKind.HTTP:  # the service keeps the conversation: ask it again
        _enter(run, key)
    else:  # waiting after a final message: start over
        _enter(run, run.start)


def _session(conversation: Conversation) -> tuple[BotSession, bool]:
    """The conversation's bot session, and whether it is new (it has no turns yet)."""
    session = (
        BotSession.objects.select_related("flow_version").filter(conversation=conversation).first()
    )
    if session is not None and session.state == SessionState.ACTIVE:
        return session, False
    version = selectors.flow_version_for_account(
        whatsapp_account_id=conversation.whatsapp_account_id
    )
    if session is None:
        return BotSession.objects.create(conversation=conversation, flow_version=version), True
    # The conversation came back to the bot after a hand-over: start again on the latest flow.
    session.flow_version = version
    session.state = SessionState.ACTIVE
    session.node_key = ""
    session.attempts = 0
    session.ai_turns = 0
    return session, False


@transaction.atomic
def _step(*, message_id: int, now: datetime) -> _Run | None:
    message = Message.objects.filter(pk=message_id, direction=Direction.IN).first()
    if message is None:
        return None
    conversation = _lock_conversation(message.conversation_id)
    if conversation.status != ConversationStatus.BOT:
        return None
    if BotTurn.objects.filter(inbound_message=message).exists():
        return None  # already answered
    session, new = _session(conversation)
    run = _Run(
        conversation=conversation,
        session=session,
        config=selectors.bot_config_values(),
        now=now,
        session_new=new,
    )
    node_key = session.node_key
    collected_before = dict(session.collected)
    if not new and session.turns.filter(inbound_message_id__gt=message.pk).exists():
        run.outcome = "stale"  # a later message was answered already
    else:
        try:
            with transaction.atomic():
                _advance(run, message)
                _flush(run)
        except ServiceError as exc:  # e.g. the 24-hour window closed before we could answer
            logger.warning("bot could not answer message %s: %s", message.pk, exc.code)
            if session.pk:
                session.refresh_from_db()
            run = _Run(conversation=conversation, session=session, config=run.config, now=now)
            run.outcome = f"failed:{exc.code}"
    session.save()
    if session.collected != collected_before:
        bot_context_broadcast(conversation_id=conversation.pk)
    run.turn = BotTurn.objects.create(
        session=session, inbound_message=message, node_key=node_key, outcome=run.outcome
    )
    return run


def _department_by_name(name: str | None) -> Department | None:
    if not name:
        return None
    return Department.objects.filter(name__iexact=name.strip(), is_active=True).first()


@transaction.atomic
def _apply_ai(run: _Run, result: ai.AIResult) -> None:
    conversation = _lock_conversation(run.conversation.pk)
    turn = run.turn
    if turn is None:  # pragma: no cover - _step always records the turn
        return
    if conversation.status != ConversationStatus.BOT:
        turn.outcome = "ai_dropped"  # an agent took over while the model was thinking
        turn.save(update_fields=["outcome"])
        return
    run.conversation = conversation
    run.session = BotSession.objects.select_related("flow_version").get(conversation=conversation)
    if result.can_answer and result.answer is not None:
        _send(run, result.answer.answer[:4096])
        run.session.ai_turns += 1
        run.outcome = "ai_answered"
    else:
        suggested = _department_by_name(result.answer.department if result.answer else None)
        _handoff(
            run,
            department=suggested or _department(run.ai_department_id),
            reason=f"ai_{result.outcome}",
        )
    _flush(run)
    run.session.save()
    turn.outcome = run.outcome
    turn.save(update_fields=["outcome"])


def _http_body(run: _Run) -> bytes:
    """The http node's request, read outside any transaction (no row is locked meanwhile)."""
    conversation = Conversation.objects.select_related("customer", "department", "assigned_to").get(
        pk=run.conversation.pk
    )
    customer = conversation.customer
    message = run.turn.inbound_message if run.turn is not None else None
    return http_node.http_node_body(
        conversation=conversation_payload(conversation),
        customer={
            "id": customer.pk,
            "phone": customer.phone,
            "name": customer.name,
            "notes": customer.notes,
        },
        message=message_payload(message) if message is not None else None,
        collected=dict(run.session.collected),
    )


def _http_fallback(run: _Run, key: str, node: dict[str, Any], reason: str) -> None:
    logger.warning(
        "bot http node %r failed for conversation %s: %s", key, run.conversation.pk, reason
    )
    fallback = node.get("fallback")
    if fallback:
        _enter(run, fallback)
    else:  # the default fallback: the general queue
        _handoff(run, department=None, reason="http_failed")
    run.outcome = f"http_failed:{reason}"[:30]


def _http_answer(
    run: _Run, key: str, node: dict[str, Any], answer: http_node.HttpNodeAnswer
) -> None:
    if not answer.ok:
        _http_fallback(run, key, node, answer.failure)
        return
    if answer.collected:
        run.session.collected = {**run.session.collected, **answer.collected}
    if answer.reply:
        _send(run, answer.reply)
    if answer.department is not None:
        department = _department_by_name(answer.department)
        if department is None:
            _http_fallback(run, key, node, "unknown_department")
        else:
            _handoff(run, department=department, reason="http")
    elif node.get("next"):
        _enter(run, node["next"])
        run.outcome = f"http:{run.outcome}"[:30]
    else:  # no next node: the service answers the customer's next message too
        run.outcome = "http_answered"


@transaction.atomic
def _apply_http(run: _Run, key: str, answer: http_node.HttpNodeAnswer) -> None:
    """Apply the service's answer under the lock again, unless the conversation moved on while
    the service was thinking (an agent took over, a later message was answered)."""
    conversation = _lock_conversation(run.conversation.pk)
    turn = run.turn
    if turn is None:  # pragma: no cover - _step always records the turn
        return
    session = BotSession.objects.select_related("flow_version").get(conversation=conversation)
    later = session.turns.filter(inbound_message_id__gt=turn.inbound_message_id).exists()
    if (
        conversation.status != ConversationStatus.BOT
        or session.state != SessionState.ACTIVE
        or session.node_key != key
        or later
    ):
        turn.outcome = "http_dropped"
        turn.save(update_fields=["outcome"])
        return
    run.conversation = conversation
    run.session = session
    collected_before = dict(session.collected)
    node = run.nodes[key]
    try:
        with transaction.atomic():
            _http_answer(run, key, node, answer)
            _flush(run)
    except ServiceError as exc:  # e.g. the 24-hour window closed meanwhile
        logger.warning("bot could not apply the http answer of %s: %s", conversation.pk, exc.code)
        session.refresh_from_db()
        run.session = session
        run.http_key = ""
        run.outcome = f"failed:{exc.code}"
    session.save()
    if session.collected != collected_before:
        bot_context_broadcast(conversation_id=conversation.pk)
    turn.outcome = run.outcome
    turn.save(update_fields=["outcome"])


def _run_http_nodes(run: _Run) -> None:
    """Call each http node the run reached, one after the other (a service's answer may lead to
    another one), never more than ``MAX_HOPS``."""
    for _hop in range(MAX_HOPS):
        key = run.http_key
        if not key:
            return
        run.http_key = ""
        node = run.nodes.get(key) or {}
        answer = http_node.http_node_call(
            url=str(node.get("url") or ""),
            secret=str(node.get("secret") or ""),
            body=_http_body(run),
        )
        _apply_http(run, key, answer)
    if run.http_key:
        logger.warning("bot http nodes loop in conversation %s; stopping", run.conversation.pk)


def bot_handle_inbound(*, message_id: int, now: datetime | None = None) -> BotTurn | None:
    """Answer the inbound message ``message_id`` if its conversation is with the bot.

    Returns the turn recorded for it, or None when there was nothing to do (not with the bot,
    already handled, unknown message).
    """
    now = now or timezone.now()
    run = _step(message_id=message_id, now=now)
    if run is None:
        return None
    if run.needs_ai:
        result = ai.ai_answer(conversation=run.conversation, config=run.config)
        _apply_ai(run, result)
    _run_http_nodes(run)
    if run.handed_off and ai.ai_available(config=run.config):
        try:
            bot_summarize(conversation=run.conversation)
        except Exception:  # a summary is a nicety; the hand-over already happened
            logger.exception("AI summary failed for conversation %s", run.conversation.pk)
    return run.turn
