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

import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.translation import gettext as _

from common.bulk import rows_update
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
    batch: "_Batch | None" = None  # a turn of :func:`bot_handle_inbound_many`

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
    a close, the end of the turn). In a batch of turns, the conversation's replies of the
    batch's earlier turns go first, in the turn's savepoint."""
    if run.batch is not None:
        run.batch.savepoint()
        run.pending = [*run.batch.drafts.pop(run.conversation.pk, []), *run.pending]
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
    out-of-hours notice). The conversation waits in the queue either way. In a batch of turns
    the move and its notice are written with the batch's others (:meth:`_Batch.handoff`)."""
    if run.batch is not None:
        run.batch.handoff(run, department=department, reason=reason, text=text)
    else:
        department = department or _default_department(run.config)
        _flush(run)
        run.conversation = conversation_services.conversation_route_to_department(
            conversation=run.conversation, department=department, actor=None, reason=reason
        )
        availability = selectors.department_availability(department=department, now=run.now)
        position = (
            selectors.conversation_queue_position(conversation=run.conversation)
            if availability.is_open
            else 0
        )
        _send(run, _handoff_text(run, department, text, availability, position))
    run.session.state = SessionState.HANDED_OFF
    run.handed_off = True
    run.outcome = f"handoff:{reason}"


def _handoff_text(
    run: _Run,
    department: Department | None,
    text: str,
    availability: selectors.Availability,
    position: int,
) -> str:
    """The hand-over notice: the text, then the place in line (or when the queue opens)."""
    name = department.name if department else ""
    if not text:
        text = str(run.config.get("message_handoff") or "") or (
            _("All right! I am passing you to our {department} team.")
            if department
            else _("All right! I am passing you to one of our agents.")
        )
    parts = [_fill(text, department=name)]
    if availability.is_open:
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
    return "\n\n".join(p for p in parts if p)


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
    if run.batch is not None and run.session_new:
        first = run.batch.first_bot_reply.get(run.conversation.pk)
        return first is not None and first < message.pk
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
    _after_step(run)
    return run.turn


# --- Many turns at once ------------------------------------------------------------------------

# What a turn may change on its session (and a failed turn puts back).
_SESSION_FIELDS = ("flow_version", "node_key", "state", "attempts", "ai_turns", "collected")


@dataclass
class BatchOutcome:
    """What :func:`bot_handle_inbound_many` did: the turns it recorded, the messages whose turn
    failed (nothing of it was kept: the caller retries each on its own) and those it left to the
    one-by-one path (their conversation was locked by someone else)."""

    turns: list[BotTurn] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)


@dataclass
class _Batch:
    """The shared state of a batch of turns, in one transaction."""

    config: dict[str, Any]
    now: datetime
    # replies of the batch's turns not written yet, by conversation (written together at the end)
    drafts: dict[int, list[conversation_services.OutboundDraft]] = field(default_factory=dict)
    # the first bot reply of each conversation whose session is new (the menu shown before)
    first_bot_reply: dict[int, int] = field(default_factory=dict)
    versions: dict[int | None, Any] = field(default_factory=dict)
    # hand-overs of the batch's turns, written after their replies: (run, department, reason,
    # text, availability), and the conversations they concern (their later messages wait)
    handoffs: list[tuple[_Run, Department | None, str, str, selectors.Availability]] = field(
        default_factory=list
    )
    handed_over: set[int] = field(default_factory=set)
    _departments: dict[int | None, Department | None] = field(default_factory=dict)
    _availability: dict[int | None, selectors.Availability] = field(default_factory=dict)
    _savepoint: str | None = None

    def handoff(self, run: _Run, *, department: Department | None, reason: str, text: str) -> None:
        """A turn's hand-over, checked now (the turn fails on its own) and written with the
        batch's others once every reply before it is (:meth:`_Turns.write`)."""
        if department is None:
            if None not in self._departments:
                self._departments[None] = _default_department(run.config)
            department = self._departments[None]
        key = department.pk if department is not None else None
        if key not in self._availability:
            self._availability[key] = selectors.department_availability(
                department=department, now=self.now
            )
        availability = self._availability[key]
        # what WhatsApp would refuse (the 24-hour window) fails the turn, as one by one
        conversation_services.message_outbound_check(
            conversation=run.conversation,
            draft=conversation_services.OutboundDraft(
                body=_handoff_text(run, department, text, availability, 1)
            ),
        )
        self.handoffs.append((run, department, reason, text, availability))
        self.handed_over.add(run.conversation.pk)

    def savepoint(self) -> None:
        """Before the turn's first write: what it wrote goes if the turn fails."""
        if self._savepoint is None:
            self._savepoint = transaction.savepoint()

    def turn_done(self, *, ok: bool) -> None:
        sid, self._savepoint = self._savepoint, None
        if sid is None:
            return
        if ok:
            transaction.savepoint_commit(sid)
        else:
            transaction.savepoint_rollback(sid)

    def version_for(self, account_id: int | None) -> Any:
        if account_id not in self.versions:
            self.versions[account_id] = selectors.flow_version_for_account(
                whatsapp_account_id=account_id
            )
        return self.versions[account_id]


