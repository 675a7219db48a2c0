"""The daily roll-ups' writes (:class:`DailyRollup`, :class:`DailyAgentRollup`): what the stats
read for whole days instead of a pass over every conversation of the range (docs/reports.md).

A roll-up row ("cell") holds sums and counts of the conversations created on one local day
(``TIME_ZONE``) in one department with one status, and of one agent's segments in them, so its
figures are a recomputation of those rows, never a running total that could drift:

- a change of hands, a closing, a reopening, an agent's reply, a CSAT answer and the rebuild
  **recompute** the cells the changed conversations were in and are in now (:func:`refresh`):
  the cells are created if missing, locked (``FOR UPDATE``, in id order), then recomputed from
  the rows in a later statement, whose snapshot sees every change committed before the lock;
- messages that only count are **added** to the cells of their conversations in the same
  statement that adds them to the roll-up and the open segment (:func:`count_messages`): an
  integer added in place, on the row's latest version, so concurrent writers never lose one.

A cell is never deleted (a concurrent addition would be lost with it): a cell emptied by a change
of status keeps zeros, and the reads leave those out. PostgreSQL only (:data:`ENABLED`).
"""

# The SQL is built from this module's constants (tables, columns), never from input: the values
# are parameters.
# ruff: noqa: S608

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection

from .models import (
    ConversationMetrics,
    DailyAgentRollup,
    DailyRollup,
    Segment,
    SegmentEnd,
    SegmentKind,
)

CSAT_SCORES = (1, 2, 3, 4, 5)
DURATIONS = (
    "bot_seconds",
    "queue_wait_seconds",
    "first_response_seconds",
    "handling_seconds",
    "resolution_seconds",
)
SEGMENT_DURATIONS = ("first_reply_seconds", "seconds")


def enabled() -> bool:
    """The roll-ups are kept and read on PostgreSQL (on SQLite, the demo, the stats read the
    conversations' rows: the same figures, one pass over them)."""
    return connection.vendor == "postgresql"


def _both(names: Iterable[str]) -> list[str]:
    return [column for name in names for column in (name, f"business_{name}")]


def _csat_columns(score: str) -> list[tuple[str, str]]:
    return [
        ("csat_sum", f"sum({score})"),
        ("csat_responses", f"count({score})"),
        *((f"csat_{n}", f"count(*) FILTER (WHERE {score} = {n})") for n in CSAT_SCORES),
    ]


# Each cell column and how it is computed from its conversations' rows (``m``: the roll-ups of
# the conversations, ``s``: the agent's segments in them).
CONVERSATION_COLUMNS: list[tuple[str, str]] = [
    ("total", "count(m.conversation_id)"),
    *(
        (f"{column}_{part}", f"{aggregate}(m.{column})")
        for column in _both(DURATIONS)
        for part, aggregate in (("sum", "sum"), ("n", "count"))
    ),
    ("messages", "coalesce(sum(m.messages_in + m.messages_out), 0)"),
    ("transfers", "coalesce(sum(m.transfers), 0)"),
    *_csat_columns("m.csat_score"),
]
AGENT_SEGMENT_COLUMNS: list[tuple[str, str]] = [
    ("conversations", "count(*) FILTER (WHERE s.agent_first)"),
    ("segments", "count(s.id)"),
    *(
        (f"{column}_{part}", f"{aggregate}(s.{column})")
        for column in _both(SEGMENT_DURATIONS)
        for part, aggregate in (("sum", "sum"), ("n", "count"))
    ),
    ("messages_in", "coalesce(sum(s.messages_in), 0)"),
    ("messages_out", "coalesce(sum(s.messages_out), 0)"),
    ("transfers", f"count(*) FILTER (WHERE s.ended_by = '{SegmentEnd.TRANSFERRED}')"),
]
AGENT_CSAT_COLUMNS = _csat_columns("m.csat_score")

_T_CONVERSATIONS = DailyRollup._meta.db_table
_T_AGENTS = DailyAgentRollup._meta.db_table
_T_METRICS = ConversationMetrics._meta.db_table
_T_SEGMENTS = Segment._meta.db_table


def _day(column: str) -> str:
    return f"({column} AT TIME ZONE %(tz)s)::date"


