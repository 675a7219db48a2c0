from datetime import timedelta
from typing import ClassVar

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Case, Q, Value, When
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from common.models import TimeStampedModel

# Meta's customer-service window: free-form messages only within 24 h of the customer's last one.
SERVICE_WINDOW = timedelta(hours=24)


color_validator = RegexValidator(
    r"^#[0-9a-fA-F]{6}$", _("Enter a colour as #rrggbb."), code="invalid_color"
)


class Tag(TimeStampedModel):
    """A label admins define (name and colour) and agents put on conversations and contacts."""

    name = models.CharField(_("name"), max_length=40)
    color = models.CharField(
        _("colour"), max_length=7, default="#6b7280", validators=[color_validator]
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        constraints: ClassVar = [
            models.UniqueConstraint(
                Lower("name"),
                name="tag_name_unique_ci",
                violation_error_message=_("There is already a tag with that name."),
            ),
            models.CheckConstraint(
                condition=Q(color__regex=r"^#[0-9a-fA-F]{6}$"), name="tag_color_rrggbb"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Priority(models.TextChoices):
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


# Higher is more urgent: the queue's order and "a rule only raises".
PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class Customer(TimeStampedModel):
    """Someone who writes to one of our WhatsApp numbers.

    ``wa_id`` is WhatsApp's canonical identity; ``bsuid`` the business-scoped user id Meta sends for
    customers who hide their number behind a username. ``phone`` is E.164 (``+5511987650002``).
    """

    wa_id = models.CharField(_("WhatsApp id"), max_length=32, null=True, blank=True)
    bsuid = models.CharField(_("business-scoped user id"), max_length=64, null=True, blank=True)
    phone = models.CharField(_("phone (E.164)"), max_length=20, blank=True, db_index=True)
    name = models.CharField(_("profile name"), max_length=200, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    # Set when someone at the desk names the contact: the WhatsApp profile name no longer
    # overwrites it.
    name_set_by_desk = models.BooleanField(_("name set by the desk"), default=False)
    tags = models.ManyToManyField(Tag, blank=True, related_name="customers", verbose_name=_("tags"))

    class Meta:
        ordering = ["name", "phone"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["wa_id"], condition=Q(wa_id__isnull=False), name="customer_wa_id_unique"
            ),
            models.UniqueConstraint(
                fields=["bsuid"], condition=Q(bsuid__isnull=False), name="customer_bsuid_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.phone or self.wa_id or self.bsuid or f"#{self.pk}"


class ConversationStatus(models.TextChoices):
    BOT = "bot", _("With the bot")
    PENDING = "pending", _("Waiting in queue")
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class Conversation(TimeStampedModel):
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=ConversationStatus.choices,
        default=ConversationStatus.BOT,
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="conversations", verbose_name=_("customer")
    )
    whatsapp_account = models.ForeignKey(
        "whatsapp.WhatsAppAccount",
        on_delete=models.PROTECT,
        related_name="conversations",
        verbose_name=_("WhatsApp number"),
    )
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        verbose_name=_("department"),
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        verbose_name=_("assigned to"),
    )
    first_response_at = models.DateTimeField(_("first response"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    last_inbound_at = models.DateTimeField(_("last customer message"), null=True, blank=True)
    last_message_at = models.DateTimeField(_("last activity"), null=True, blank=True)
    unread_count = models.PositiveIntegerField(_("unread"), default=0)
    priority = models.CharField(
        _("priority"), max_length=10, choices=Priority.choices, default=Priority.NORMAL
    )
    # The priority as a number the database sorts by (the queue: most urgent first).
    priority_rank = models.GeneratedField(
        expression=Case(
            *(When(priority=p.value, then=Value(rank)) for p, rank in PRIORITY_RANK.items()),
            default=Value(1),
        ),
        output_field=models.SmallIntegerField(),
        db_persist=True,
    )
    tags = models.ManyToManyField(
        Tag, blank=True, related_name="conversations", verbose_name=_("tags")
    )

    class Meta:
        ordering = ["-last_message_at", "-id"]
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        constraints: ClassVar = [
            # A customer has at most one conversation in progress per business number.
            models.UniqueConstraint(
                fields=["customer", "whatsapp_account"],
                condition=~Q(status="closed"),
                name="conversation_one_active_per_customer_number",
            ),
        ]
        indexes: ClassVar = [
            models.Index(
                fields=["status", "department", "-last_message_at"], name="conv_queue_idx"
            ),
            models.Index(
                fields=["assigned_to", "status", "-last_message_at"], name="conv_assignee_idx"
            ),
            models.Index(fields=["-last_message_at", "-id"], name="conv_activity_idx"),
            # The queue: most urgent first, then the longest waiting.
            models.Index(
                fields=["status", "-priority_rank", "last_inbound_at", "id"],
                name="conv_priority_queue_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.customer}"

    @property
    def window_expires_at(self):  # type: ignore[no-untyped-def]
        return self.last_inbound_at + SERVICE_WINDOW if self.last_inbound_at else None

    @property
    def is_closed(self) -> bool:
        return self.status == ConversationStatus.CLOSED


class Direction(models.TextChoices):
    IN = "in", _("Inbound")
    OUT = "out", _("Outbound")


class SenderKind(models.TextChoices):
    CUSTOMER = "customer", _("Customer")
    BOT = "bot", _("Bot")
    AGENT = "agent", _("Agent")
    SYSTEM = "system", _("System")


class MessageType(models.TextChoices):
    TEXT = "text", _("Text")
    IMAGE = "image", _("Image")
    AUDIO = "audio", _("Audio")
    VIDEO = "video", _("Video")
    DOCUMENT = "document", _("Document")
    STICKER = "sticker", _("Sticker")
    LOCATION = "location", _("Location")
    CONTACTS = "contacts", _("Contacts")
    INTERACTIVE = "interactive", _("Interactive")
    BUTTON = "button", _("Button")
    REACTION = "reaction", _("Reaction")
    TEMPLATE = "template", _("Template")
    UNSUPPORTED = "unsupported", _("Unsupported")
    SYSTEM = "system", _("System notice")


class MessageStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    SCHEDULED = "scheduled", _("Scheduled")
    QUEUED = "queued", _("Queued")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    READ = "read", _("Read")
    PLAYED = "played", _("Played")
    FAILED = "failed", _("Failed")


class Message(TimeStampedModel):
    conversation = models.ForeignKey(
        Conversation,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("conversation"),
    )
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    sender = models.CharField(_("sender"), max_length=10, choices=SenderKind.choices)
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="sent_messages",
        verbose_name=_("sent by"),
    )
    type = models.CharField(
        _("type"), max_length=12, choices=MessageType.choices, default=MessageType.TEXT
    )
    body = models.TextField(_("text"), blank=True)
    media_id = models.CharField(_("WhatsApp media id"), max_length=128, blank=True)
    media_file = models.FileField(_("media file"), upload_to="media/%Y/%m/%d/", blank=True)
    media_mime_type = models.CharField(_("media type"), max_length=100, blank=True)
    media_filename = models.CharField(_("file name"), max_length=255, blank=True)
    media_size = models.PositiveBigIntegerField(_("media size"), null=True, blank=True)
    media_sha256 = models.CharField(_("media sha256"), max_length=100, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    error = models.TextField(_("error"), blank=True)
    error_code = models.IntegerField(_("error code"), null=True, blank=True)
    # Meta's error object as received (code, title, message, error_data.details, href).
    error_data = models.JSONField(_("error details"), null=True, blank=True)
    # Every status Meta reported, in arrival order, with notes for those not applied.
    status_history = models.JSONField(_("status history"), default=list, blank=True)
    media_error = models.CharField(_("media download error"), max_length=255, blank=True)
    send_attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    # Set while a request to Meta is in flight: a redelivered task never sends twice.
    sending_since = models.DateTimeField(_("sending since"), null=True, blank=True)
    wa_message_id = models.CharField(
        _("WhatsApp message id"), max_length=128, null=True, blank=True
    )
    reply_to = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="replies",
        verbose_name=_("reply to"),
    )
    raw_payload = models.JSONField(_("raw payload"), null=True, blank=True)
    wa_timestamp = models.DateTimeField(_("WhatsApp timestamp"), null=True, blank=True)
    read_at = models.DateTimeField(_("read by an agent at"), null=True, blank=True)
    # When a ``scheduled`` message goes to the customer (contract §10); null unless scheduled.
    send_at = models.DateTimeField(_("send at"), null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["wa_message_id"],
                condition=Q(wa_message_id__isnull=False),
                name="message_wa_message_id_unique",
            ),
            models.CheckConstraint(
                condition=~Q(status="scheduled") | Q(send_at__isnull=False),
                name="message_scheduled_has_send_at",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["conversation", "created_at", "id"], name="msg_conversation_idx"),
            # The outbound sweeper's look-up (whatsapp.services.outbound.outbound_list_stuck).
            models.Index(
                fields=["created_at"],
                condition=Q(direction="out", status="queued"),
                name="msg_out_queued_idx",
            ),
            # The scheduled messages' sender: the due ones, soonest first.
            models.Index(
                fields=["send_at"],
                condition=Q(status="scheduled"),
                name="msg_scheduled_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.type}: {self.body[:50]}"


class MessageReaction(TimeStampedModel):
    """An emoji put on a message by the customer or by the desk; one per side, replaceable."""

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="reactions", verbose_name=_("message")
    )
    sender = models.CharField(_("sender"), max_length=10, choices=SenderKind.choices)
    emoji = models.CharField(_("emoji"), max_length=32)
    wa_timestamp = models.DateTimeField(_("WhatsApp timestamp"), null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("reaction")
        verbose_name_plural = _("reactions")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["message", "sender"], name="reaction_one_per_sender"),
        ]

    def __str__(self) -> str:
        return f"{self.emoji} on #{self.message_id}"


class ConversationTransfer(models.Model):
    """A hand-over between agents and/or departments (the seed's ``conversation_transfers``)."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="transfers"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    from_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    from_department = models.ForeignKey(
        "departments.Department", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    to_department = models.ForeignKey(
        "departments.Department", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")

    def __str__(self) -> str:
        target = f"{self.to_user_id}/{self.to_department_id}"
        return f"#{self.conversation_id}: {self.from_user_id} → {target}"


class EventKind(models.TextChoices):
    CREATED = "created", _("Created")
    TAKEN_OVER = "taken_over", _("Taken over")
    ASSIGNED = "assigned", _("Assigned")
    TRANSFERRED = "transferred", _("Transferred")
    CLOSED = "closed", _("Closed")
    REOPENED = "reopened", _("Reopened")
    READ = "read", _("Marked read")
    QUEUED = "queued", _("Sent to queue")
    FIRST_RESPONSE = "first_response", _("First response")
    NUMBER_CHANGED = "number_changed", _("Customer changed number")
    CSAT_RECEIVED = "csat_received", _("Satisfaction score received")
    TAGS_CHANGED = "tags_changed", _("Tags changed")
    PRIORITY_CHANGED = "priority_changed", _("Priority changed")


class ConversationEvent(models.Model):
    """Who did what to a conversation, and when: history, audit trail and metrics source."""

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=EventKind.choices)
    before = models.JSONField(_("before"), default=dict, blank=True)
    after = models.JSONField(_("after"), default=dict, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("conversation event")
        verbose_name_plural = _("conversation events")
        indexes: ClassVar = [
            models.Index(fields=["conversation", "created_at"], name="conv_event_idx"),
            models.Index(fields=["kind", "created_at"], name="conv_event_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id} {self.kind}"


class ConversationNote(TimeStampedModel):
    """An internal note on a conversation: agents and supervisors see it, the customer never does.

    Kept apart from ``Message`` on purpose, so no sender, retry or sweep can ever deliver it.
    """

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="notes", verbose_name=_("conversation")
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("author"),
    )
    body = models.TextField(_("note"))

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("internal note")
        verbose_name_plural = _("internal notes")
        indexes: ClassVar = [
            models.Index(fields=["conversation", "created_at"], name="conv_note_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id} note: {self.body[:50]}"


class QuickReply(TimeStampedModel):
    """A canned answer agents insert into the composer.

    Three kinds: global (no department, no owner), a department's (``department``), both edited by
    admins in the back office; and personal (``owner``), which only its owner sees and edits, in
    the console. The text may hold variables filled in for the open conversation
    (:data:`QUICK_REPLY_VARIABLES`).
    """

    shortcut = models.SlugField(_("shortcut"), max_length=40)
    title = models.CharField(_("title"), max_length=100)
    body = models.TextField(_("text"))
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="quick_replies",
        verbose_name=_("department"),
        help_text=_("Leave empty to offer it in every department."),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        editable=False,
        related_name="quick_replies",
        verbose_name=_("owner"),
        help_text=_("A personal quick reply: only its owner sees it."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["title", "id"]
        verbose_name = _("quick reply")
        verbose_name_plural = _("quick replies")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["shortcut"],
                condition=Q(owner__isnull=True),
                name="quick_reply_shared_shortcut_unique",
                violation_error_message=_("There is already a quick reply with that shortcut."),
            ),
            models.UniqueConstraint(
                fields=["owner", "shortcut"],
                condition=Q(owner__isnull=False),
                name="quick_reply_personal_shortcut_unique",
                violation_error_message=_("You already have a quick reply with that shortcut."),
            ),
            # a personal reply is the owner's everywhere: never tied to a department
            models.CheckConstraint(
                condition=Q(owner__isnull=True) | Q(department__isnull=True),
                name="quick_reply_personal_has_no_department",
            ),
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut} {self.title}"

    @property
    def scope(self) -> str:
        if self.owner_id is not None:
            return "personal"
        return "department" if self.department_id is not None else "global"


class CsatStatus(models.TextChoices):
    REQUESTED = "requested", _("Asked, waiting for the score")
    AWAITING_COMMENT = "awaiting_comment", _("Scored, waiting for a comment")
    COMPLETED = "completed", _("Completed")
    EXPIRED = "expired", _("Expired unanswered")


class CsatSurvey(TimeStampedModel):
    """A satisfaction survey sent when a conversation an agent handled was closed.

    The score (1 to 5) belongs to ``agent``: the agent of the last handling segment, the one who had
    the conversation when it was closed. A conversation closed, reopened and closed again may be
    asked again; the newest answered survey is its score.
    """

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="csat_surveys"
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="csat_surveys",
        verbose_name=_("agent"),
    )
    status = models.CharField(
        _("status"), max_length=20, choices=CsatStatus.choices, default=CsatStatus.REQUESTED
    )
    score = models.PositiveSmallIntegerField(_("score"), null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True)
    scored_at = models.DateTimeField(_("scored at"), null=True, blank=True)
    request_message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("satisfaction survey")
        verbose_name_plural = _("satisfaction surveys")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(score__isnull=True) | models.Q(score__gte=1, score__lte=5),
                name="csat_score_1_to_5",
            ),
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(status__in=["requested", "awaiting_comment"]),
                name="csat_one_open_survey_per_conversation",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["agent", "scored_at"], name="csat_agent_scored_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id} CSAT {self.score or '-'} ({self.status})"


class RuleCondition(models.TextChoices):
    CONTACT_TAG = "contact_tag", _("The contact has a tag")
    KEYWORDS = "keywords", _("The customer's message contains any of these words")
    WAITING = "waiting", _("The customer has waited longer than some minutes")


class PriorityRule(TimeStampedModel):
    """An admin's automatic priority: when ``condition`` holds, the conversation's priority is
    raised to ``priority`` (a rule never lowers one)."""

    name = models.CharField(_("name"), max_length=100)
    condition = models.CharField(_("condition"), max_length=20, choices=RuleCondition.choices)
    tag = models.ForeignKey(
        Tag,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="priority_rules",
        verbose_name=_("contact tag"),
    )
    keywords = models.TextField(
        _("words"),
        blank=True,
        help_text=_("Comma-separated; accents and case are ignored."),
    )
    minutes = models.PositiveIntegerField(_("minutes waiting"), null=True, blank=True)
    priority = models.CharField(
        _("priority"), max_length=10, choices=Priority.choices, default=Priority.HIGH
    )
    is_active = models.BooleanField(_("active"), default=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("priority rule")
        verbose_name_plural = _("priority rules")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=~Q(condition="contact_tag") | Q(tag__isnull=False),
                name="priority_rule_tag_needs_tag",
            ),
            models.CheckConstraint(
                condition=~Q(condition="keywords") | ~Q(keywords=""),
                name="priority_rule_keywords_need_words",
            ),
            models.CheckConstraint(
                condition=~Q(condition="waiting") | Q(minutes__gte=1),
                name="priority_rule_waiting_needs_minutes",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """The admin form's errors for what the constraints refuse."""
        from django.core.exceptions import ValidationError  # noqa: PLC0415

        if self.condition == RuleCondition.CONTACT_TAG and self.tag_id is None:
            raise ValidationError({"tag": _("Choose the contact's tag.")})
        if self.condition == RuleCondition.KEYWORDS and not self.words:
            raise ValidationError({"keywords": _("Enter at least one word.")})
        if self.condition == RuleCondition.WAITING and not self.minutes:
            raise ValidationError({"minutes": _("Enter how many minutes.")})

    @property
    def words(self) -> list[str]:
        return [w.strip() for w in self.keywords.split(",") if w.strip()]


class AssignmentCursor(TimeStampedModel):
    """Automatic assignment's row per department: whom round robin gave the last conversation.

    Every assignment into the department locks this row first (``conversations.locks``), so the
    department's assignments happen one at a time, whatever the number of workers.
    """

    department = models.OneToOneField(
        "departments.Department",
        on_delete=models.CASCADE,
        related_name="assignment_cursor",
        verbose_name=_("department"),
    )
    last_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("last assigned to"),
    )

    class Meta:
        ordering = ["department"]
        verbose_name = _("assignment cursor")
        verbose_name_plural = _("assignment cursors")

    def __str__(self) -> str:
        return f"{self.department_id} → {self.last_user_id or '-'}"


class AgentAssignmentState(TimeStampedModel):
    """Automatic assignment's row per agent: locked while a conversation is given to them (so no
    one goes past their capacity), and when they last got one (least busy's tie-break)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="assignment_state",
        verbose_name=_("agent"),
    )
    last_assigned_at = models.DateTimeField(_("last assigned at"), null=True, blank=True)

    class Meta:
        ordering = ["user"]
        verbose_name = _("agent assignment state")
        verbose_name_plural = _("agent assignment states")

    def __str__(self) -> str:
        return f"{self.user_id} @ {self.last_assigned_at or '-'}"
