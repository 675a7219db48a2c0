"""Reads of the WhatsApp channel's health: the intake's lag, each number's state (``/health``,
the admin, ``/metrics``, the lag alert)."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Min, OuterRef, QuerySet, Subquery
from django.utils import timezone

from conversations.models import Direction, Message, MessageStatus

from .models import WebhookEvent, WebhookStatus, WhatsAppAccount
from .services.accounts import account_token


@dataclass(frozen=True)
class IntakeLag:
    """How far the processing of Meta's deliveries is behind: the oldest one still waiting."""

    seconds: float
    pending: int
    oldest_at: datetime | None


def webhook_intake_lag() -> IntakeLag:
    """One query on the ``(status, received_at)`` index."""
    row = WebhookEvent.objects.filter(status=WebhookStatus.RECEIVED).aggregate(
        oldest=Min("received_at"), pending=Count("id")
    )
    oldest = row["oldest"]
    seconds = max((timezone.now() - oldest).total_seconds(), 0.0) if oldest else 0.0
    return IntakeLag(seconds=seconds, pending=int(row["pending"] or 0), oldest_at=oldest)


def account_pending_outbound() -> list[tuple[str, int]]:
    """``(phone_number_id, queued outbound messages)`` of every number with some waiting."""
    rows = (
        Message.objects.filter(direction=Direction.OUT, status=MessageStatus.QUEUED)
        .values_list("conversation__whatsapp_account__phone_number_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [(str(phone_number_id or ""), int(n)) for phone_number_id, n in rows]


def account_list_with_health() -> QuerySet[WhatsAppAccount]:
    """The numbers with ``last_delivery_at`` (one step down the per-number index each)."""
    last_delivery = (
        WebhookEvent.objects.filter(phone_number_id=OuterRef("phone_number_id"))
        .order_by("-received_at")
        .values("received_at")[:1]
    )
    return WhatsAppAccount.objects.annotate(last_delivery_at=Subquery(last_delivery))


class TokenState:
    OK = "ok"
    ERROR = "error"  # Meta refused the token (or a permission) since the last message it took
    SANDBOX = "sandbox"  # no token: the sandbox transport, nothing reaches Meta


def account_token_state(account: WhatsAppAccount) -> str:
    if not account_token(account):
        return TokenState.SANDBOX
    if account.token_error_at and (
        account.last_sent_at is None or account.token_error_at > account.last_sent_at
    ):
        return TokenState.ERROR
    return TokenState.OK


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def account_health(
    accounts: Iterable[WhatsAppAccount] | None = None,
) -> list[dict[str, Any]]:
    """Each active number's health as ``/health`` shows it (contract §11): last delivery
    received, last successful send, last send error, token state, messages waiting to go out.
    Two queries whatever the number of numbers."""
    if accounts is None:
        accounts = account_list_with_health().filter(is_active=True)
    pending = dict(account_pending_outbound())
    return [
        {
            "id": account.pk,
            "name": account.name,
            "phone_number_id": account.phone_number_id,
            "display_phone_number": account.display_phone_number,
            "token": account_token_state(account),
            "token_error_at": _iso(account.token_error_at),
            "last_delivery_at": _iso(getattr(account, "last_delivery_at", None)),
            "last_sent_at": _iso(account.last_sent_at),
            "last_send_error": (
                {
                    "at": _iso(account.last_send_error_at),
                    "code": account.last_send_error_code,
                }
                if account.last_send_error_at
                else None
            ),
            "pending_outbound": pending.get(account.phone_number_id, 0),
        }
        for account in accounts
    ]