# The conversations created on the keys' days (each day an index range of ``opened_at``: local
# midnight to the next, as the API's whole days are), and their cell's key. The days are
# parameters, each range a condition of its own: the planner estimates each range's rows (joined
# to a list of days, it guesses thousands of rows, a plan costly enough for JIT compilation:
# ~100 ms for one conversation).
def _of_days(columns: str, days: int) -> str:
    ranges = " OR ".join(
        f"(m.opened_at >= (%(day_{n})s::date::timestamp AT TIME ZONE %(tz)s)"
        f" AND m.opened_at < ((%(day_{n})s::date + 1)::timestamp AT TIME ZONE %(tz)s))"
        for n in range(days)
    )
    return (
        f"SELECT {_day('m.opened_at')} AS day, coalesce(m.department_id, 0) AS department,"
        f" m.status, {columns} FROM {_T_METRICS} AS m WHERE ({ranges})"
    )


# The cells the conversations are in now (their roll-ups) and were in before (``before``: the
# states the caller read before changing them), created when missing; returns them all.
_KEYS_SQL = f"""
WITH states AS (
    SELECT conversation_id, opened_at, department_id, status, agents
    FROM {_T_METRICS} WHERE %(all)s OR conversation_id = ANY(%(ids)s::bigint[])
    UNION ALL
    SELECT * FROM jsonb_to_recordset(%(before)s::jsonb) AS b(
        conversation_id bigint, opened_at timestamptz, department_id bigint, status text,
        agents jsonb)
),
keys AS (
    SELECT {_day("opened_at")} AS day, coalesce(department_id, 0) AS department, status
    FROM states
    UNION
    SELECT day, department, status FROM {_T_CONVERSATIONS} WHERE %(all)s
),
agent_keys AS (
    SELECT {_day("s.opened_at")} AS day, a.agent::bigint AS agent,
           coalesce(s.department_id, 0) AS department, s.status
    FROM states AS s CROSS JOIN LATERAL jsonb_array_elements_text(s.agents) AS a(agent)
    UNION
    SELECT day, agent, department, status FROM {_T_AGENTS} WHERE %(all)s
),
new_cells AS (
    INSERT INTO {_T_CONVERSATIONS} (created_at, updated_at, day, department, status)
    SELECT now(), now(), day, department, status FROM keys ORDER BY day, department, status
    ON CONFLICT DO NOTHING
),
new_agent_cells AS (
    INSERT INTO {_T_AGENTS} (created_at, updated_at, day, agent, department, status)
    SELECT now(), now(), day, agent, department, status FROM agent_keys
    ORDER BY day, agent, department, status
    ON CONFLICT DO NOTHING
)
SELECT day, 0, department, status FROM keys
UNION ALL
SELECT day, agent, department, status FROM agent_keys
"""

_CONVERSATION_KEYS = (
    "unnest(%(days)s::date[], %(departments)s::bigint[], %(statuses)s::text[])"
    " AS k(day, department, status)"
)
_AGENT_KEYS = (
    "unnest(%(a_days)s::date[], %(a_agents)s::bigint[], %(a_departments)s::bigint[],"
    " %(a_statuses)s::text[]) AS k(day, agent, department, status)"
)

_LOCK_SQL = f"""
WITH cells AS (
    SELECT r.id FROM {_T_CONVERSATIONS} AS r JOIN {_CONVERSATION_KEYS}
        ON r.day = k.day AND r.department = k.department AND r.status = k.status
    ORDER BY r.id FOR UPDATE OF r
),
agent_cells AS (
    SELECT r.id FROM {_T_AGENTS} AS r JOIN {_AGENT_KEYS}
        ON r.day = k.day AND r.agent = k.agent AND r.department = k.department
        AND r.status = k.status
    ORDER BY r.id FOR UPDATE OF r
)
SELECT (SELECT count(*) FROM cells), (SELECT count(*) FROM agent_cells)
"""