def _batch_sessions(
    batch: _Batch, conversations: dict[int, Conversation]
) -> tuple[dict[int, BotSession], set[int], dict[int, int]]:
    """Every conversation's session (the missing ones created in one INSERT), which of them are
    new, and the latest inbound message each session answered."""
    sessions = {
        s.conversation_id: s
        for s in BotSession.objects.select_related("flow_version").filter(
            conversation_id__in=list(conversations)
        )
    }
    latest = dict(
        BotTurn.objects.filter(session__in=list(sessions.values()))
        .values("session_id")
        .annotate(latest=Max("inbound_message_id"))
        .values_list("session_id", "latest")
    )
    missing = [pk for pk in conversations if pk not in sessions]
    created = BotSession.objects.bulk_create(
        BotSession(
            conversation=conversations[pk],
            flow_version=batch.version_for(conversations[pk].whatsapp_account_id),
        )
        for pk in missing
    )
    if created:
        batch.first_bot_reply = dict(
            Message.objects.filter(
                conversation_id__in=missing, direction=Direction.OUT, sender=SenderKind.BOT
            )
            .values("conversation_id")
            .annotate(first=Min("pk"))
            .values_list("conversation_id", "first")
        )
    for session in created:
        sessions[session.conversation_id] = session
    return sessions, {s.conversation_id for s in created}, latest


def _session_reset(batch: _Batch, session: BotSession, conversation: Conversation) -> None:
    """A conversation back with the bot after a hand-over starts again on the latest flow."""
    if session.state == SessionState.ACTIVE:
        return
    session.flow_version = batch.version_for(conversation.whatsapp_account_id)
    session.state = SessionState.ACTIVE
    session.node_key = ""
    session.attempts = 0
    session.ai_turns = 0


def _batch_turn(
    batch: _Batch, message: Message, conversation: Conversation, session: BotSession, new: bool
) -> _Run:
    """One turn of the batch (the conversation locked, the session loaded); what it changed
    stays in memory for the batch's writes. A ServiceError is the turn's outcome, as in
    :func:`_step`; anything else propagates (the caller puts the turn back)."""
    run = _Run(
        conversation=conversation,
        session=session,
        config=batch.config,
        now=batch.now,
        session_new=new,
        batch=batch,
    )
    try:
        _advance(run, message)
    except ServiceError as exc:
        logger.warning("bot could not answer message %s: %s", message.pk, exc.code)
        raise _TurnRefused(exc.code) from exc
    if run.pending:
        batch.drafts.setdefault(run.conversation.pk, []).extend(run.pending)
        run.pending = []
    return run


class _TurnRefused(Exception):  # noqa: N818 - the turn's outcome, not an error
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _batch_locked(message_ids: Sequence[int]) -> tuple[list[Message], dict[int, Conversation]]:
    """The inbound messages, in order, and their conversations locked in one query. A
    conversation someone else holds is skipped (never waited for while holding the others)."""
    messages = list(
        Message.objects.filter(pk__in=list(message_ids), direction=Direction.IN).order_by("pk")
    )
    conversations = {
        c.pk: c
        for c in Conversation.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("customer", "department", "assigned_to", "whatsapp_account")
        .filter(pk__in={m.conversation_id for m in messages})
        .order_by("pk")
    }
    return messages, conversations


