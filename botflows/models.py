from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from common.models import TimeStampedModel


class BotConfiguration(TimeStampedModel):
    """Key-value settings of the bot (greeting, menu, hand-off words, AI switches...)."""

    key = models.SlugField(_("key"), max_length=100, unique=True)
    value = models.JSONField(_("value"), default=dict, blank=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["key"]
        verbose_name = _("bot setting")
        verbose_name_plural = _("bot settings")

    def __str__(self) -> str:
        return self.key


# --- Flows as data -----------------------------------------------------------------------------


class Flow(TimeStampedModel):
    """A bot conversation tree, edited as rows (the draft) and run from a published snapshot.

    One flow per WhatsApp number; the flow marked default answers every other number.
    """

    name = models.CharField(_("name"), max_length=100)
    whatsapp_account = models.OneToOneField(
        "whatsapp.WhatsAppAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bot_flow",
        verbose_name=_("WhatsApp number"),
        help_text=_("Leave empty for the default flow."),
    )
    is_default = models.BooleanField(_("default flow"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    start_node = models.ForeignKey(
        "FlowNode",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("start node"),
    )

    class Meta:
        ordering = ["-is_default", "name"]
        verbose_name = _("bot flow")
        verbose_name_plural = _("bot flows")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="flow_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class NodeKind(models.TextChoices):
    MESSAGE = "message", _("Message (then go on)")
    MENU = "menu", _("Menu")
    COLLECT = "collect", _("Collect a value")
    AI = "ai", _("AI answer")
    HTTP = "http", _("Ask an external service (HTTP)")
    HUMAN = "human", _("Hand over to a human")
    END = "end", _("End")


class Validation(models.TextChoices):
    TEXT = "text", _("Any text")
    NAME = "name", _("Name")
    EMAIL = "email", _("E-mail")
    NUMBER = "number", _("Number")
    PHONE = "phone", _("Phone")
    REGEX = "regex", _("Regular expression")


class FlowNode(TimeStampedModel):
    """One step of a flow: what the bot says, and what happens next."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="nodes")
    key = models.SlugField(_("key"), max_length=50)
    kind = models.CharField(_("kind"), max_length=10, choices=NodeKind.choices)
    text = models.TextField(_("text"), blank=True, help_text=_("What the bot says at this step."))
    position = models.PositiveIntegerField(_("position"), default=0)
    next_node = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("next node"),
        help_text=_("For messages and collected values: where to go afterwards."),
    )
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("department"),
        help_text=_("For hand-overs and AI answers: the department's queue."),
    )
    field_name = models.SlugField(
        _("field"), max_length=50, blank=True, help_text=_("For collected values: stored as.")
    )
    validation = models.CharField(
        _("validation"), max_length=10, choices=Validation.choices, default=Validation.TEXT
    )
    pattern = models.CharField(_("pattern"), max_length=200, blank=True)
    error_text = models.CharField(_("retry text"), max_length=500, blank=True)
    menu_button = models.CharField(
        _("list button label"), max_length=20, blank=True, help_text=_("At most 20 characters.")
    )
    url = models.URLField(
        _("URL"),
        max_length=500,
        blank=True,
        help_text=_("For external services: where the bot POSTs the conversation (https://…)."),
    )
    secret = models.CharField(
        _("signing secret"),
        max_length=200,
        blank=True,
        help_text=_(
            "For external services: signs each request (X-SupportDesk-Signature). "
            "Leave empty to send unsigned requests."
        ),
    )
    fallback_node = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("fallback node"),
        help_text=_(
            "For external services: where to go when the service fails or does not answer in "
            "time. Empty: hand over to the general queue."
        ),
    )

    class Meta:
        ordering = ["flow", "position", "id"]
        verbose_name = _("flow node")
        verbose_name_plural = _("flow nodes")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["flow", "key"], name="flow_node_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.flow.name} / {self.key}" if self.flow_id else self.key


class OptionAction(models.TextChoices):
    NODE = "node", _("Go to a node")
    DEPARTMENT = "department", _("Department queue")
    AI = "ai", _("AI answer")
    HUMAN = "human", _("Human")


class MenuOption(TimeStampedModel):
    node = models.ForeignKey(FlowNode, on_delete=models.CASCADE, related_name="options")
    number = models.PositiveSmallIntegerField(_("number"))
    title = models.CharField(_("title"), max_length=24, help_text=_("At most 24 characters."))
    description = models.CharField(_("description"), max_length=72, blank=True)
    keywords = models.CharField(
        _("keywords"), max_length=255, blank=True, help_text=_("Comma-separated words.")
    )
    action = models.CharField(_("action"), max_length=10, choices=OptionAction.choices)
    target_node = models.ForeignKey(
        FlowNode,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("target node"),
    )
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("department"),
    )

    class Meta:
        ordering = ["node", "number"]
        verbose_name = _("menu option")
        verbose_name_plural = _("menu options")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["node", "number"], name="menu_option_number_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.number}. {self.title}"


class FlowVersion(models.Model):
    """An immutable published snapshot of a flow; conversations keep the version they started on."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    definition = models.JSONField(_("definition"))
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("published at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["flow", "-number"]
        get_latest_by = "number"
        verbose_name = _("published flow version")
        verbose_name_plural = _("published flow versions")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["flow", "number"], name="flow_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.flow_id} v{self.number}"


class SessionState(models.TextChoices):
    ACTIVE = "active", _("With the bot")
    HANDED_OFF = "handed_off", _("Handed over")
    ENDED = "ended", _("Ended")


class BotSession(TimeStampedModel):
    """Where a conversation stands in its flow, and what the bot collected along the way."""

    conversation = models.OneToOneField(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="bot_session"
    )
    flow_version = models.ForeignKey(
        FlowVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    node_key = models.CharField(_("current node"), max_length=50, blank=True)
    state = models.CharField(
        _("state"), max_length=12, choices=SessionState.choices, default=SessionState.ACTIVE
    )
    attempts = models.PositiveSmallIntegerField(_("invalid answers"), default=0)
    ai_turns = models.PositiveSmallIntegerField(_("AI answers"), default=0)
    collected = models.JSONField(_("collected values"), default=dict, blank=True)
    summary = models.TextField(_("AI summary"), blank=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = _("bot session")
        verbose_name_plural = _("bot sessions")

    def __str__(self) -> str:
        return f"#{self.conversation_id} @ {self.node_key or '-'} ({self.state})"


class BotTurn(models.Model):
    """One inbound message the bot handled: the idempotency key and the bot's audit trail."""

    session = models.ForeignKey(BotSession, on_delete=models.CASCADE, related_name="turns")
    inbound_message = models.OneToOneField(
        "conversations.Message", on_delete=models.CASCADE, related_name="bot_turn"
    )
    node_key = models.CharField(_("node"), max_length=50, blank=True)
    outcome = models.CharField(_("outcome"), max_length=30)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("bot turn")
        verbose_name_plural = _("bot turns")

    def __str__(self) -> str:
        return f"{self.inbound_message_id}: {self.outcome}"


# --- AI ----------------------------------------------------------------------------------------


class KnowledgeArticle(TimeStampedModel):
    """An article or FAQ entry the AI may answer from."""

    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("answer / content"))
    keywords = models.CharField(_("keywords"), max_length=255, blank=True)
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("department"),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["title"]
        verbose_name = _("knowledge article")
        verbose_name_plural = _("knowledge base")

    def __str__(self) -> str:
        return self.title


class AIOutcome(models.TextChoices):
    ANSWERED = "answered", _("Answered")
    HANDOFF = "handoff", _("Handed over by the model")
    LOW_CONFIDENCE = "low_confidence", _("Low confidence")
    INVALID = "invalid", _("Malformed output")
    TIMEOUT = "timeout", _("Timeout")
    ERROR = "error", _("API error")


class AIAnswerLog(models.Model):
    """Every call to the model: what it cost and how long it took."""

    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="ai_answers",
    )
    purpose = models.CharField(_("purpose"), max_length=20, default="answer")
    model = models.CharField(_("model"), max_length=100)
    outcome = models.CharField(_("outcome"), max_length=20, choices=AIOutcome.choices)
    intent = models.CharField(_("intent"), max_length=20, blank=True)
    confidence = models.FloatField(_("confidence"), null=True, blank=True)
    department_name = models.CharField(_("suggested department"), max_length=100, blank=True)
    answer = models.TextField(_("answer"), blank=True)
    error = models.TextField(_("error"), blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True, blank=True)
    total_tokens = models.PositiveIntegerField(_("total tokens"), null=True, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("AI answer")
        verbose_name_plural = _("AI answers")

    def __str__(self) -> str:
        return f"#{self.conversation_id} {self.outcome} {self.latency_ms} ms"
