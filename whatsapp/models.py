from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from supportdesk.models import TimeStampedModel


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
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.status} {self.received_at:%Y-%m-%d %H:%M:%S}"
