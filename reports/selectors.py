"""The reports' reads (contract §9): stats and CSV rows, aggregate queries over the roll-ups
(:class:`ConversationMetrics`) and the agents' segments, never over messages.

Filters select conversations: created in ``[date_from, date_to)``, in a department (the one
they are in now, or were closed in), handled by an agent (one of its segments), with a tag
(accepted and ignored until tags exist). ``business_hours`` reads the business-hours twin of
every duration.
"""

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import (
    Avg,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from accounts.models import User
from conversations.models import ConversationStatus

from .models import ConversationMetrics, Segment, SegmentEnd, SegmentKind

CSAT_SCORES = ("1", "2", "3", "4", "5")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportFilters:
    date_from: datetime
    date_to: datetime
    department_id: int | None = None
    agent_id: int | None = None
    tag_id: int | None = None  # no tags yet: accepted, ignored
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
    return qs.order_by()


_DURATIONS = (
    "bot_seconds",
    "queue_wait_seconds",
    "first_response_seconds",
    "handling_seconds",
    "resolution_seconds",
)


def _conversation_aggregates(filters: ReportFilters) -> dict[str, Any]:
    """Sums and counts, not averages, so that groups add up (the overall figures are the sum of
    the per-department rows): ``Avg(x)`` is ``Sum(x) / Count(x)``, as PostgreSQL computes it."""
    col = filters.column
    aggregates: dict[str, Any] = {"total": Count("pk")}
    for value in ConversationStatus.values:
        aggregates[value] = Count("pk", filter=Q(status=value))
    for name in _DURATIONS:
        aggregates[f"{name}_sum"] = Sum(col(name))
        aggregates[f"{name}_n"] = Count(col(name))
    aggregates["messages_sum"] = Coalesce(Sum(F("messages_in") + F("messages_out")), Value(0))
    aggregates["transfers"] = Coalesce(Sum("transfers"), Value(0))
    aggregates["csat_sum"] = Sum("csat_score")
    aggregates["csat_responses"] = Count("csat_score")
    for score in CSAT_SCORES:
        aggregates[f"csat_{score}"] = Count("pk", filter=Q(csat_score=int(score)))
    return aggregates


_ADDED = (
    "total",
    *ConversationStatus.values,
    *(f"{name}_{part}" for name in _DURATIONS for part in ("sum", "n")),
    "messages_sum",
    "transfers",
    "csat_sum",
    "csat_responses",
    *(f"csat_{score}" for score in CSAT_SCORES),
)


_NULLABLE = {*(f"{name}_sum" for name in _DURATIONS), "csat_sum"}


def _added(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The groups' sums and counts added up (a sum of no value stays None, as in SQL)."""
    total: dict[str, Any] = {}
    for key in _ADDED:
        values = [row[key] for row in rows if row[key] is not None]
        total[key] = sum(values) if values or key not in _NULLABLE else None
    return total


def _avg(total: Any, count: int) -> float | None:
    return total / count if count and total is not None else None


def _by_status(row: Mapping[str, Any]) -> dict[str, int]:
    return {value: row[value] for value in ConversationStatus.values}


def _csat(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "average": _seconds(row["csat_average"]),
        "responses": row["csat_responses"],
        "distribution": {score: row[f"csat_{score}"] for score in CSAT_SCORES},
    }


def _conversation_figures(row: Mapping[str, Any]) -> dict[str, Any]:
    averages = {
        f"{name}_avg": _seconds(_avg(row[f"{name}_sum"], row[f"{name}_n"])) for name in _DURATIONS
    }
    return {
        "total": row["total"],
        "by_status": _by_status(row),
        **averages,
        "messages_avg": _seconds(_avg(row["messages_sum"], row["total"])),
        "transfers": row["transfers"],
        "csat": _csat({**row, "csat_average": _avg(row["csat_sum"], row["csat_responses"])}),
    }


_AGENT_SQL = """
SELECT a.*, u.name FROM (
    SELECT s.agent_id,
           count(*) FILTER (WHERE s.agent_first) AS total,
           count(*) AS segments,
           avg(s.{first_reply}) AS first_response,
           avg(s.{seconds}) AS handling,
           coalesce(sum(s.{seconds}), 0.0) AS handling_total,
           coalesce(sum(s.messages_in), 0) AS messages_in,
           coalesce(sum(s.messages_out), 0) AS messages_out,
           count(*) FILTER (WHERE s.ended_by = %s) AS transfers,
           {by_status}
    FROM reports_segment AS s
    JOIN ({metrics}) AS m ON m.conversation_id = s.conversation_id
    WHERE s.kind = %s AND s.agent_id IS NOT NULL {only_agent}
    GROUP BY s.agent_id
) AS a
JOIN {users} AS u ON u.id = a.agent_id
ORDER BY u.name, a.agent_id
"""


def _agent_segments(
    filters: ReportFilters, metrics: QuerySet[ConversationMetrics]
) -> list[dict[str, Any]]:
    """Each agent's own handling segments in the selected conversations; its conversations
    (by status) counted by its first segment in each (``Segment.agent_first``). Raw SQL: the
    status is the roll-up's, joined on the conversation's id (through the ORM: a join of the
    conversations too), and the names are joined after the grouping (grouping or sorting 100k
    segments by a text column was most of the time; docs/reports.md, Performance)."""
    metrics_sql, metrics_params = metrics.values(
        "conversation_id", "status"
    ).query.sql_with_params()
    only_agent, agent_params = (
        ("AND s.agent_id = %s", [filters.agent_id]) if filters.agent_id else ("", [])
    )
    statuses = ConversationStatus.values
    query = _AGENT_SQL.format(
        first_reply=filters.column("first_reply_seconds"),
        seconds=filters.column("seconds"),
        metrics=metrics_sql,
        only_agent=only_agent,
        users=User._meta.db_table,
        by_status=", ".join(
            f"count(*) FILTER (WHERE s.agent_first AND m.status = %s) AS {value}"
            for value in statuses
        ),
    )
    params = [SegmentEnd.TRANSFERRED, *statuses, *metrics_params, SegmentKind.AGENT, *agent_params]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        columns = [column[0] for column in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["agent_name"] = row.pop("name")
    return rows


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
    """Contract §9's stats: four queries whatever the number of conversations (per department,
    whose rows add up to the overall figures; per agent; agents' CSAT; the series)."""
    metrics = metrics_list(filters=filters)
    by_department = list(
        metrics.values("department_id", "department__name")
        .annotate(**_conversation_aggregates(filters))
        .order_by("department__name", "department_id")
    )
    overall = _added(by_department)
    agents_csat = _agent_csat(metrics)
    by_agent = [
        {
            "agent": {"id": row["agent_id"], "name": row["agent_name"]},
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
        )
    )
    zone = timezone.get_current_timezone()
    for row in rows.iterator(chunk_size=chunk_size):
        (pk, opened, customer, phone, department, agents, status, *durations) = row[:12]
        messages_in, messages_out, transfers, csat_score, csat_comment = row[12:]
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
            "",  # tags: not in the desk yet
            "",  # priority: not in the desk yet
            "" if csat_score is None else csat_score,
            csat_comment,
        ]
