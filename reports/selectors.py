"""The reports' reads (contract §9): stats and CSV rows, aggregate queries over the roll-ups
(:class:`ConversationMetrics`) and the agents' segments, never over messages.

Filters select conversations: created in ``[date_from, date_to)``, in a department (the one
they are in now, or were closed in), handled by an agent (one of its segments), with a tag
(on the conversation). ``business_hours`` reads the business-hours twin of
every duration.
"""

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from django.db.models import (
    Avg,
    Count,
    Exists,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    StringAgg,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from accounts.models import User
from conversations.models import Conversation, ConversationStatus

from .models import ConversationMetrics, Segment, SegmentEnd, SegmentKind

CSAT_SCORES = ("1", "2", "3", "4", "5")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportFilters:
    date_from: datetime
    date_to: datetime
    department_id: int | None = None
    agent_id: int | None = None
    tag_id: int | None = None  # the conversation has this tag
    business_hours: bool = False
    bucket: str = "day"  # hour | day

    def column(self, name: str) -> str:
        """The stored column of a duration: wall-clock, or only open hours."""
        return f"business_{name}" if self.business_hours else name


def _seconds(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def metrics_list(*, filters: ReportFilters) -> QuerySet[ConversationMetrics]:
    """The roll-ups of the conversations the filters select."""
    qs = ConversationMetrics.objects.filter(
        opened_at__gte=filters.date_from, opened_at__lt=filters.date_to
    )
    if filters.department_id is not None:
        qs = qs.filter(department_id=filters.department_id)
    if filters.agent_id is not None:
        qs = qs.filter(
            Exists(
                Segment.objects.filter(
                    conversation_id=OuterRef("conversation_id"),
                    kind=SegmentKind.AGENT,
                    agent_id=filters.agent_id,
                )
            )
        )
    if filters.tag_id is not None:
        tagged = Conversation.tags.through.objects.filter(
            conversation_id=OuterRef("conversation_id"), tag_id=filters.tag_id
        )
        qs = qs.filter(Exists(tagged))
    return qs.order_by()


def _tag_names() -> Subquery:
    """The conversation's tag names, ``; ``-separated, by name (one column of the CSV row)."""
    names = (
        Conversation.tags.through.objects.filter(conversation_id=OuterRef("conversation_id"))
        .order_by()
        .values("conversation_id")
        .annotate(tag_names=StringAgg("tag__name", delimiter=Value("; "), order_by="tag__name"))
        .values("tag_names")  # type: ignore[misc]  # the stubs miss annotations on a through model
    )
    return Subquery(names)


def _conversation_aggregates(filters: ReportFilters) -> dict[str, Any]:
    col = filters.column
    aggregates: dict[str, Any] = {"total": Count("pk")}
    for value in ConversationStatus.values:
        aggregates[value] = Count("pk", filter=Q(conversation__status=value))
    for name in (
        "bot_seconds",
        "queue_wait_seconds",
        "first_response_seconds",
        "handling_seconds",
        "resolution_seconds",
    ):
        aggregates[name] = Avg(col(name))
    aggregates["messages"] = Avg(F("messages_in") + F("messages_out"), output_field=FloatField())
    aggregates["transfers"] = Coalesce(Sum("transfers"), Value(0))
    aggregates["csat_average"] = Avg("csat_score")
    aggregates["csat_responses"] = Count("csat_score")
    for score in CSAT_SCORES:
        aggregates[f"csat_{score}"] = Count("pk", filter=Q(csat_score=int(score)))
    return aggregates


def _by_status(row: Mapping[str, Any]) -> dict[str, int]:
    return {value: row[value] for value in ConversationStatus.values}


def _csat(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "average": _seconds(row["csat_average"]),
        "responses": row["csat_responses"],
        "distribution": {score: row[f"csat_{score}"] for score in CSAT_SCORES},
    }


def _conversation_figures(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "total": row["total"],
        "by_status": _by_status(row),
        "bot_seconds_avg": _seconds(row["bot_seconds"]),
        "queue_wait_seconds_avg": _seconds(row["queue_wait_seconds"]),
        "first_response_seconds_avg": _seconds(row["first_response_seconds"]),
        "handling_seconds_avg": _seconds(row["handling_seconds"]),
        "resolution_seconds_avg": _seconds(row["resolution_seconds"]),
        "messages_avg": _seconds(row["messages"]),
        "transfers": row["transfers"],
        "csat": _csat(row),
    }


def _agent_segments(filters: ReportFilters, metrics: QuerySet[ConversationMetrics]) -> Any:
    col = filters.column
    segments = Segment.objects.filter(
        kind=SegmentKind.AGENT,
        agent__isnull=False,
        conversation_id__in=metrics.values("conversation_id"),
    )
    if filters.agent_id is not None:
        segments = segments.filter(agent_id=filters.agent_id)
    aggregates: dict[str, Any] = {
        "total": Count("conversation", distinct=True),
        "segments": Count("pk"),
        "first_response": Avg(col("first_reply_seconds")),
        "handling": Avg(col("seconds")),
        "handling_total": Coalesce(Sum(col("seconds")), Value(0.0)),
        "messages_in": Coalesce(Sum("messages_in"), Value(0)),
        "messages_out": Coalesce(Sum("messages_out"), Value(0)),
        "transfers": Count("pk", filter=Q(ended_by=SegmentEnd.TRANSFERRED)),
    }
    for value in ConversationStatus.values:
        aggregates[value] = Count(
            "conversation", distinct=True, filter=Q(conversation__status=value)
        )
    return (
        segments.order_by()
        .values("agent_id", "agent__name")
        .annotate(**aggregates)
        .order_by("agent__name", "agent_id")
    )


def _agent_csat(metrics: QuerySet[ConversationMetrics]) -> dict[int, dict[str, Any]]:
    """CSAT per agent: a score belongs to the agent of the conversation's last agent segment."""
    aggregates: dict[str, Any] = {
        "csat_average": Avg("csat_score"),
        "csat_responses": Count("csat_score"),
    }
    for score in CSAT_SCORES:
        aggregates[f"csat_{score}"] = Count("pk", filter=Q(csat_score=int(score)))
    rows = (
        metrics.filter(last_agent__isnull=False, csat_score__isnull=False)
        .values("last_agent_id")
        .annotate(**aggregates)
        .order_by()
    )
    return {row["last_agent_id"]: _csat(row) for row in rows}


_NO_CSAT = {
    "average": None,
    "responses": 0,
    "distribution": dict.fromkeys(CSAT_SCORES, 0),
}


def report_stats(*, filters: ReportFilters) -> dict[str, Any]:
    """Contract §9's stats: five queries whatever the number of conversations (overall, per
    department, per agent, agents' CSAT, the series)."""
    metrics = metrics_list(filters=filters)
    aggregates = _conversation_aggregates(filters)
    overall = metrics.aggregate(**aggregates)
    by_department = (
        metrics.values("department_id", "department__name")
        .annotate(**aggregates)
        .order_by("department__name", "department_id")
    )
    agents_csat = _agent_csat(metrics)
    by_agent = [
        {
            "agent": {"id": row["agent_id"], "name": row["agent__name"]},
            "total": row["total"],
            "segments": row["segments"],
            "by_status": _by_status(row),
            "first_response_seconds_avg": _seconds(row["first_response"]),
            "handling_seconds_avg": _seconds(row["handling"]),
            "handling_seconds_total": _seconds(row["handling_total"]),
            "messages_in": row["messages_in"],
            "messages_out": row["messages_out"],
            "transfers": row["transfers"],
            "csat": agents_csat.get(row["agent_id"], _NO_CSAT),
        }
        for row in _agent_segments(filters, metrics)
    ]
    truncate = TruncHour if filters.bucket == "hour" else TruncDay
    series = (
        metrics.annotate(bucket=truncate("opened_at", tzinfo=timezone.get_current_timezone()))
        .values("bucket")
        .annotate(
            conversations=Count("pk"),
            first_response=Avg(filters.column("first_response_seconds")),
            csat_average=Avg("csat_score"),
        )
        .order_by("bucket")
    )
    return {
        "from": filters.date_from,
        "to": filters.date_to,
        "business_hours": filters.business_hours,
        **_conversation_figures(overall),
        "by_department": [
            {
                "department": (
                    {"id": row["department_id"], "name": row["department__name"]}
                    if row["department_id"]
                    else None
                ),
                **_conversation_figures(row),
            }
            for row in by_department
        ],
        "by_agent": by_agent,
        "series": [
            {
                "bucket": row["bucket"],
                "conversations": row["conversations"],
                "first_response_seconds_avg": _seconds(row["first_response"]),
                "csat_average": _seconds(row["csat_average"]),
            }
            for row in series
        ],
    }


# --- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "created_at",
    "customer",
    "phone",
    "department",
    "agents",
    "status",
    "bot_seconds",
    "queue_wait_seconds",
    "first_response_seconds",
    "handling_seconds",
    "resolution_seconds",
    "messages_in",
    "messages_out",
    "transfers",
    "tags",
    "priority",
    "csat_score",
    "csat_comment",
)


def report_rows(*, filters: ReportFilters, chunk_size: int = 1000) -> Iterator[list[Any]]:
    """One row per conversation, oldest first, in :data:`CSV_COLUMNS`' order, read in chunks
    (constant memory): two queries, the desk's users' names and the rows."""
    names = dict(User.objects.values_list("pk", "name"))
    col = filters.column
    rows = (
        metrics_list(filters=filters)
        .annotate(tag_names=_tag_names())
        .order_by("opened_at", "conversation_id")
        .values_list(
            "conversation_id",
            "opened_at",
            "conversation__customer__name",
            "conversation__customer__phone",
            "department__name",
            "agents",
            "conversation__status",
            col("bot_seconds"),
            col("queue_wait_seconds"),
            col("first_response_seconds"),
            col("handling_seconds"),
            col("resolution_seconds"),
            "messages_in",
            "messages_out",
            "transfers",
            "csat_score",
            "csat_comment",
            "conversation__priority",
            "tag_names",
        )
    )
    zone = timezone.get_current_timezone()
    for row in rows.iterator(chunk_size=chunk_size):
        (pk, opened, customer, phone, department, agents, status, *durations) = row[:12]
        messages_in, messages_out, transfers, csat_score, csat_comment, priority, tags = row[12:]
        yield [
            pk,
            opened.astimezone(zone).isoformat(),
            customer,
            phone,
            department or "",
            "; ".join(names.get(agent_id, str(agent_id)) for agent_id in agents or []),
            status,
            *("" if value is None else round(value, 1) for value in durations),
            messages_in,
            messages_out,
            transfers,
            tags or "",
            priority,
            "" if csat_score is None else csat_score,
            csat_comment,
        ]
