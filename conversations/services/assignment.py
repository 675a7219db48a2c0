"""Automatic assignment (contract §10): a department's queue gives its conversations to agents.

A department assigns ``manual`` (agents take from the queue: nothing here happens), ``round_robin``
(the next member after the one who got the last conversation) or ``least_busy`` (the fewest open
conversations; ties to whoever has gone longest without being given one). Only active agents of
the department who are ``available``, online (a console open: ``accounts.presence``) and under
their ``max_conversations`` are given anything.

Two ways in, each a loop of short transactions that give one conversation at a time:

- :func:`department_assign_waiting`: a conversation entered the department's queue (the bot
  handed over, a transfer to the department, a reopening): the queue's conversations, in its
  order, go to the agents the department's mode picks, while there are agents with room;
- :func:`agent_assign_waiting`: an agent has room again (closed or passed on a conversation,
  came back from away, came online): they get the most urgent, longest waiting conversations of
  their departments' queues, up to their capacity.

Each transaction locks what it decides on (``conversations.locks``: cursors, then agents, then
the conversation, in that order), so racing workers never give a conversation twice nor an agent
more than their capacity. An assignment is written as a supervisor's is: the conversation is
``open`` with its agent, an ``assigned`` event row (actor none, ``after.assignment`` the mode) and
``conversation.assigned`` (``how`` ``automatic``) for the console, the reports and the webhooks.

The interfaces: ``conversations.handlers.AssignmentHandler`` (the domain events that free an
agent or fill a queue), the console's socket (an agent comes online) and the beat's sweep.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from departments.models import AssignmentMode

from .. import selectors
from ..locks import agent_states_lock, assignment_cursors_lock
from ..models import AgentAssignmentState, AssignmentCursor, Conversation, EventKind
from ._base import _assign

AUTOMATIC = "automatic"  # ``ConversationAssigned.how`` of these assignments
# A bound on one call's loop (each turn gives one conversation): a sweep finishes the rest.
MAX_PER_CALL = 200


@dataclass(frozen=True)
class _Candidate:
    user: User
    load: int  # open conversations now
    last_assigned_at: datetime | None


def _candidates(
    *, users: Sequence[User]
) -> tuple[list[_Candidate], dict[int, AgentAssignmentState]]:
    """Lock the agents' states (by id), then count their conversations: those with room."""
    states = agent_states_lock(user_ids=[u.pk for u in users])
    loads = selectors.agent_open_counts(user_ids=[u.pk for u in users])
    room = [
        _Candidate(user=u, load=loads.get(u.pk, 0), last_assigned_at=states[u.pk].last_assigned_at)
        for u in users
        if loads.get(u.pk, 0) < u.max_conversations
    ]
    return room, states


def _choose(*, mode: str, candidates: list[_Candidate], cursor: AssignmentCursor) -> _Candidate:
    if mode == AssignmentMode.ROUND_ROBIN:
        ordered = sorted(candidates, key=lambda c: c.user.pk)
        last = cursor.last_user_id or 0
        return next((c for c in ordered if c.user.pk > last), ordered[0])
    # least busy: the fewest open conversations, then never given one, then the longest ago
    return min(
        candidates,
        key=lambda c: (
            c.load,
            c.last_assigned_at is not None,
            c.last_assigned_at or timezone.now(),
            c.user.pk,
        ),
    )


def _give(
    *,
    conversation: Conversation,
    user: User,
    mode: str,
    cursor: AssignmentCursor,
    state: AgentAssignmentState,
) -> Conversation:
    conversation = _assign(
        conversation=conversation,
        actor=None,
        to_user=user,
        kind=EventKind.ASSIGNED,
        how=AUTOMATIC,
        note={"assignment": mode},
    )
    cursor.last_user = user
    cursor.save(update_fields=["last_user", "updated_at"])
    state.last_assigned_at = timezone.now()
    state.save(update_fields=["last_assigned_at", "updated_at"])
    return conversation


