"""What the reports read: each conversation cut into segments (with the bot, waiting in a queue,
with an agent) and one roll-up row per conversation, both kept up to date by
:class:`reports.handlers.SegmentRecorder` from the desk's domain events, so that the stats and
the CSV export are a few aggregate queries that never scan messages (see docs/reports.md).

Every duration is stored twice when it becomes known: wall-clock seconds and ``business_*``
seconds (only the department's open hours, :mod:`reports.business_hours`).
"""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from common.models import TimeStampedModel
from conversations.models import ConversationStatus


class SegmentKind(models.TextChoices):
    BOT = "bot", _("With the bot")
    QUEUE = "queue", _("Waiting in a queue")
    AGENT = "agent", _("With an agent")


class SegmentEnd(models.TextChoices):
    """What ended a segment."""

    ASSIGNED = "assigned", _("Assigned")
    TRANSFERRED = "transferred", _("Transferred")
    QUEUED = "queued", _("Sent to a queue")
    CLOSED = "closed", _("Closed")


class Segment(TimeStampedModel):
    """One stretch of a conversation in the same hands. ``ended_at`` null: the current one."""

    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.CASCADE,
        related_name="report_segments",
        verbose_name=_("conversation"),
    )
    kind = models.CharField(_("kind"), max_length=10, choices=SegmentKind.choices)
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    ended_by = models.CharField(
        _("ended by"), max_length=12, choices=SegmentEnd.choices, blank=True
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("agent"),
    )
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("department"),
    )
    # The agent's first segment in the conversation: counting them counts the conversations an
    # agent handled without a COUNT(DISTINCT …) (its segments sorted) in the stats.
    agent_first = models.BooleanField(_("the agent's first in the conversation"), default=False)
    first_reply_at = models.DateTimeField(_("first reply"), null=True, blank=True)
    messages_in = models.PositiveIntegerField(_("messages in"), default=0)
    messages_out = models.PositiveIntegerField(_("messages out"), default=0)
    # Known once the segment has ended (first reply: once it happened).
    seconds = models.FloatField(_("seconds"), null=True, blank=True)
    business_seconds = models.FloatField(_("seconds in business hours"), null=True, blank=True)
    first_reply_seconds = models.FloatField(_("first reply seconds"), null=True, blank=True)
    business_first_reply_seconds = models.FloatField(
        _("first reply seconds in business hours"), null=True, blank=True
    )

    class Meta:
        ordering = ["conversation", "started_at", "id"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(ended_at__isnull=True),
                name="report_segment_one_open_per_conversation",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["conversation", "started_at"], name="report_segment_conv_idx"),
            models.Index(fields=["agent", "kind", "started_at"], name="report_segment_agent_idx"),
            models.Index(
                fields=["department", "kind", "started_at"], name="report_segment_dept_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id} {self.kind} {self.started_at:%Y-%m-%d %H:%M}"


class ConversationMetrics(TimeStampedModel):
    """The figures of one conversation (contract §9), summed from its segments.

    A figure is null until it is known: ``queue_wait_seconds`` once a wait in a queue ended or
    an agent had it (0 when taken straight from the bot), ``handling_seconds`` once an agent
    segment ended, ``resolution_seconds`` while closed. CSAT (``csat_score``/``csat_comment``)
    is written by the CSAT change; the stats and the CSV already read it. ``status`` is the
    conversation's (kept with it by the same changes), so the stats never join the conversations.
    """

    conversation = models.OneToOneField(
        "conversations.Conversation",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="report_metrics",
        verbose_name=_("conversation"),
    )
    opened_at = models.DateTimeField(_("conversation created at"), db_index=True)
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=ConversationStatus.choices,
        default=ConversationStatus.BOT,
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("department"),
    )
    agents = models.JSONField(_("agents"), default=list, blank=True)  # user ids, in order
    last_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("last agent"),
    )
    first_response_at = models.DateTimeField(_("first response"), null=True, blank=True)
    bot_seconds = models.FloatField(null=True, blank=True)
    queue_wait_seconds = models.FloatField(null=True, blank=True)
    first_response_seconds = models.FloatField(null=True, blank=True)
    handling_seconds = models.FloatField(null=True, blank=True)
    resolution_seconds = models.FloatField(null=True, blank=True)
    business_bot_seconds = models.FloatField(null=True, blank=True)
    business_queue_wait_seconds = models.FloatField(null=True, blank=True)
    business_first_response_seconds = models.FloatField(null=True, blank=True)
    business_handling_seconds = models.FloatField(null=True, blank=True)
    business_resolution_seconds = models.FloatField(null=True, blank=True)
    messages_in = models.PositiveIntegerField(_("messages in"), default=0)
    messages_out = models.PositiveIntegerField(_("messages out"), default=0)
    transfers = models.PositiveIntegerField(_("transfers"), default=0)
    csat_score = models.PositiveSmallIntegerField(_("CSAT score"), null=True, blank=True)
    csat_comment = models.TextField(_("CSAT comment"), blank=True)

    class Meta:
        ordering = ["opened_at", "conversation"]
        verbose_name = _("conversation metrics")
        verbose_name_plural = _("conversation metrics")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(csat_score__isnull=True) | Q(csat_score__gte=1, csat_score__lte=5),
                name="report_metrics_csat_1_to_5",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["department", "opened_at"], name="report_metrics_dept_idx"),
            models.Index(fields=["last_agent", "opened_at"], name="report_metrics_agent_idx"),
            # The agents' CSAT in the stats: an index-only scan of the answered ones (key columns,
            # not INCLUDE: SQLite would warn, and `check --fail-level WARNING` runs in the tests).
            models.Index(
                fields=["opened_at", "last_agent", "csat_score"],
                condition=Q(csat_score__isnull=False),
                name="report_metrics_csat_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id} metrics"


class GoalMetric(models.TextChoices):
    FIRST_RESPONSE = "first_response_seconds", _("First response (average)")
    HANDLING = "handling_seconds", _("Handling (average)")
    CSAT = "csat_average", _("CSAT (average)")
    CONVERSATIONS_PER_DAY = "conversations_per_day", _("Conversations per day")


# Times: lower is better (the target is a ceiling). CSAT and volume: higher is better (a floor).
LOWER_IS_BETTER = frozenset({GoalMetric.FIRST_RESPONSE, GoalMetric.HANDLING})
# A duration goal's target is seconds; at most thirty days.
MAX_TARGET_SECONDS = 30 * 24 * 3600


class Goal(TimeStampedModel):
    """A target for one agent or one department (exactly one: a named constraint), on one of the
    reports' figures; the reports page shows its progress over the page's range."""

    metric = models.CharField(_("metric"), max_length=32, choices=GoalMetric.choices)
    target = models.FloatField(
        _("target"),
        help_text=_(
            "Seconds for first response and handling (at most), 1 to 5 for CSAT (at least), "
            "conversations for conversations per day (at least)."
        ),
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="report_goals",
        verbose_name=_("agent"),
    )
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="report_goals",
        verbose_name=_("department"),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["metric", "department__name", "agent__name", "id"]
        verbose_name = _("goal")
        verbose_name_plural = _("goals")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=(
                    Q(agent__isnull=False, department__isnull=True)
                    | Q(agent__isnull=True, department__isnull=False)
                ),
                name="report_goal_agent_xor_department",
                violation_error_message=_("Choose an agent or a department, not both."),
            ),
            models.CheckConstraint(
                condition=(
                    Q(
                        metric__in=[GoalMetric.FIRST_RESPONSE, GoalMetric.HANDLING],
                        target__gt=0,
                        target__lte=MAX_TARGET_SECONDS,
                    )
                    | Q(metric=GoalMetric.CSAT, target__gte=1, target__lte=5)
                    | Q(metric=GoalMetric.CONVERSATIONS_PER_DAY, target__gt=0)
                ),
                name="report_goal_target_in_range",
                violation_error_message=_(
                    "The target is out of range: more than 0 seconds (at most 30 days) for "
                    "times, 1 to 5 for CSAT, more than 0 conversations per day."
                ),
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["is_active", "metric"], name="report_goal_active_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_metric_display()} → {self.target:g}"

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


# --- Daily roll-ups ----------------------------------------------------------------------------
# What the stats read for whole days (docs/reports.md, "Daily roll-ups"): the sums and counts of
# the conversations created on one local day (``TIME_ZONE``), per department and status, and of
# each agent's segments in them. Kept by the live handler in the emitting transaction and by the
# rebuild (:mod:`reports.rollups`); PostgreSQL only (on SQLite the stats read the rows above).
# ``department`` and ``agent`` are plain ids, not foreign keys: 0 is "no department", and a row
# is never moved by a deletion elsewhere (``reports_rebuild`` puts the figures right after one).


class DailyRollup(TimeStampedModel):
    """The figures of the conversations created on ``day`` in ``department`` with ``status``."""

    day = models.DateField(_("day"))
    department = models.PositiveBigIntegerField(_("department id (0: none)"))
    status = models.CharField(_("status"), max_length=10, choices=ConversationStatus.choices)
    total = models.PositiveIntegerField(db_default=0)
    bot_seconds_sum = models.FloatField(null=True)
    bot_seconds_n = models.PositiveIntegerField(db_default=0)
    queue_wait_seconds_sum = models.FloatField(null=True)
    queue_wait_seconds_n = models.PositiveIntegerField(db_default=0)
    first_response_seconds_sum = models.FloatField(null=True)
    first_response_seconds_n = models.PositiveIntegerField(db_default=0)
    handling_seconds_sum = models.FloatField(null=True)
    handling_seconds_n = models.PositiveIntegerField(db_default=0)
    resolution_seconds_sum = models.FloatField(null=True)
    resolution_seconds_n = models.PositiveIntegerField(db_default=0)
    business_bot_seconds_sum = models.FloatField(null=True)
    business_bot_seconds_n = models.PositiveIntegerField(db_default=0)
    business_queue_wait_seconds_sum = models.FloatField(null=True)
    business_queue_wait_seconds_n = models.PositiveIntegerField(db_default=0)
    business_first_response_seconds_sum = models.FloatField(null=True)
    business_first_response_seconds_n = models.PositiveIntegerField(db_default=0)
    business_handling_seconds_sum = models.FloatField(null=True)
    business_handling_seconds_n = models.PositiveIntegerField(db_default=0)
    business_resolution_seconds_sum = models.FloatField(null=True)
    business_resolution_seconds_n = models.PositiveIntegerField(db_default=0)
    messages = models.PositiveIntegerField(db_default=0)  # in + out
    transfers = models.PositiveIntegerField(db_default=0)
    csat_sum = models.PositiveIntegerField(null=True)
    csat_responses = models.PositiveIntegerField(db_default=0)
    csat_1 = models.PositiveIntegerField(db_default=0)
    csat_2 = models.PositiveIntegerField(db_default=0)
    csat_3 = models.PositiveIntegerField(db_default=0)
    csat_4 = models.PositiveIntegerField(db_default=0)
    csat_5 = models.PositiveIntegerField(db_default=0)

    class Meta:
        ordering = ["day", "department", "status"]
        verbose_name = _("daily roll-up")
        verbose_name_plural = _("daily roll-ups")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["day", "department", "status"], name="report_daily_one_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} department {self.department} {self.status}"


class DailyAgentRollup(TimeStampedModel):
    """One agent's segments in the conversations created on ``day`` in ``department`` (the
    conversation's) with ``status``, and the CSAT of those whose last agent it was."""

    day = models.DateField(_("day"))
    agent = models.PositiveBigIntegerField(_("agent id"))
    department = models.PositiveBigIntegerField(_("department id (0: none)"))
    status = models.CharField(_("status"), max_length=10, choices=ConversationStatus.choices)
    conversations = models.PositiveIntegerField(db_default=0)  # its first segments in them
    segments = models.PositiveIntegerField(db_default=0)
    first_reply_seconds_sum = models.FloatField(null=True)
    first_reply_seconds_n = models.PositiveIntegerField(db_default=0)
    business_first_reply_seconds_sum = models.FloatField(null=True)
    business_first_reply_seconds_n = models.PositiveIntegerField(db_default=0)
    seconds_sum = models.FloatField(null=True)
    seconds_n = models.PositiveIntegerField(db_default=0)
    business_seconds_sum = models.FloatField(null=True)
    business_seconds_n = models.PositiveIntegerField(db_default=0)
    messages_in = models.PositiveIntegerField(db_default=0)
    messages_out = models.PositiveIntegerField(db_default=0)
    transfers = models.PositiveIntegerField(db_default=0)
    csat_sum = models.PositiveIntegerField(null=True)
    csat_responses = models.PositiveIntegerField(db_default=0)
    csat_1 = models.PositiveIntegerField(db_default=0)
    csat_2 = models.PositiveIntegerField(db_default=0)
    csat_3 = models.PositiveIntegerField(db_default=0)
    csat_4 = models.PositiveIntegerField(db_default=0)
    csat_5 = models.PositiveIntegerField(db_default=0)

    class Meta:
        ordering = ["day", "agent", "department", "status"]
        verbose_name = _("daily agent roll-up")
        verbose_name_plural = _("daily agent roll-ups")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["day", "agent", "department", "status"],
                name="report_daily_agent_one_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} agent {self.agent} department {self.department} {self.status}"
