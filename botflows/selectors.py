"""Reads for the bot: settings with their defaults, flows, queue places and business hours."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db.models import Case, Prefetch, Q, QuerySet, Subquery, When
from django.utils.translation import gettext_lazy as _

from conversations.models import Conversation, ConversationStatus, Message
from conversations.services.csat import CsatTexts
from departments.models import BusinessSchedule, Department
from whatsapp.models import WhatsAppAccount

from .models import AIAnswerLog, BotConfiguration, BotSession, Flow, FlowNode, FlowVersion

# Every setting the bot reads, with its default and what it means. ``None`` for a message means
# "the translated default text". Admins override any of them (admin or ``PUT /bot/config/:key``).
CONFIG_DEFAULTS: dict[str, tuple[Any, Any]] = {
    "handoff_keywords": (
        ["atendente", "humano", "falar com alguém", "human", "agent"],
        _("Words that hand the customer to a human at any point (accents and case ignored)."),
    ),
    "max_invalid_attempts": (
        3,
        _("Invalid answers in a row before the customer goes to the human queue."),
    ),
    "handoff_department": (
        None,
        _("Department name for hand-overs that name none (empty: the general queue)."),
    ),
    "ai_enabled": (True, _("Answer free text with the AI model (needs OPENAI_API_KEY).")),
    "ai_system_prompt": (
        "You are the friendly customer-support assistant of our company on WhatsApp. "
        "Answer briefly in the customer's language, only from the knowledge base below. "
        "When you are not sure, or the customer needs a person, set intent to handoff.",
        _("The AI's instructions."),
    ),
    "ai_min_confidence": (0.6, _("Below this confidence the AI hands over instead of answering.")),
    "ai_max_turns": (5, _("AI answers per conversation before a human takes over.")),
    "ai_timeout_seconds": (20, _("Seconds to wait for the AI before handing over.")),
    "message_retry": (None, _("Text sent after an invalid answer.")),
    "message_handoff": (None, _("Text sent when the customer goes to a human.")),
    "message_queue_position": (
        None,
        _("Text with the place in the queue; {position} and {department} are replaced."),
    ),
    "message_out_of_hours": (
        None,
        _("Text sent out of business hours; {department} and {next_opening} are replaced."),
    ),
    "message_ai_prompt": (None, _("Text that invites the customer to type a question.")),
    "csat_question": (None, _("Satisfaction survey: the question sent after closing.")),
    "csat_button": (None, _("Satisfaction survey: the label of the list's button.")),
    "csat_options": (
        None,
        _("Satisfaction survey: the five titles of the scores 1 to 5, as a list of texts."),
    ),
    "csat_comment_prompt": (None, _("Satisfaction survey: the invitation to leave a comment.")),
    "csat_thanks": (None, _("Satisfaction survey: the thanks after the comment.")),
}

NUMERIC_CONFIG_LIMITS: dict[str, tuple[float, float]] = {
    "max_invalid_attempts": (1, 20),
    "ai_min_confidence": (0, 1),
    "ai_max_turns": (0, 100),
    "ai_timeout_seconds": (1, 300),
}


def bot_config_values() -> dict[str, Any]:
    """Every setting: the defaults overlaid with what admins stored (one query)."""
    values = {key: default for key, (default, _help) in CONFIG_DEFAULTS.items()}
    values.update(BotConfiguration.objects.values_list("key", "value"))
    return values


def bot_config_list() -> list[dict[str, Any]]:
    """Rows for ``GET /bot/config``: stored settings and the defaults of the others, by key."""
    stored = {row.key: row for row in BotConfiguration.objects.all()}
    rows: list[dict[str, Any]] = []
    for key in sorted(set(CONFIG_DEFAULTS) | set(stored)):
        row = stored.get(key)
        default, help_text = CONFIG_DEFAULTS.get(key, (None, ""))
        rows.append(
            {
                "key": key,
                "value": row.value if row is not None else default,
                "default": default,
                "description": (row.description if row is not None else "") or str(help_text),
                "is_default": row is None,
                "updated_at": row.updated_at if row is not None else None,
            }
        )
    return rows


def department_names_active() -> list[str]:
    """The names a hand-over may name (``handoff_department`` stores the name)."""
    return list(
        Department.objects.filter(is_active=True).order_by("name").values_list("name", flat=True)
    )


# --- Flows -------------------------------------------------------------------------------------


def _flows_for_account(whatsapp_account_id: int | None) -> QuerySet[Flow]:
    """The active flows that may serve that number, its own first, then the default one."""
    flows = Flow.objects.filter(is_active=True)
    if whatsapp_account_id is None:
        return flows.filter(is_default=True)
    return flows.filter(Q(whatsapp_account_id=whatsapp_account_id) | Q(is_default=True)).order_by(
        Case(When(whatsapp_account_id=whatsapp_account_id, then=0), default=1),
        "-is_default",
        "name",
    )


def flow_get_for_account(*, whatsapp_account_id: int | None) -> Flow | None:
    """The active flow of that number, else the default flow."""
    return _flows_for_account(whatsapp_account_id).first()


def flow_version_get_latest(*, flow: Flow) -> FlowVersion | None:
    return flow.versions.order_by("-number").first()


def flow_version_for_account(*, whatsapp_account_id: int | None) -> FlowVersion | None:
    """The latest version of :func:`flow_get_for_account`'s flow, in one query (the bot's
    turn asks it for every new session)."""
    flow = _flows_for_account(whatsapp_account_id).values("pk")[:1]
    return FlowVersion.objects.filter(flow=Subquery(flow)).order_by("-number").first()


def flow_list() -> QuerySet[Flow]:
    """Flows with their nodes, options and published versions (a fixed number of queries)."""
    return (
        Flow.objects.select_related("whatsapp_account", "start_node")
        .prefetch_related(
            Prefetch(
                "nodes",
                queryset=FlowNode.objects.select_related("next_node", "fallback_node", "department")
                .prefetch_related("options__target_node", "options__department")
                .order_by("position", "id"),
            ),
            Prefetch(
                "versions", queryset=FlowVersion.objects.defer("definition").order_by("-number")
            ),
        )
        .order_by("-is_default", "name", "id")
    )


def flow_get_for_editor(*, pk: int) -> Flow | None:
    """One flow with everything the console's editor shows (the same fixed queries as the list)."""
    return flow_list().filter(pk=pk).first()