def _upsert(table: str, key: str, columns: Sequence[str], select: str) -> str:
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in ("updated_at", *columns))
    return (
        f"INSERT INTO {table} (created_at, updated_at, {key}, {names}) {select}"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


def _selected(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{sql} AS {name}" for name, sql in columns)


def _recompute_sql(days: int) -> str:
    """Every cell of the keys recomputed from the rows of its day (one pass over the ``days``
    keys' days, grouped by cell; a key without rows gets zeros), upserted."""
    metric_columns = ", ".join(
        f"m.{c}"
        for c in (
            "conversation_id",
            *_both(DURATIONS),
            "messages_in",
            "messages_out",
            "transfers",
            "csat_score",
        )
    )
    segment_columns = (
        "s.id, s.agent_id AS agent, s.agent_first, s.ended_by, s.messages_in, s.messages_out, "
        + ", ".join(f"s.{c}" for c in _both(SEGMENT_DURATIONS))
    )
    conversation_keys = "(day, department, status)"
    agent_keys = "(day, agent, department, status)"
    rows = f"rows AS MATERIALIZED ({_of_days(metric_columns, days)})"
    agent_rows = (
        f"agent_rows AS MATERIALIZED (SELECT m.day, m.department, m.status, {segment_columns}"
        f" FROM ({_of_days('m.conversation_id', days)}) AS m"
        # each conversation's segments by its index (OFFSET 0: not flattened into a hash join
        # of every agent segment, which the planner's guess of the days' rows would pick)
        f" CROSS JOIN LATERAL (SELECT * FROM {_T_SEGMENTS} AS s"
        f" WHERE s.conversation_id = m.conversation_id"
        f" AND s.kind = '{SegmentKind.AGENT}' AND s.agent_id IS NOT NULL OFFSET 0) AS s)"
    )
    answered = (
        "answered AS MATERIALIZED ("
        + _of_days("m.last_agent_id AS agent, m.csat_score", days)
        + " AND m.last_agent_id IS NOT NULL AND m.csat_score IS NOT NULL)"
    )
    figures = (
        f"figures AS (SELECT k.day, k.department, k.status, {_selected(CONVERSATION_COLUMNS)}"
        f" FROM k LEFT JOIN rows AS m USING {conversation_keys}"
        " GROUP BY k.day, k.department, k.status)"
    )
    agent_figures = (
        f"agent_figures AS (SELECT k.day, k.agent, k.department, k.status,"
        f" {_selected(AGENT_SEGMENT_COLUMNS)}"
        f" FROM ka AS k LEFT JOIN agent_rows AS s USING {agent_keys}"
        " GROUP BY k.day, k.agent, k.department, k.status)"
    )
    agent_csat = (
        f"agent_csat AS (SELECT k.day, k.agent, k.department, k.status,"
        f" {_selected(AGENT_CSAT_COLUMNS)}"
        f" FROM ka AS k LEFT JOIN answered AS m USING {agent_keys}"
        " GROUP BY k.day, k.agent, k.department, k.status)"
    )
    conversation_names = [name for name, _sql in CONVERSATION_COLUMNS]
    agent_names = [name for name, _sql in (*AGENT_SEGMENT_COLUMNS, *AGENT_CSAT_COLUMNS)]
    cells = _upsert(
        _T_CONVERSATIONS,
        "day, department, status",
        conversation_names,
        f"SELECT now(), now(), day, department, status, {', '.join(conversation_names)}"
        " FROM figures",
    )
    agents = _upsert(
        _T_AGENTS,
        "day, agent, department, status",
        agent_names,
        f"SELECT now(), now(), day, agent, department, status, {', '.join(agent_names)}"
        f" FROM agent_figures JOIN agent_csat USING {agent_keys}",
    )
    return (
        f"WITH k AS (SELECT * FROM {_CONVERSATION_KEYS}), ka AS (SELECT * FROM {_AGENT_KEYS}),"
        f" {rows}, {agent_rows}, {answered}, {figures}, {agent_figures}, {agent_csat},"
        f" cells AS ({cells}) {agents}"
    )


def _state(metrics: ConversationMetrics) -> dict[str, Any]:
    return {
        "conversation_id": metrics.conversation_id,
        "opened_at": metrics.opened_at.isoformat(),
        "department_id": metrics.department_id,
        "status": metrics.status,
        "agents": list(metrics.agents or []),
    }


def states(rows: Iterable[ConversationMetrics]) -> list[dict[str, Any]]:
    """The cells' view of roll-ups read before a change (for :func:`refresh`'s ``before``)."""
    return [_state(row) for row in rows]


DAYS_PER_STATEMENT = 31


def _key_params(keys: Sequence[tuple[Any, ...]], tz: str) -> dict[str, Any]:
    """The keys (``(day, 0 or agent, department, status)``) as the statements' arrays."""
    cells = [(day, department, status) for day, agent, department, status in keys if not agent]
    agent_cells = [key for key in keys if key[1]]
    return {
        "tz": tz,
        "days": [key[0] for key in cells],
        "departments": [key[1] for key in cells],
        "statuses": [key[2] for key in cells],
        "a_days": [key[0] for key in agent_cells],
        "a_agents": [key[1] for key in agent_cells],
        "a_departments": [key[2] for key in agent_cells],
        "a_statuses": [key[3] for key in agent_cells],
    }


def refresh(
    *,
    conversation_ids: Iterable[int] | None,
    before: Sequence[dict[str, Any]] = (),
) -> int:
    """Recompute the cells of these conversations, those their roll-ups are in now and those
    their ``before`` states were in (None: every cell, those of every conversation and those
    left from deleted ones). Three statements: the cells (created when missing), their locks,
    their figures (one per :data:`DAYS_PER_STATEMENT` days). Returns the number of cells."""
    if not enabled():
        return 0
    ids = [] if conversation_ids is None else list(conversation_ids)
    if conversation_ids is not None and not ids and not before:
        return 0
    tz = settings.TIME_ZONE
    with connection.cursor() as cursor:
        cursor.execute(
            _KEYS_SQL,
            {
                "all": conversation_ids is None,
                "ids": ids,
                "before": json.dumps(list(before)),
                "tz": tz,
            },
        )
        keys = cursor.fetchall()
        cursor.execute(_LOCK_SQL, _key_params(keys, tz))
        # A few days at a time (the whole history, for the migration and a full rebuild).
        days = sorted({key[0] for key in keys})
        for start in range(0, len(days), DAYS_PER_STATEMENT):
            some = set(days[start : start + DAYS_PER_STATEMENT])
            params = _key_params([key for key in keys if key[0] in some], tz)
            params.update({f"day_{n}": day for n, day in enumerate(sorted(some))})
            cursor.execute(_recompute_sql(len(some)), params)
    return len(keys)


# Messages that only count: added to the roll-ups (or the open segments) and, in the same
# statement, to the cells of those conversations (or of the open segments' agents).
_COUNT_METRICS_SQL = f"""
WITH counted(conversation_id, n_in, n_out) AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(n_in)s::int[], %(n_out)s::int[])
),
bumped AS (
    UPDATE {_T_METRICS} AS m
    SET messages_in = m.messages_in + c.n_in, messages_out = m.messages_out + c.n_out
    FROM counted AS c WHERE m.conversation_id = c.conversation_id
    RETURNING m.opened_at, m.department_id, m.status, c.n_in + c.n_out AS n
),
cells AS (
    SELECT {_day("opened_at")} AS day, coalesce(department_id, 0) AS department, status,
           sum(n) AS n
    FROM bumped GROUP BY 1, 2, 3
),
locked AS (
    SELECT r.id, cells.n FROM {_T_CONVERSATIONS} AS r JOIN cells
        ON r.day = cells.day AND r.department = cells.department AND r.status = cells.status
    ORDER BY r.id FOR UPDATE OF r
)
UPDATE {_T_CONVERSATIONS} AS r SET messages = r.messages + locked.n, updated_at = now()
FROM locked WHERE r.id = locked.id
"""

_COUNT_SEGMENTS_SQL = f"""
WITH counted(conversation_id, n_in, n_out) AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(n_in)s::int[], %(n_out)s::int[])
),
bumped AS (
    UPDATE {_T_SEGMENTS} AS s
    SET messages_in = s.messages_in + c.n_in, messages_out = s.messages_out + c.n_out
    FROM counted AS c WHERE s.conversation_id = c.conversation_id AND s.ended_at IS NULL
    RETURNING s.conversation_id, s.kind, s.agent_id, c.n_in, c.n_out
),
cells AS (
    SELECT {_day("m.opened_at")} AS day, b.agent_id AS agent,
           coalesce(m.department_id, 0) AS department, m.status,
           sum(b.n_in) AS n_in, sum(b.n_out) AS n_out
    FROM bumped AS b JOIN {_T_METRICS} AS m ON m.conversation_id = b.conversation_id
    WHERE b.kind = '{SegmentKind.AGENT}' AND b.agent_id IS NOT NULL
    GROUP BY 1, 2, 3, 4
),
locked AS (
    SELECT r.id, cells.n_in, cells.n_out FROM {_T_AGENTS} AS r JOIN cells
        ON r.day = cells.day AND r.agent = cells.agent AND r.department = cells.department
        AND r.status = cells.status
    ORDER BY r.id FOR UPDATE OF r
)
UPDATE {_T_AGENTS} AS r
SET messages_in = r.messages_in + locked.n_in, messages_out = r.messages_out + locked.n_out,
    updated_at = now()
FROM locked WHERE r.id = locked.id
"""


def count_messages(counts: dict[int, list[int]]) -> None:
    """Add ``{conversation id: [in, out]}`` to the open segments and the roll-ups, and to their
    cells: two statements for the whole batch, the same two as without the cells."""
    ids = list(counts)
    params = {
        "ids": ids,
        "n_in": [counts[pk][0] for pk in ids],
        "n_out": [counts[pk][1] for pk in ids],
        "tz": settings.TIME_ZONE,
    }
    with connection.cursor() as cursor:
        # The conversations' cells before the agents' (the order :func:`refresh` locks them in).
        cursor.execute(_COUNT_METRICS_SQL, params)
        cursor.execute(_COUNT_SEGMENTS_SQL, params)
