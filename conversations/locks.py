"""Row locks of automatic assignment, always taken in this order inside one short transaction:

1. the departments' cursors (:func:`assignment_cursors_lock`, by department id),
2. the agents' states (:func:`agent_states_lock`, by user id, all of them in one statement),
3. the conversation given (``select_for_update(skip_locked=True)`` in the service).

Every assignment into a department holds its cursor, so one department's assignments happen one
at a time; every assignment to an agent holds their state row, so an agent of two departments is
never given two conversations past their capacity by two workers at once. The people's own
services that give an agent a conversation (take over, transfer or assign to them, start one,
reopen: ``services.capacity``) take that agent's state row first, then the conversation's, in
the same order; the others (close, a transfer to a queue) lock only conversation rows.
"""

from collections.abc import Collection

from .models import AgentAssignmentState, AssignmentCursor


def assignment_cursors_lock(*, department_ids: Collection[int]) -> dict[int, AssignmentCursor]:
    """The cursors of these departments, created when missing, locked: {department id: row}."""
    ids = sorted(set(department_ids))
    if not ids:
        return {}
    AssignmentCursor.objects.bulk_create(
        [AssignmentCursor(department_id=pk) for pk in ids], ignore_conflicts=True
    )
    rows = AssignmentCursor.objects.select_for_update().filter(department_id__in=ids)
    return {row.department_id: row for row in rows.order_by("department_id")}


def agent_states_lock(*, user_ids: Collection[int]) -> dict[int, AgentAssignmentState]:
    """The assignment states of these agents, created when missing, locked: {user id: row}."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    AgentAssignmentState.objects.bulk_create(
        [AgentAssignmentState(user_id=pk) for pk in ids], ignore_conflicts=True
    )
    rows = AgentAssignmentState.objects.select_for_update().filter(user_id__in=ids)
    return {row.user_id: row for row in rows.order_by("user_id")}