def flow_node_choices(*, flow: Flow) -> QuerySet[FlowNode]:
    """The nodes an editor form may point at: those of the same flow."""
    return FlowNode.objects.filter(flow=flow).order_by("position", "id")


def whatsapp_account_choices(*, flow: Flow | None = None) -> QuerySet[WhatsAppAccount]:
    """The numbers a flow may answer: those without a flow yet, and the flow's own."""
    free = Q(bot_flow__isnull=True)
    if flow is not None and flow.pk:
        free |= Q(bot_flow=flow)
    return WhatsAppAccount.objects.filter(free).order_by("name", "pk")


def department_choices() -> QuerySet[Department]:
    return Department.objects.filter(is_active=True).order_by("name")


# --- Queue -------------------------------------------------------------------------------------


def conversation_queue_position(*, conversation: Conversation) -> int:
    """1 for the first in line: waiting conversations of the same queue that came earlier, + 1."""
    waiting = Conversation.objects.filter(
        status=ConversationStatus.PENDING, assigned_to__isnull=True
    ).exclude(pk=conversation.pk)
    if conversation.department_id is None:
        waiting = waiting.filter(department__isnull=True)
    else:
        waiting = waiting.filter(department_id=conversation.department_id)
    return waiting.filter(created_at__lte=conversation.created_at).count() + 1


# --- Business hours ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Availability:
    is_open: bool
    next_opening: datetime | None  # aware, in the schedule's time zone
    message: str  # the schedule's own out-of-hours text, or ""


def _schedule(department: Department) -> BusinessSchedule | None:
    return (
        BusinessSchedule.objects.filter(department=department)
        .prefetch_related("hours", "holidays")
        .first()
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)


def _open_at(schedule: BusinessSchedule, local: datetime, holidays: set[date]) -> bool:
    intervals = list(schedule.hours.all())
    if local.date() in holidays:
        return False
    if not intervals:
        return True  # a schedule without intervals only closes on holidays
    now_time = local.time()
    today, yesterday = local.weekday(), (local.weekday() - 1) % 7
    for interval in intervals:
        if interval.opens_at < interval.closes_at:
            if interval.weekday == today and interval.opens_at <= now_time < interval.closes_at:
                return True
        else:  # runs past midnight (or all day when both are equal)
            if interval.weekday == today and now_time >= interval.opens_at:
                return True
            if interval.weekday == yesterday and now_time < interval.closes_at:
                return True
    return False


def department_availability(*, department: Department | None, now: datetime) -> Availability:
    """Whether the department's queue is staffed at ``now`` (aware) and when it opens next."""
    schedule = _schedule(department) if department is not None else None
    if schedule is None:
        return Availability(is_open=True, next_opening=None, message="")
    zone = _zone(schedule.time_zone)
    local = now.astimezone(zone)
    holidays = {holiday.date for holiday in schedule.holidays.all()}
    if _open_at(schedule, local, holidays):
        return Availability(is_open=True, next_opening=None, message="")
    next_opening = None
    for offset in range(15):
        day = (local + timedelta(days=offset)).date()
        if day in holidays:
            continue
        starts = sorted(
            datetime.combine(day, interval.opens_at, tzinfo=zone)
            for interval in schedule.hours.all()
            if interval.weekday == day.weekday()
        )
        later = [start for start in starts if start > local]
        if later:
            next_opening = later[0]
            break
    return Availability(
        is_open=False, next_opening=next_opening, message=schedule.out_of_hours_message
    )


# --- What the agent sees after a hand-over ----------------------------------------------------


def bot_session_get(*, conversation: Conversation) -> BotSession | None:
    return BotSession.objects.filter(conversation=conversation).first()


def bot_transcript(*, conversation: Conversation, limit: int = 20) -> list[Message]:
    """The conversation's latest messages, oldest first (for the AI and for summaries)."""
    latest = list(conversation.messages.order_by("-created_at", "-id")[:limit])
    return list(reversed(latest))


def ai_answer_list(*, conversation: Conversation) -> QuerySet[AIAnswerLog]:
    return AIAnswerLog.objects.filter(conversation=conversation).order_by("created_at", "id")


def csat_texts() -> CsatTexts:
    """The satisfaction survey's texts: the admins' bot settings, else the translated defaults."""
    config = bot_config_values()
    options = config.get("csat_options")
    if not (isinstance(options, list) and len(options) == 5 and all(options)):
        options = [_("Very bad"), _("Bad"), _("Fair"), _("Good"), _("Excellent")]
    return CsatTexts(
        question=str(config.get("csat_question") or _("How would you rate our service?")),
        button=str(config.get("csat_button") or _("Rate")),
        options=tuple(str(o) for o in options),  # type: ignore[arg-type]
        comment_prompt=str(
            config.get("csat_comment_prompt")
            or _("Thank you! If you like, write a comment about the service (optional).")
        ),
        thanks=str(config.get("csat_thanks") or _("Thank you for your feedback!")),
    )