@dataclass
class _Turns:
    """A batch's conversations (locked), sessions and what its turns did so far."""

    batch: _Batch
    conversations: dict[int, Conversation]
    sessions: dict[int, BotSession]
    new: set[int]  # conversations whose session this batch created (no turn yet)
    latest: dict[int, int]  # session -> the latest inbound message it answered
    outcome: BatchOutcome
    runs: list[_Run] = field(default_factory=list)

    def take(self, message: Message) -> None:
        """The turn of ``message``: kept in memory for the batch's writes, or put back."""
        batch, conversation = self.batch, self.conversations[message.conversation_id]
        if conversation.status != ConversationStatus.BOT or conversation.pk in batch.handed_over:
            return  # handed over or closed by an earlier turn of the batch
        session = self.sessions[conversation.pk]
        before = {name: getattr(session, name) for name in _SESSION_FIELDS}
        drafts_before = list(batch.drafts.get(conversation.pk, []))
        _session_reset(batch, session, conversation)
        node_key = session.node_key
        if self.latest.get(session.pk, 0) > message.pk:
            run = _Run(
                conversation=conversation, session=session, config=batch.config, now=batch.now
            )
            run.outcome = "stale"  # a later message was answered already
        else:
            try:
                run = _batch_turn(
                    batch, message, conversation, session, conversation.pk in self.new
                )
            except Exception as exc:
                batch.turn_done(ok=False)
                for name, value in before.items():
                    setattr(session, name, value)
                batch.drafts[conversation.pk] = drafts_before
                batch.handoffs = [
                    h for h in batch.handoffs if h[0].conversation.pk != conversation.pk
                ]
                batch.handed_over.discard(conversation.pk)
                if not isinstance(exc, _TurnRefused):
                    logger.exception("bot turn for message %s failed; retried alone", message.pk)
                    self.outcome.failed.append(message.pk)
                    return
                run = _Run(
                    conversation=conversation, session=session, config=batch.config, now=batch.now
                )
                run.outcome = f"failed:{exc.code}"
            batch.turn_done(ok=True)
        self.conversations[conversation.pk] = run.conversation
        self.new.discard(conversation.pk)
        self.latest[session.pk] = max(self.latest.get(session.pk, 0), message.pk)
        if session.collected != before["collected"]:
            bot_context_broadcast(conversation_id=conversation.pk)
        run.turn = BotTurn(
            session=session, inbound_message=message, node_key=node_key, outcome=run.outcome
        )
        self.runs.append(run)

    def write(self) -> None:
        """The batch's writes: replies, hand-overs and their notices, sessions and turns, a
        statement or a few each (in the order one by one writes them)."""
        written = conversation_services.messages_create_bot_many(
            items=[(self.conversations[pk], drafts) for pk, drafts in self.batch.drafts.items()]
        )
        written += self._handoffs_write()
        by_conversation: dict[int, list[Message]] = {}
        for reply in written:
            by_conversation.setdefault(reply.conversation_id, []).append(reply)
        for run in self.runs:
            run.sent.extend(by_conversation.pop(run.conversation.pk, []))
        _sessions_write({run.session.pk: run.session for run in self.runs}.values())
        self.outcome.turns = BotTurn.objects.bulk_create(
            [run.turn for run in self.runs if run.turn is not None]
        )
        for run in self.runs:
            run.batch = None  # what follows the turn (AI, http nodes) locks on its own again

    def _handoffs_write(self) -> list[Message]:
        """The hand-overs (one service call for them all), then their notices with each
        customer's place in line."""
        handoffs = self.batch.handoffs
        if not handoffs:
            return []
        routed = conversation_services.conversations_route_to_department_many(
            items=[
                (self.conversations[run.conversation.pk], department, reason)
                for run, department, reason, _text, _availability in handoffs
            ]
        )
        notices = []
        for (run, department, _reason, text, availability), conversation in zip(
            handoffs, routed, strict=True
        ):
            run.conversation = self.conversations[conversation.pk] = conversation
            position = (
                selectors.conversation_queue_position(conversation=conversation)
                if availability.is_open
                else 0
            )
            body = _handoff_text(run, department, text, availability, position)
            notices.append((conversation, [conversation_services.OutboundDraft(body=body[:4096])]))
        return conversation_services.messages_create_bot_many(items=notices)


