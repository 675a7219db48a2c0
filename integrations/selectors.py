"""Reads about outgoing webhooks.

:func:`subscription_list_active_cached` is asked on every batch of domain events, inside the
emitting transaction: in steady state it costs no query at all (a per-process copy, checked
against a version number in Django's cache, which the subscription services bump).
"""

import dataclasses
import logging
import time

from django.core.cache import cache
from django.db.models import QuerySet

from .models import WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

VERSION_KEY = "integrations:webhook-subscriptions:version"
_DATA_KEY = "integrations:webhook-subscriptions:{version}"


@dataclasses.dataclass(frozen=True)
class ActiveSubscription:
    """What the outbox needs to know about an active subscription: who, and for which types."""

    id: int
    events: frozenset[str]

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


_memo: tuple[int, tuple[ActiveSubscription, ...]] | None = None


def _version() -> int | None:
    """None: the cache is unreachable (Redis down), so no copy can be trusted."""
    version = cache.get(VERSION_KEY)
    if version is None:  # never set, or evicted: a fresh number no process has a copy for
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)
        version = cache.get(VERSION_KEY)
    return None if version is None else int(version)


def subscriptions_bump_version() -> None:
    """Every process reads the active subscriptions afresh on its next batch of events."""
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # not in the cache: a fresh number does the same
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)


def _active_from_database() -> tuple[ActiveSubscription, ...]:
    return tuple(
        ActiveSubscription(id=pk, events=frozenset(events or ()))
        for pk, events in WebhookSubscription.objects.filter(is_active=True)
        .order_by("pk")
        .values_list("pk", "events")
    )


def subscription_list_active_cached() -> tuple[ActiveSubscription, ...]:
    """The active subscriptions: no query unless one changed since this process last looked.

    The version is read before the database, and the copy stored under that version: a change
    that commits meanwhile bumps the version, so a stale copy is never read again.
    """
    global _memo  # noqa: PLW0603 - the per-process copy
    version = _version()
    if version is None:  # Redis down: a change elsewhere could not be heard; ask each time
        return _active_from_database()
    memo = _memo
    if memo is not None and memo[0] == version:
        return memo[1]
    key = _DATA_KEY.format(version=version)
    active = cache.get(key)
    if active is None:
        active = _active_from_database()
        cache.set(key, active, timeout=24 * 3600)
    _memo = (version, active)
    return active


def subscriptions_cache_warm() -> None:
    """Fill the cache now (after ``migrate``), so that the first events cost no query either."""
    global _memo  # noqa: PLW0603
    _memo = None
    subscription_list_active_cached()


def subscription_list() -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.select_related("created_by").order_by("-created_at", "-id")


def subscription_get(*, pk: int) -> WebhookSubscription:
    return subscription_list().get(pk=pk)


def delivery_list_for_subscription(
    *, subscription: WebhookSubscription
) -> QuerySet[WebhookDelivery]:
    """A subscription's deliveries, newest first (their events' data left where it is)."""
    return WebhookDelivery.objects.filter(subscription=subscription).order_by("-created_at", "-id")


def delivery_get(*, pk: str) -> WebhookDelivery:
    return WebhookDelivery.objects.select_related("subscription", "outgoing_event").get(pk=pk)
