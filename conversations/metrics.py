"""Desk metrics (``GET /api/v1/conversations/stats``), read from conversations and their events.

Over the conversations created in ``[date_from, date_to)``:
- counts by status, per department and per agent (the current assignee);
- first-response time: from the conversation's creation to the first agent message
  (``Conversation.first_response_at``, set with the ``first_response`` event);
- handling time: from creation to closing (``closed_at``, set with the ``closed`` event);
- CSAT: not collected yet (``null``).
"""

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet

from .models import Conversation, ConversationStatus

_FIRST_RESPONSE = ExpressionWrapper(
    F("first_response_at") - F("created_at"), output_field=DurationField()
)
_HANDLING = ExpressionWrapper(F("closed_at") - F("created_at"), output_field=DurationField())


def _seconds(value: timedelta | None) -> float | None:
    return round(value.total_seconds(), 1) if value is not None else None


def _aggregates() -> dict[str, Any]:
    aggregates: dict[str, Any] = {"total": Count("pk")}
    for value in ConversationStatus.values:
        aggregates[value] = Count("pk", filter=Q(status=value))
    aggregates["first_response"] = Avg(
        _FIRST_RESPONSE, filter=Q(first_response_at__isnull=False), output_field=DurationField()
    )
    aggregates["handling"] = Avg(
        _HANDLING, filter=Q(closed_at__isnull=False), output_field=DurationField()
    )
    return aggregates


def _shape(row: Any) -> dict[str, Any]:
    return {
        "total": row["total"],
        "by_status": {value: row[value] for value in ConversationStatus.values},
        "first_response_seconds_avg": _seconds(row["first_response"]),
        "handling_seconds_avg": _seconds(row["handling"]),
    }


def conversation_stats(
    *, queryset: QuerySet[Conversation], date_from: datetime, date_to: datetime
) -> dict[str, Any]:
    """Three grouped queries, whatever the number of conversations."""
    qs = queryset.filter(created_at__gte=date_from, created_at__lt=date_to).order_by()
    overall = qs.aggregate(**_aggregates())
    by_department = (
        qs.values("department_id", "department__name")
        .annotate(**_aggregates())
        .order_by("department__name")
    )
    by_agent = (
        qs.filter(assigned_to__isnull=False)
        .values("assigned_to_id", "assigned_to__name")
        .annotate(**_aggregates())
        .order_by("assigned_to__name")
    )
    return {
        "from": date_from,
        "to": date_to,
        **_shape(overall),
        "csat": None,
        "by_department": [
            {
                "department": (
                    {"id": row["department_id"], "name": row["department__name"]}
                    if row["department_id"]
                    else None
                ),
                **_shape(row),
            }
            for row in by_department
        ],
        "by_agent": [
            {
                "agent": {"id": row["assigned_to_id"], "name": row["assigned_to__name"]},
                **_shape(row),
            }
            for row in by_agent
        ],
    }