def _sessions_write(sessions: Iterable[BotSession]) -> None:
    """Save what the batch's turns changed on their sessions, in one statement."""
    rows = list(sessions)
    if not rows:
        return
    now = timezone.now()
    for session in rows:
        session.updated_at = now
    if connection.vendor != "postgresql":
        BotSession.objects.bulk_update(rows, [*_SESSION_FIELDS, "updated_at"])
        return
    # bulk_update's CASE per field and row cost more to compile than the turns themselves.
    rows_update(
        BotSession,
        ids=[s.pk for s in rows],
        columns={
            "flow_version_id": ("bigint", [s.flow_version_id for s in rows]),
            "node_key": ("text", [s.node_key for s in rows]),
            "state": ("text", [s.state for s in rows]),
            "attempts": ("integer", [s.attempts for s in rows]),
            "ai_turns": ("integer", [s.ai_turns for s in rows]),
            "collected": ("text", [json.dumps(s.collected, cls=DjangoJSONEncoder) for s in rows]),
        },
        assignments="flow_version_id = v.flow_version_id, node_key = v.node_key, "
        "state = v.state, attempts = v.attempts, ai_turns = v.ai_turns, "
        "collected = v.collected::jsonb, updated_at = %s",
        params=[now],
    )


@transaction.atomic
def _steps(*, message_ids: Sequence[int], now: datetime) -> tuple[BatchOutcome, list[_Run]]:
    outcome = BatchOutcome()
    messages, conversations = _batch_locked(message_ids)
    outcome.deferred = [m.pk for m in messages if m.conversation_id not in conversations]
    answered = set(
        BotTurn.objects.filter(inbound_message_id__in=[m.pk for m in messages]).values_list(
            "inbound_message_id", flat=True
        )
    )
    messages = [
        m
        for m in messages
        if m.conversation_id in conversations
        and m.pk not in answered
        and conversations[m.conversation_id].status == ConversationStatus.BOT
    ]
    if not messages:
        return outcome, []
    batch = _Batch(config=selectors.bot_config_values(), now=now)
    with_bot = {m.conversation_id: conversations[m.conversation_id] for m in messages}
    sessions, new, latest = _batch_sessions(batch, with_bot)
    turns = _Turns(
        batch=batch,
        conversations=with_bot,
        sessions=sessions,
        new=new,
        latest=latest,
        outcome=outcome,
    )
    for message in messages:
        turns.take(message)
    turns.write()
    return outcome, turns.runs


def _after_step(run: _Run) -> None:
    """What a turn does once its lock is released: the AI's answer, http nodes, the summary."""
    if run.needs_ai:
        result = ai.ai_answer(conversation=run.conversation, config=run.config)
        _apply_ai(run, result)
    _run_http_nodes(run)
    if run.handed_off and ai.ai_available(config=run.config):
        try:
            bot_summarize(conversation=run.conversation)
        except Exception:  # a summary is a nicety; the hand-over already happened
            logger.exception("AI summary failed for conversation %s", run.conversation.pk)


def bot_handle_inbound_many(
    *, message_ids: Sequence[int], now: datetime | None = None
) -> BatchOutcome:
    """:func:`bot_handle_inbound` for many inbound messages (an intake batch's), in one
    transaction: their conversations locked in one query, the sessions and turns read and
    written in one query each, every reply in one INSERT and their events in one batch.

    Each message is still its own turn, in order within its conversation: a turn that fails
    leaves nothing behind and is named in ``failed`` (the others are kept); a conversation
    another transaction holds is named in ``deferred``, for the one-by-one path.
    """
    now = now or timezone.now()
    outcome, runs = _steps(message_ids=message_ids, now=now)
    for run in runs:
        if run.needs_ai or run.http_key or run.handed_off:
            try:
                _after_step(run)
            except Exception:  # the turn is recorded; its follow-up is not retried
                logger.exception("bot follow-up for conversation %s failed", run.conversation.pk)
    return outcome
