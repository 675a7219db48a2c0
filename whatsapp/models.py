from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from common.models import TimeStampedModel


class WhatsAppAccount(TimeStampedModel):
    """One business phone number connected through the Cloud API."""

    name = models.CharField(_("name"), max_length=100)
    phone_number_id = models.CharField(_("phone number id"), max_length=64, unique=True)
    display_phone_number = models.CharField(_("display number"), max_length=32, blank=True)
    waba_id = models.CharField(_("WhatsApp Business account id"), max_length=64, blank=True)
    access_token = models.TextField(
        _("access token"),
        blank=True,
        help_text=_(
            "Leave empty to use WHATSAPP_ACCESS_TOKEN (or the sandbox when that is unset)."
        ),
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Channel health (/health, the admin), written by the sender: its last success, its last
    # refusal, and when Meta last refused the token (cleared in effect by a later success).
    last_sent_at = models.DateTimeField(_("last message sent"), null=True, blank=True)
    last_send_error_at = models.DateTimeField(_("last send error"), null=True, blank=True)
    last_send_error_code = models.IntegerField(_("last send error code"), null=True, blank=True)
    last_send_error = models.CharField(_("last send error reason"), max_length=255, blank=True)
    token_error_at = models.DateTimeField(_("last token error"), null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("WhatsApp number")
        verbose_name_plural = _("WhatsApp numbers")

    def __str__(self) -> str:
        return f"{self.name} ({self.display_phone_number or self.phone_number_id})"


class WebhookStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")
    UNKNOWN = "unknown", _("Not understood")


class WebhookEvent(models.Model):
    """A raw delivery from Meta, stored before anything else happens to it."""

    raw_body = models.TextField(_("raw body"))
    payload = models.JSONField(_("payload"), null=True, blank=True)
    signature = models.CharField(_("signature"), max_length=100, blank=True)
    phone_number_id = models.CharField(_("phone number id"), max_length=64, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED
    )
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes: ClassVar = [
            models.Index(fields=["status", "received_at"], name="webhook_status_idx"),
            # A number's last delivery (/health, the admin): one step down this index.
            models.Index(fields=["phone_number_id", "received_at"], name="webhook_number_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.status} {self.received_at:%Y-%m-%d %H:%M:%S}"


class ChannelErrorKind(models.TextChoices):
    WEBHOOK = "webhook", _("Reported by Meta in a delivery")
    SEND = "send", _("Refused when sending")
    TOKEN = "token", _("Access token or permission")
    MEDIA = "media", _("Media download")


class ChannelError(models.Model):
    """An error of the channel itself, not tied to one message: shown to admins.

    ``value.errors`` of a webhook delivery, token/permission refusals of the Graph API and media
    downloads that failed for good end up here.
    """

    kind = models.CharField(_("kind"), max_length=10, choices=ChannelErrorKind.choices)
    account = models.ForeignKey(
        WhatsAppAccount,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="errors",
        verbose_name=_("WhatsApp number"),
    )
    webhook_event = models.ForeignKey(
        WebhookEvent,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="channel_errors",
        verbose_name=_("webhook delivery"),
    )
    code = models.IntegerField(_("Meta error code"), null=True, blank=True)
    title = models.CharField(_("title"), max_length=255, blank=True)
    details = models.TextField(_("details"), blank=True)
    data = models.JSONField(_("data"), null=True, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("channel error")
        verbose_name_plural = _("channel errors")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.code or ''} {self.title}".strip()


class PendingStatus(models.Model):
    """A status update for a WhatsApp message id we have not stored (yet).

    Meta may report ``sent``/``delivered`` before our sender has recorded the returned wamid; the
    sender applies what waits here as soon as it records the id. Statuses of messages sent from
    elsewhere (the WhatsApp Business app) simply stay here.
    """

    wa_message_id = models.CharField(_("WhatsApp message id"), max_length=128, db_index=True)
    payload = models.JSONField(_("status"))
    webhook_event = models.ForeignKey(
        WebhookEvent, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("received at"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("pending status")
        verbose_name_plural = _("pending statuses")

    def __str__(self) -> str:
        return f"{self.wa_message_id} {self.payload.get('status', '')}"


class MessageTemplate(TimeStampedModel):
    """An approved (or not) message template, synced from the Graph API."""

    account = models.ForeignKey(
        WhatsAppAccount,
        on_delete=models.CASCADE,
        related_name="templates",
        verbose_name=_("WhatsApp number"),
    )
    meta_id = models.CharField(_("Meta id"), max_length=64, blank=True)
    name = models.CharField(_("name"), max_length=512)
    language = models.CharField(_("language"), max_length=16)
    status = models.CharField(_("status"), max_length=32, blank=True)
    category = models.CharField(_("category"), max_length=32, blank=True)
    components = models.JSONField(_("components"), default=list, blank=True)
    synced_at = models.DateTimeField(_("synced at"), null=True, blank=True)

    class Meta:
        ordering = ["name", "language"]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["account", "name", "language"], name="template_unique_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    @property
    def is_approved(self) -> bool:
        return self.status.upper() == "APPROVED"