def _head(*, department_ids: Sequence[int]) -> Conversation | None:
    """The first conversation of these queues nobody else is touching (locked)."""
    return (
        selectors.conversation_list_waiting(department_ids=department_ids)
        .select_for_update(of=("self",), skip_locked=True)
        .first()
    )


@transaction.atomic
def _department_assign_next(*, department_id: int) -> Conversation | None:
    """Give the department's first waiting conversation to the agent its mode picks: the
    conversation given, or None (nothing waits, nobody has room, or the queue is manual)."""
    modes = selectors.department_list_automatic(department_ids=[department_id])
    if department_id not in modes:
        return None
    cursor = assignment_cursors_lock(department_ids=[department_id])[department_id]
    users = selectors.assignment_list_candidates(department_ids=[department_id])
    if not users:
        return None
    candidates, states = _candidates(users=users)
    if not candidates:
        return None
    conversation = _head(department_ids=[department_id])
    if conversation is None:
        return None
    # Whoever just passed it on does not get it straight back, unless nobody else has room.
    handed_away_by = selectors.conversation_get_handed_away_by(conversation=conversation)
    others = [c for c in candidates if c.user.pk != handed_away_by]
    chosen = _choose(mode=modes[department_id], candidates=others or candidates, cursor=cursor)
    return _give(
        conversation=conversation,
        user=chosen.user,
        mode=modes[department_id],
        cursor=cursor,
        state=states[chosen.user.pk],
    )


@transaction.atomic
def _agent_assign_next(*, user_id: int) -> Conversation | None:
    """Give the agent the most urgent, longest waiting conversation of their departments' queues
    if they may take one now: the conversation given, or None."""
    department_ids = selectors.department_list_automatic_of(user_ids=[user_id]).get(user_id, [])
    if not department_ids:
        return None
    cursors = assignment_cursors_lock(department_ids=department_ids)
    modes = selectors.department_list_automatic(department_ids=department_ids)
    users = selectors.assignment_list_candidates(department_ids=list(modes), user_id=user_id)
    if not users:
        return None
    candidates, states = _candidates(users=users)
    if not candidates:
        return None
    conversation = _head(department_ids=list(modes))
    if conversation is None or conversation.department_id is None:
        return None
    return _give(
        conversation=conversation,
        user=candidates[0].user,
        mode=modes[conversation.department_id],
        cursor=cursors[conversation.department_id],
        state=states[user_id],
    )


def department_assign_waiting(*, department_id: int) -> list[Conversation]:
    """A conversation entered the department's queue: assign what waits there while its agents
    have room (one short transaction per conversation). The conversations given."""
    given: list[Conversation] = []
    while len(given) < MAX_PER_CALL:
        conversation = _department_assign_next(department_id=department_id)
        if conversation is None:
            break
        given.append(conversation)
    return given


def agent_assign_waiting(*, user_id: int) -> list[Conversation]:
    """The agent may have room (or just came online, or back): give them what waits in their
    departments' queues, up to their capacity. The conversations given."""
    given: list[Conversation] = []
    while len(given) < MAX_PER_CALL:
        conversation = _agent_assign_next(user_id=user_id)
        if conversation is None:
            break
        given.append(conversation)
    return given


def assignment_run(
    *, department_ids: Sequence[int] = (), user_ids: Sequence[int] = ()
) -> list[Conversation]:
    """Both at once (the handler's task): queues first, then the agents freed."""
    given: list[Conversation] = []
    for department_id in sorted(set(department_ids)):
        given += department_assign_waiting(department_id=department_id)
    for user_id in sorted(set(user_ids)):
        given += agent_assign_waiting(user_id=user_id)
    return given


def assignment_sweep() -> int:
    """The beat's safety net: every automatic queue with conversations waiting is assigned what
    its agents have room for (a lost task, an agent whose console reconnected, a department just
    switched from manual). How many conversations were given."""
    return len(assignment_run(department_ids=selectors.department_list_automatic_waiting()))
