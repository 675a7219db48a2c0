"""Writes about outgoing webhooks: subscriptions (configuration, audited) and redeliveries.

Every change of a subscription bumps the version of the active subscriptions' cache (see
:func:`integrations.selectors.subscription_list_active_cached`) both at once and after the commit:
at once so the same transaction sees it, after the commit so that no process keeps a copy read
while the change was not yet visible.
"""

import secrets
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import AuditAction, User
from accounts.services import audit_log_record
from common.events import event_types
from common.exceptions import NotPermitted, ServiceError

from . import outbox, selectors
from .addresses import UnsafeAddress, url_resolve_public
from .error_codes import WebhookErrorCode
from .models import ALL_EVENTS, DeliveryStatus, WebhookDelivery, WebhookSubscription
from .tasks import deliveries_queue


class InvalidSubscription(ServiceError):  # noqa: N818 - reads better at call sites
    """A subscription's field is refused; ``field`` names it (``url``, ``events``)."""

    def __init__(self, message: str, *, code: str, field: str) -> None:
        super().__init__(message, code=code)
        self.field = field


def _require_admin(actor: User) -> None:
    if not (actor.is_active and actor.is_admin):
        raise NotPermitted(_("Only administrators can manage webhooks."))


def _state(subscription: WebhookSubscription) -> dict[str, Any]:
    """What the audit log records (never the secret)."""
    return {
        "url": subscription.url,
        "events": subscription.events,
        "is_active": subscription.is_active,
        "description": subscription.description,
    }


def subscription_check_url(*, url: str) -> str:
    """``url`` if it may receive webhooks (http/https, a host that resolves to public
    addresses unless ``OUTGOING_WEBHOOKS_ALLOW_PRIVATE``), else :class:`InvalidSubscription`."""
    url = url.strip()
    try:
        url_resolve_public(url)
    except UnsafeAddress as refused:
        raise InvalidSubscription(
            str(refused), code=WebhookErrorCode.UNSAFE_URL, field="url"
        ) from refused
    return url


def subscription_check_events(*, events: Sequence[str]) -> list[str]:
    """The event types, deduplicated in order; unknown ones are refused, naming the valid ones."""
    chosen = list(dict.fromkeys(str(e).strip() for e in events))
    if not chosen:
        raise InvalidSubscription(
            _("Choose at least one event type, or * for every one."),
            code=WebhookErrorCode.NO_EVENTS,
            field="events",
        )
    if ALL_EVENTS in chosen:
        return [ALL_EVENTS]
    valid = event_types(public_only=True)
    unknown = [e for e in chosen if e not in valid]
    if unknown:
        raise InvalidSubscription(
            _("Unknown event type(s): %(unknown)s. Valid types: %(valid)s, or *.")
            % {"unknown": ", ".join(unknown), "valid": ", ".join(valid)},
            code=WebhookErrorCode.UNKNOWN_EVENT,
            field="events",
        )
    return chosen


def _subscriptions_changed() -> None:
    selectors.subscriptions_bump_version()
    transaction.on_commit(selectors.subscriptions_bump_version)


@transaction.atomic
def subscription_create(
    *,
    actor: User,
    url: str,
    events: Sequence[str],
    secret: str | None = None,
    is_active: bool = True,
    description: str = "",
) -> WebhookSubscription:
    """A new subscription; ``secret`` generated when not given (the caller shows it once)."""
    _require_admin(actor)
    subscription = WebhookSubscription.objects.create(
        url=subscription_check_url(url=url),
        events=subscription_check_events(events=events),
        secret=secret or secrets.token_urlsafe(32),
        is_active=is_active,
        description=description.strip(),
        created_by=actor,
    )
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target=subscription,
        after={"created": _state(subscription)},
    )
    _subscriptions_changed()
    return subscription


@transaction.atomic
def subscription_update(
    *,
    subscription: WebhookSubscription,
    actor: User,
    url: str | None = None,
    events: Sequence[str] | None = None,
    secret: str | None = None,
    is_active: bool | None = None,
    description: str | None = None,
) -> WebhookSubscription:
    _require_admin(actor)
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    before = _state(subscription)
    if url is not None:
        subscription.url = subscription_check_url(url=url)
    if events is not None:
        subscription.events = subscription_check_events(events=events)
    if is_active is not None:
        subscription.is_active = is_active
    if description is not None:
        subscription.description = description.strip()
    secret_changed = bool(secret) and secret != subscription.secret
    if secret_changed:
        subscription.secret = str(secret)
    after = _state(subscription)
    if before != after or secret_changed:
        subscription.save()
        changed = sorted(k for k in after if before[k] != after[k])
        audit_log_record(
            actor=actor,
            action=AuditAction.CONFIG_CHANGED,
            target=subscription,
            before={k: before[k] for k in changed},
            after={
                **{k: after[k] for k in changed},
                **({"secret": "changed"} if secret_changed else {}),
            },
        )
        _subscriptions_changed()
    return subscription


@transaction.atomic
def subscription_delete(*, subscription: WebhookSubscription, actor: User) -> None:
    """Remove a subscription and its delivery log."""
    _require_admin(actor)
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target=subscription,
        before=_state(subscription),
        after={"deleted": True},
    )
    subscription.delete()
    _subscriptions_changed()


@transaction.atomic
def delivery_redeliver(*, delivery: WebhookDelivery, actor: User) -> WebhookDelivery:
    """Queue a delivery again, whatever became of it: the same uuid and body, ``pending``, due
    now, with a fresh retry window. Refused while its subscription is inactive."""
    _require_admin(actor)
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    subscription = WebhookSubscription.objects.filter(pk=delivery.subscription_id).first()
    if subscription is None or not subscription.is_active:
        raise ServiceError(
            _("Activate the subscription before redelivering its events."),
            code=WebhookErrorCode.NOT_REDELIVERABLE,
        )
    before = {"status": delivery.status, "attempts": delivery.attempts}
    now = timezone.now()
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.retry_until = now + outbox.RETRY_FOR
    delivery.delivered_at = None
    delivery.save(
        update_fields=["status", "next_attempt_at", "retry_until", "delivered_at", "updated_at"]
    )
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target=delivery,
        target_repr=f"webhook delivery {delivery.pk} ({delivery.event})",
        before=before,
        after={"redelivered": True},
    )
    transaction.on_commit(lambda: deliveries_queue([delivery.pk]))
    return delivery
