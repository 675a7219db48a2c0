"""How a conversation's history becomes segments and figures: one set of rules, fed by the live
handler (domain events, :mod:`reports.handlers`) and by the rebuild (``ConversationEvent`` rows
and messages, :mod:`reports.services`), so both give the same figures.

A conversation is a sequence of segments: with the bot (from its creation), waiting in a queue
(the bot's hand-over, a transfer to a department, a reopening without an assignee), with an
agent (taken over, assigned, transferred to, reopened with its assignee). A change ends the
current segment and starts the next; closing ends it and starts none.
"""

import dataclasses
from collections.abc import Callable
from datetime import datetime

from departments.models import BusinessSchedule

from .business_hours import open_seconds
from .models import ConversationMetrics, Segment, SegmentEnd, SegmentKind

ScheduleOf = Callable[[int | None], BusinessSchedule | None]

_TOTALS = {
    SegmentKind.BOT: "bot_seconds",
    SegmentKind.QUEUE: "queue_wait_seconds",
    SegmentKind.AGENT: "handling_seconds",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Change:
    """One fact of a conversation's history, in the terms of the segments.

    ``what``: ``created``, ``agent`` (now with ``agent_id``), ``queue`` (now waiting in
    ``department_id``'s queue), ``closed``, ``reopened`` or ``message``. ``status``: the
    conversation's status after a change of state ("" for a message: it changes none).
    """

    at: datetime
    what: str
    agent_id: int | None = None
    department_id: int | None = None
    ended_by: str = ""
    transfer: bool = False  # a person moved the conversation (counted in ``transfers``)
    direction: str = ""
    sender: str = ""
    sender_user_id: int | None = None
    status: str = ""


def _add(current: float | None, value: float) -> float:
    return round((current or 0.0) + value, 6)


@dataclasses.dataclass
class Timeline:
    """A conversation's roll-up and its current segment, changed in memory; the caller saves
    ``metrics`` and ``touched`` segments (new ones have no ``pk``)."""

    metrics: ConversationMetrics
    schedule_of: ScheduleOf
    current: Segment | None = None
    touched: list[Segment] = dataclasses.field(default_factory=list)

    def _touch(self, segment: Segment) -> None:
        if not any(s is segment for s in self.touched):
            self.touched.append(segment)

    def _business(self, department_id: int | None, start: datetime, end: datetime) -> float:
        return open_seconds(schedule=self.schedule_of(department_id), start=start, end=end)

    # --- segments --------------------------------------------------------------------------

    def _end(self, *, at: datetime, ended_by: str) -> None:
        segment = self.current
        if segment is None:
            return
        at = max(at, segment.started_at)
        segment.ended_at, segment.ended_by = at, ended_by
        segment.seconds = round((at - segment.started_at).total_seconds(), 6)
        segment.business_seconds = self._business(segment.department_id, segment.started_at, at)
        total = _TOTALS[SegmentKind(segment.kind)]
        m = self.metrics
        setattr(m, total, _add(getattr(m, total), segment.seconds))
        setattr(
            m, f"business_{total}", _add(getattr(m, f"business_{total}"), segment.business_seconds)
        )
        self._touch(segment)
        self.current = None

    def _start(
        self, *, at: datetime, kind: str, agent_id: int | None, department_id: int | None
    ) -> None:
        handled = kind == SegmentKind.AGENT and agent_id is not None
        segment = Segment(
            conversation_id=self.metrics.conversation_id,
            kind=kind,
            started_at=at,
            agent_id=agent_id,
            department_id=department_id,
            agent_first=handled and agent_id not in self.metrics.agents,
        )
        self.current = segment
        self._touch(segment)
        m = self.metrics
        m.department_id = department_id if kind != SegmentKind.BOT else m.department_id
        if kind == SegmentKind.AGENT and m.queue_wait_seconds is None:
            # An agent has it without a wait behind it (taken straight from the bot): 0.
            m.queue_wait_seconds = m.business_queue_wait_seconds = 0.0
        if handled:
            m.last_agent_id = agent_id
            if agent_id not in m.agents:
                m.agents = [*m.agents, agent_id]

    def _move(
        self,
        *,
        at: datetime,
        kind: str,
        agent_id: int | None,
        department_id: int | None,
        ended_by: str,
    ) -> None:
        current = self.current
        if (
            current is not None
            and current.kind == kind
            and current.agent_id == agent_id
            and current.department_id == department_id
        ):
            return  # nothing changed hands
        self._end(at=at, ended_by=ended_by)
        self._start(at=at, kind=kind, agent_id=agent_id, department_id=department_id)

    # --- changes ---------------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        m = self.metrics
        if change.status:
            m.status = change.status
        if change.what == "created":
            self._move(
                at=change.at,
                kind=SegmentKind.BOT,
                agent_id=None,
                department_id=change.department_id,
                ended_by=SegmentEnd.QUEUED,
            )
        elif change.what in ("agent", "queue", "reopened"):
            if change.what == "reopened":
                m.closed_at = m.resolution_seconds = m.business_resolution_seconds = None
            to_agent = change.agent_id is not None and change.what != "queue"
            self._move(
                at=change.at,
                kind=SegmentKind.AGENT if to_agent else SegmentKind.QUEUE,
                agent_id=change.agent_id if to_agent else None,
                department_id=change.department_id,
                ended_by=change.ended_by,
            )
            if change.transfer:
                m.transfers += 1
        elif change.what == "closed":
            department_id = self.current.department_id if self.current else m.department_id
            self._end(at=change.at, ended_by=SegmentEnd.CLOSED)
            m.closed_at = max(change.at, m.opened_at)
            m.resolution_seconds = round((m.closed_at - m.opened_at).total_seconds(), 6)
            m.business_resolution_seconds = self._business(department_id, m.opened_at, m.closed_at)
        elif change.what == "message":
            self._message(change)

    def _message(self, change: Change) -> None:
        m, segment = self.metrics, self.current
        inbound = change.direction == "in"
        if inbound:
            m.messages_in += 1
        else:
            m.messages_out += 1
        if segment is not None:
            if inbound:
                segment.messages_in += 1
            else:
                segment.messages_out += 1
            self._touch(segment)
        if inbound or change.sender != "agent":
            return
        at = max(change.at, m.opened_at)
        department_id = segment.department_id if segment is not None else m.department_id
        if m.first_response_at is None:
            m.first_response_at = at
            m.first_response_seconds = round((at - m.opened_at).total_seconds(), 6)
            m.business_first_response_seconds = self._business(department_id, m.opened_at, at)
        if (
            segment is not None
            and segment.kind == SegmentKind.AGENT
            and segment.first_reply_at is None
            and change.sender_user_id == segment.agent_id
        ):
            at = max(at, segment.started_at)
            segment.first_reply_at = at
            segment.first_reply_seconds = round((at - segment.started_at).total_seconds(), 6)
            segment.business_first_reply_seconds = self._business(
                department_id, segment.started_at, at
            )
