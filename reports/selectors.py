"""The reports' reads (contract §9): stats and CSV rows, aggregate queries over the roll-ups
(:class:`ConversationMetrics`) and the agents' segments, never over messages.

Filters select conversations: created in ``[date_from, date_to)``, in a department (the one
they are in now, or were closed in), handled by an agent (one of its segments), with a tag
(on the conversation). ``business_hours`` reads the business-hours twin of
every duration.
"""

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.db.models import (
    Avg,
    Count,
    Exists,
    F,
    Min,
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

from accounts import presence
from accounts.models import Role, User
from common.replica import read_alias
from conversations.models import Conversation, ConversationStatus
from departments.models import Department

from . import rollups
from .models import (
    LOWER_IS_BETTER,
    ConversationMetrics,
    DailyAgentRollup,
    DailyRollup,
    Goal,
    GoalMetric,
    Segment,
    SegmentEnd,
    SegmentKind,
)

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


_DURATIONS = (
    "bot_seconds",
    "queue_wait_seconds",
    "first_response_seconds",
    "handling_seconds",
    "resolution_seconds",
)


def _tag_names() -> Subquery:
    """The conversation's tag names, ``; ``-separated, by name (one column of the CSV row).

    SQLite before 3.44 cannot order inside an aggregate: there they come in table order."""
    features = connection.features
    ordered: dict[str, Any] = (
        {"order_by": "tag__name"} if features.supports_aggregate_order_by_clause else {}
    )
    names = (
        Conversation.tags.through.objects.filter(conversation_id=OuterRef("conversation_id"))
        .order_by()
        .values("conversation_id")
        .annotate(tag_names=StringAgg("tag__name", delimiter=Value("; "), **ordered))
        .values("tag_names")  # type: ignore[misc]  # the stubs miss annotations on a through model
    )
    return Subquery(names)


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
    with connections[read_alias()].cursor() as cursor:  # a replica's, in replica_reads()
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


# --- The daily roll-ups' reads (the same rows and figures, for whole days) ----------------------


def _rollup_days(filters: ReportFilters) -> tuple[date, date] | None:
    """The local days ``[first, last)`` the range is made of, when the daily roll-ups can answer
    it: on PostgreSQL, a range of whole days in ``TIME_ZONE`` (the days the roll-ups are kept
    by), no tag filter (a conversation's tags are not in them). None: read the rows."""
    zone = timezone.get_current_timezone()
    if not rollups.enabled() or filters.tag_id is not None:
        return None
    if getattr(zone, "key", None) != settings.TIME_ZONE:
        return None
    days = []
    for moment in (filters.date_from, filters.date_to):
        day = timezone.localtime(moment, zone).date()
        if timezone.make_aware(datetime.combine(day, time.min), zone) != moment:
            return None
        days.append(day)
    return days[0], days[1]


def _sql_rows(query: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    with connections[read_alias()].cursor() as cursor:  # a replica's, in replica_reads()
        cursor.execute(query, params)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _csat_sums(table: str) -> str:
    return ", ".join(
        [
            f"sum({table}.csat_sum) AS csat_sum",
            f"sum({table}.csat_responses) AS csat_responses",
            *(f"sum({table}.csat_{score}) AS csat_{score}" for score in CSAT_SCORES),
        ]
    )


_DAILY_DEPARTMENTS_SQL = """
SELECT r.department AS department_id, d.name AS department__name, {columns}
FROM {daily} AS r LEFT JOIN {departments} AS d ON d.id = r.department
WHERE r.day >= %s AND r.day < %s {only_department}
GROUP BY r.department, d.name
HAVING sum(r.total) > 0
ORDER BY d.name, r.department
"""


def _only_department(filters: ReportFilters) -> tuple[str, list[Any]]:
    if filters.department_id is None:
        return "", []
    return "AND r.department = %s", [filters.department_id]


def _daily_departments(filters: ReportFilters, days: tuple[date, date]) -> list[dict[str, Any]]:
    """:func:`_conversation_aggregates`' rows, per department, from the daily roll-ups."""
    statuses = ConversationStatus.values
    columns = [
        "sum(r.total) AS total",
        *(f"coalesce(sum(r.total) FILTER (WHERE r.status = %s), 0) AS {v}" for v in statuses),
        *(
            f"sum(r.{filters.column(name)}_{part}) AS {name}_{part}"
            for name in _DURATIONS
            for part in ("sum", "n")
        ),
        "sum(r.messages) AS messages_sum",
        "sum(r.transfers) AS transfers",
        _csat_sums("r"),
    ]
    only_department, department_params = _only_department(filters)
    query = _DAILY_DEPARTMENTS_SQL.format(
        columns=", ".join(columns),
        daily=DailyRollup._meta.db_table,
        departments=Department._meta.db_table,
        only_department=only_department,
    )
    rows = _sql_rows(query, [*statuses, *days, *department_params])
    for row in rows:
        row["department_id"] = row["department_id"] or None
    return rows


_DAILY_AGENTS_SQL = """
SELECT a.*, u.name FROM (
    SELECT r.agent AS agent_id,
           sum(r.conversations) AS total,
           sum(r.segments) AS segments,
           sum(r.{first_reply}_sum) / nullif(sum(r.{first_reply}_n), 0) AS first_response,
           sum(r.{seconds}_sum) / nullif(sum(r.{seconds}_n), 0) AS handling,
           coalesce(sum(r.{seconds}_sum), 0.0) AS handling_total,
           sum(r.messages_in) AS messages_in,
           sum(r.messages_out) AS messages_out,
           sum(r.transfers) AS transfers,
           {by_status},
           {csat}
    FROM {daily} AS r
    WHERE r.day >= %s AND r.day < %s {only_department} {only_agent}
    GROUP BY r.agent
    HAVING sum(r.segments) > 0
) AS a
JOIN {users} AS u ON u.id = a.agent_id
ORDER BY u.name, a.agent_id
"""


def _daily_agents(filters: ReportFilters, days: tuple[date, date]) -> list[dict[str, Any]]:
    """:func:`_agent_segments`' rows, each with its CSAT sums, from the daily roll-ups."""
    statuses = ConversationStatus.values
    only_department, department_params = _only_department(filters)
    only_agent, agent_params = (
        ("AND r.agent = %s", [filters.agent_id]) if filters.agent_id else ("", [])
    )
    query = _DAILY_AGENTS_SQL.format(
        first_reply=filters.column("first_reply_seconds"),
        seconds=filters.column("seconds"),
        by_status=", ".join(
            f"coalesce(sum(r.conversations) FILTER (WHERE r.status = %s), 0) AS {value}"
            for value in statuses
        ),
        csat=_csat_sums("r"),
        daily=DailyAgentRollup._meta.db_table,
        only_department=only_department,
        only_agent=only_agent,
        users=User._meta.db_table,
    )
    rows = _sql_rows(query, [*statuses, *days, *department_params, *agent_params])
    for row in rows:
        row["agent_name"] = row.pop("name")
    return rows


def _csat_of_sums(row: Mapping[str, Any]) -> dict[str, Any]:
    return _csat({**row, "csat_average": _avg(row["csat_sum"], row["csat_responses"])})


_DAILY_SERIES_SQL = """
SELECT r.day,
       sum(r.total) AS conversations,
       sum(r.{first_response}_sum) / nullif(sum(r.{first_response}_n), 0) AS first_response,
       sum(r.csat_sum) AS csat_sum,
       sum(r.csat_responses) AS csat_responses
FROM {daily} AS r
WHERE r.day >= %s AND r.day < %s {only_department}
GROUP BY r.day
HAVING sum(r.total) > 0
ORDER BY r.day
"""


def _daily_series(filters: ReportFilters, days: tuple[date, date]) -> list[dict[str, Any]]:
    """The series by day from the daily roll-ups (each bucket the day's local midnight, as
    ``TruncDay`` gives it)."""
    only_department, department_params = _only_department(filters)
    query = _DAILY_SERIES_SQL.format(
        first_response=filters.column("first_response_seconds"),
        daily=DailyRollup._meta.db_table,
        only_department=only_department,
    )
    zone = timezone.get_current_timezone()
    return [
        {
            "bucket": timezone.make_aware(datetime.combine(row["day"], time.min), zone),
            "conversations": row["conversations"],
            "first_response": row["first_response"],
            "csat_average": _avg(row["csat_sum"], row["csat_responses"]),
        }
        for row in _sql_rows(query, [*days, *department_params])
    ]


def _series(filters: ReportFilters, metrics: QuerySet[ConversationMetrics]) -> Any:
    truncate = TruncHour if filters.bucket == "hour" else TruncDay
    return (
        metrics.annotate(bucket=truncate("opened_at", tzinfo=timezone.get_current_timezone()))
        .values("bucket")
        .annotate(
            conversations=Count("pk"),
            first_response=Avg(filters.column("first_response_seconds")),
            csat_average=Avg("csat_score"),
        )
        .order_by("bucket")
    )


def report_stats(*, filters: ReportFilters, read_rollups: bool = True) -> dict[str, Any]:
    """Contract §9's stats: four queries whatever the number of conversations (per department,
    whose rows add up to the overall figures; per agent; agents' CSAT; the series). A range of
    whole days reads the daily roll-ups instead of the rows (:func:`_rollup_days`): per
    department and the series (unless an agent filters them, or the buckets are hours), per
    agent with its CSAT (one query for both): three queries. ``read_rollups=False`` reads the
    rows whatever the range (the tests hold the two answers equal)."""
    metrics = metrics_list(filters=filters)
    days = _rollup_days(filters) if read_rollups else None
    conversations_daily = days is not None and filters.agent_id is None
    by_department: list[dict[str, Any]]
    if days is not None and conversations_daily:
        by_department = _daily_departments(filters, days)
    else:
        by_department = [
            dict(row)
            for row in metrics.values("department_id", "department__name")
            .annotate(**_conversation_aggregates(filters))
            .order_by("department__name", "department_id")
        ]
    overall = _added(by_department)
    if days is not None:
        agent_rows = _daily_agents(filters, days)
        agents_csat = {row["agent_id"]: _csat_of_sums(row) for row in agent_rows}
    else:
        agents_csat = _agent_csat(metrics)
        agent_rows = _agent_segments(filters, metrics)
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
        for row in agent_rows
    ]
    if days is not None and conversations_daily and filters.bucket == "day":
        series = _daily_series(filters, days)
    else:
        series = _series(filters, metrics)
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


# --- Live counters -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class LiveCounters:
    waiting: int  # pending: in a queue, waiting for an agent
    waiting_since: datetime | None  # when the longest-waiting one entered its queue
    agents_online: int
    agents: int
    today: int  # conversations created today, in the desk's time zone
    oldest_wait_seconds: float | None  # now - waiting_since


def report_live_counters(*, department_id: int | None = None) -> LiveCounters:
    """What the desk looks like now (the reports page's headline, refreshed live): two queries
    and one presence look-up in the cache, whatever the number of conversations. A department
    narrows every figure to it (its conversations, its members)."""
    conversations = Conversation.objects.order_by()
    people = User.objects.people().filter(is_active=True, role__in=[Role.AGENT, Role.SUPERVISOR])
    if department_id is not None:
        conversations = conversations.filter(department_id=department_id)
        people = people.filter(memberships__department_id=department_id)
    # A pending conversation waits since its open queue segment started (a reopening or a
    # transfer to a queue restarts the wait); one from before the reports since its last message.
    queue_start = Segment.objects.filter(
        conversation_id=OuterRef("pk"), kind=SegmentKind.QUEUE, ended_at__isnull=True
    ).values("started_at")[:1]
    midnight = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    pending = Q(status=ConversationStatus.PENDING)
    row = conversations.annotate(
        queued_at=Coalesce(Subquery(queue_start), F("last_inbound_at"), F("created_at"))
    ).aggregate(
        waiting=Count("pk", filter=pending),
        waiting_since=Min("queued_at", filter=pending),
        today=Count("pk", filter=Q(created_at__gte=midnight)),
    )
    candidates = list(people.values_list("pk", flat=True).distinct())
    online = presence.online_user_ids(candidates=candidates)
    since = row["waiting_since"]
    return LiveCounters(
        waiting=row["waiting"],
        waiting_since=since,
        oldest_wait_seconds=(timezone.now() - since).total_seconds() if since else None,
        agents_online=len(online),
        agents=len(candidates),
        today=row["today"],
    )


# --- Goals -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class GoalProgress:
    goal: Goal
    value: float | None  # the figure over the page's range; None: no data yet
    met: bool | None  # None: no data
    percent: int  # how far along the bar is, 0..100 (100: met)

    @property
    def lower_is_better(self) -> bool:
        return self.goal.metric in LOWER_IS_BETTER


def goal_list_active() -> QuerySet[Goal]:
    return Goal.objects.filter(is_active=True).select_related("agent", "department")


def _goal_value(goal: Goal, row: Mapping[str, Any] | None, days: float) -> float | None:
    if row is None:
        return None
    if goal.metric == GoalMetric.CONVERSATIONS_PER_DAY:
        return round(row["total"] / days, 1) if days > 0 else None
    if goal.metric == GoalMetric.CSAT:
        return row["csat"]["average"]
    return row[f"{goal.metric}_avg"]


def goal_progress(
    *, target: float, value: float | None, lower_is_better: bool
) -> tuple[bool | None, int]:
    """(met, percent of the bar). Lower is better: met at or under the target, the bar full
    then and shorter the further above it (target / value). Higher is better: value / target."""
    if value is None:
        return None, 0
    if lower_is_better:
        met = value <= target
        ratio = 1.0 if value <= 0 else target / value
    else:
        met = value >= target
        ratio = value / target if target > 0 else 1.0
    return met, max(0, min(100, round(ratio * 100)))


def goal_list_progress(*, goals: Sequence[Goal], stats: Mapping[str, Any]) -> list[GoalProgress]:
    """Each goal against :func:`report_stats`' figures for the same filters (no query): an
    agent's goal reads its ``by_agent`` row, a department's its ``by_department`` row;
    conversations per day divide by the range's length in days."""
    agents = {row["agent"]["id"]: row for row in stats["by_agent"]}
    departments = {
        row["department"]["id"]: row for row in stats["by_department"] if row["department"]
    }
    days = (stats["to"] - stats["from"]).total_seconds() / 86400
    progress = []
    for goal in goals:
        row = agents.get(goal.agent_id) if goal.agent_id else departments.get(goal.department_id)
        value = _goal_value(goal, row, days)
        met, percent = goal_progress(
            target=goal.target, value=value, lower_is_better=goal.metric in LOWER_IS_BETTER
        )
        progress.append(GoalProgress(goal=goal, value=value, met=met, percent=percent))
    return progress


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


def report_rows(
    *, filters: ReportFilters, chunk_size: int = 1000, using: str = "default"
) -> Iterator[list[Any]]:
    """One row per conversation, oldest first, in :data:`CSV_COLUMNS`' order, read in chunks
    (constant memory) from the database ``using``: two queries, the desk's users' names and the
    rows."""
    names = dict(User.objects.using(using).values_list("pk", "name"))
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
    in_order = connection.features.supports_aggregate_order_by_clause  # else sorted here
    for row in rows.using(using).iterator(chunk_size=chunk_size):
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
            tags if not tags or in_order else "; ".join(sorted(tags.split("; "))),
            priority,
            "" if csat_score is None else csat_score,
            csat_comment,
        ]
