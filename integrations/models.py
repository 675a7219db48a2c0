"""Outgoing webhooks (contract §8): who subscribes to which events, and every delivery made.

A :class:`WebhookDelivery` row is written in the same transaction as the change that produced
the event (a transactional outbox), so a crash after the commit never loses an event; the
delivery task then sends it, as many times as it takes, under the same uuid.
"""

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.models import TimeStampedModel

#: ``events`` holding this alone subscribes to every public event type.
ALL_EVENTS = "*"


class WebhookSubscription(TimeStampedModel):
    url = models.URLField(_("URL"), max_length=2000)
    events = models.JSONField(
        _("events"), default=list, help_text=_('Event types, or ["*"] for every one.')
    )
    # Kept as written: the desk must sign with it (HMAC needs the key itself, not a hash).
    secret = models.CharField(_("secret"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")
        indexes: ClassVar = [
            models.Index(fields=["is_active"], name="webhook_sub_active_idx"),
        ]

    def __str__(self) -> str:
        return self.description or self.url

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events


class OutgoingEvent(TimeStampedModel):
    """One public event as its subscribers receive it, stored once however many subscribe: its
    deliveries point here (a busy desk writes each event's data once, not once per subscriber)."""

    type = models.CharField(_("type"), max_length=64)
    #: The event's time, exactly as sent (``created_at`` of the body, contract §8).
    occurred_at = models.CharField(_("occurred at"), max_length=40)
    #: The body's ``data``, serialised once (JSON text): every attempt sends these very bytes.
    data = models.TextField(_("data"))

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("outgoing event")
        verbose_name_plural = _("outgoing events")

    def __str__(self) -> str:
        return f"{self.type} {self.occurred_at}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class WebhookDelivery(TimeStampedModel):
    #: The delivery id of contract §8 (``X-SupportDesk-Delivery``), the same on every attempt.
    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    # No database-level foreign key, on purpose: the row is written inside the transaction of
    # whatever change emitted the event, and a subscription deleted meanwhile (from the cached
    # list the outbox read) must never make that change fail at COMMIT. Django still cascades
    # the delete; an orphan left by that race is marked failed by its first attempt.
    subscription = models.ForeignKey(
        WebhookSubscription,
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="deliveries",
        verbose_name=_("subscription"),
    )
    event = models.CharField(_("event"), max_length=64)
    #: What is sent (with this delivery's id): ``{"id", "type", "created_at", "data"}``. No
    #: database-level key and no index, as for ``subscription``: written in the same transaction,
    #: never looked up from this side.
    outgoing_event = models.ForeignKey(
        OutgoingEvent,
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,
        related_name="deliveries",
        verbose_name=_("event sent"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    response_code = models.PositiveIntegerField(_("response code"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    #: Failed attempts are retried until then (24 h after the event, or after a redelivery).
    retry_until = models.DateTimeField(_("retried until"), null=True, blank=True)
    #: Set while a worker makes an attempt (claimed under the row lock): nobody else makes one
    #: before then. A worker that dies mid-attempt leaves it to expire.
    claimed_until = models.DateTimeField(_("claimed until"), null=True, blank=True)
    #: The deliveries of one subscription claimed together, to be made one after another on one
    #: connection (a batch), share this: they count as one attempt in flight, not as many.
    claim_id = models.UUIDField(_("claim"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes: ClassVar = [
            models.Index(fields=["subscription", "-created_at"], name="webhook_delivery_sub_idx"),
            # A subscription's due deliveries, oldest first (what its lanes take next), and its
            # attempts in flight (the cap on a slow receiver's share). Not on ``claimed_until``:
            # a claim then changes no indexed column and is a HOT update.
            models.Index(
                fields=["subscription", "next_attempt_at"],
                name="webhook_delivery_pending_idx",
                condition=models.Q(status="pending"),
            ),
            # The sweeper's question: what is pending and due?
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due_idx",
                condition=models.Q(status="pending"),
            ),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "succeeded", "failed"]),
                name="webhook_delivery_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="succeeded") | models.Q(delivered_at__isnull=False),
                name="webhook_delivery_succeeded_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription_id} ({self.status})"
