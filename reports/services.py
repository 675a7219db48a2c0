"""The reports' writes: segments and roll-ups recorded from the desk's domain events as they
happen (:func:`segments_record`, inside the emitting transaction), or rebuilt from the stored
history (:func:`segments_rebuild`, for data from before this app, or after a fix of the rules).
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from accounts.models import AuditAction, User
from accounts.services import audit_log_record
from common.events import DomainEvent
from common.exceptions import NotPermitted, ServiceError
from conversations import events as desk_events
from conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    CsatSurvey,
    EventKind,
    Message,
)
from departments.models import BusinessSchedule, Department

from . import rollups
from .business_hours import schedules_for
from .models import ConversationMetrics, Goal, Segment, SegmentEnd
from .timeline import Change, ScheduleOf, Timeline

_SEGMENT_FIELDS = [
    "ended_at",
    "ended_by",
    "first_reply_at",
    "messages_in",
    "messages_out",
    "seconds",
    "business_seconds",
    "first_reply_seconds",
    "business_first_reply_seconds",
    "updated_at",
]
_METRICS_FIELDS = [
    f.name
    for f in ConversationMetrics._meta.concrete_fields
    if f.name not in ("conversation", "created_at", "csat_score", "csat_comment")
]


def _moment(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


# --- Live: from domain events ------------------------------------------------------------------


def _change_of(event: DomainEvent) -> Change | None:  # noqa: PLR0911 - one per event type
    """The segments' view of one domain event (None: it changes no figure)."""
    if not isinstance(event, desk_events.ConversationFact):
        return None
    at = event.occurred
    # The conversation as the emitting service left it (locked): its status after the change.
    status = str(event.conversation.get("status") or "")
    if isinstance(event, desk_events.MessageCreated):
        message = event.message
        return Change(
            at=_moment(message.get("created_at")) or at,
            what="message",
            direction=str(message.get("direction", "")),
            sender=str(message.get("sender", "")),
            sender_user_id=message.get("sender_user"),
        )
    if isinstance(event, desk_events.ConversationCreated):
        opened = _moment(event.conversation.get("created_at")) or at
        return Change(at=opened, what="created", department_id=event.department_id, status=status)
    if isinstance(event, desk_events.ConversationAssigned):
        return Change(
            at=at,
            what="agent",
            agent_id=event.user_id,
            department_id=event.department_id,
            ended_by=SegmentEnd.ASSIGNED,
            status=status,
        )
    if isinstance(event, desk_events.ConversationTransferred):
        by_person = event.actor_id is not None
        return Change(
            at=at,
            what="agent" if event.assigned_to_id else "queue",
            agent_id=event.assigned_to_id,
            department_id=event.department_id,
            ended_by=SegmentEnd.TRANSFERRED if by_person else SegmentEnd.QUEUED,
            transfer=by_person,
            status=status,
        )
    if isinstance(event, desk_events.ConversationClosed):
        return Change(at=at, what="closed", status=status)
    if isinstance(event, desk_events.ConversationReopened):
        return Change(
            at=at,
            what="reopened",
            agent_id=event.assigned_to_id,
            department_id=event.department_id,
            status=status,
        )
    return None


def _needs_state(change: Change) -> bool:
    """Counting a message needs no read; anything else (and an agent's reply, which may be a
    first response) reads and locks the conversation's current segment and roll-up."""
    return change.what != "message" or (change.direction == "out" and change.sender == "agent")


class _Schedules:
    """The schedules of the departments a batch touches, loaded once, on first need."""

    def __init__(self, department_ids: Callable[[], Iterable[int | None]]) -> None:
        self._ids = department_ids
        self._loaded: dict[int, Any] | None = None

    def __call__(self, department_id: int | None) -> Any:
        if department_id is None:
            return None
        if self._loaded is None:
            self._loaded = schedules_for([department_id, *self._ids()])
        return self._loaded.get(department_id)


def _count_messages(counts: dict[int, list[int]]) -> None:
    """Add messages to conversations' current segments and roll-ups: one UPDATE of each table
    for the whole batch, in the database (concurrent writers never lose a count); on PostgreSQL
    the same two statements add them to the daily roll-ups too."""
    if rollups.enabled():
        rollups.count_messages(counts)
        return

    def bump(index: int) -> Any:
        whens = [When(conversation_id=pk, then=Value(n[index])) for pk, n in counts.items()]
        return Case(*whens, default=Value(0), output_field=IntegerField())

    values: dict[str, Any] = {}
    if any(n[0] for n in counts.values()):
        values["messages_in"] = F("messages_in") + bump(0)
    if any(n[1] for n in counts.values()):
        values["messages_out"] = F("messages_out") + bump(1)
    ids = list(counts)
    Segment.objects.filter(conversation_id__in=ids, ended_at__isnull=True).update(**values)
    ConversationMetrics.objects.filter(conversation_id__in=ids).update(**values)


def _save(timelines: Sequence[Timeline], *, new_metrics: set[int]) -> None:
    created = [t.metrics for t in timelines if t.metrics.conversation_id in new_metrics]
    for timeline in timelines:
        if timeline.metrics.conversation_id not in new_metrics:
            timeline.metrics.save(update_fields=[*_METRICS_FIELDS, "updated_at"])
    if created:
        ConversationMetrics.objects.bulk_create(created)
    touched = [s for t in timelines for s in t.touched]
    # Ended segments first: a conversation has one open segment at a time (a constraint).
    for segment in touched:
        if segment.pk is not None:
            segment.save(update_fields=_SEGMENT_FIELDS)
    fresh = [s for s in touched if s.pk is None]
    if fresh:
        Segment.objects.bulk_create(fresh)


def _csat_record(events: Sequence[DomainEvent]) -> set[int]:
    """Each conversation's score (and comment) as its survey now has it: the newest answer.
    Returns the conversations scored."""
    scored = set()
    for event in events:
        if isinstance(event, desk_events.CsatReceived):
            ConversationMetrics.objects.filter(conversation_id=event.conversation_id).update(
                csat_score=event.csat.get("score"), csat_comment=event.csat.get("comment") or ""
            )
            scored.add(event.conversation_id)
    return scored


def segments_record(*, events: Sequence[DomainEvent]) -> None:
    """Apply the batch's events to segments and roll-ups, inside the emitting transaction.

    Messages that only count (the customer's, the bot's) cost two UPDATEs for the whole batch
    (the daily roll-ups' included); a change of hands, a closing or an agent's reply costs two
    SELECTs (the rows locked) and the writes of the rows it changes, for all the batch's
    conversations at once, then three statements recomputing the daily roll-ups they touch
    (:func:`reports.rollups.refresh`), as a CSAT answer does.
    """
    scored = _csat_record(events)
    changed, before = _changes_record(events)
    if changed or scored:
        rollups.refresh(conversation_ids=changed | scored, before=before)


def _changes_record(events: Sequence[DomainEvent]) -> tuple[set[int], list[dict[str, Any]]]:
    """The segments and roll-ups of the batch's changes; returns the conversations changed
    otherwise than by counting messages, and their roll-ups' states before (for the cells)."""
    changes: dict[int, list[Change]] = {}
    payloads: dict[int, dict[str, Any]] = {}
    for event in events:
        change = _change_of(event)
        if change is None or not isinstance(event, desk_events.ConversationFact):
            continue
        changes.setdefault(event.conversation_id, []).append(change)
        payloads.setdefault(event.conversation_id, event.conversation)
    if not changes:
        return set(), []
    stateful = {pk for pk, items in changes.items() if any(_needs_state(c) for c in items)}
    counts: dict[int, list[int]] = {}
    for pk, items in changes.items():
        if pk not in stateful:
            for change in items:
                counts.setdefault(pk, [0, 0])[0 if change.direction == "in" else 1] += 1
    if counts:
        _count_messages(counts)
    if not stateful:
        return set(), []
    # Locked in one order (by conversation), after the service's lock on the conversation row.
    segments = Segment.objects.filter(conversation_id__in=stateful, ended_at__isnull=True).order_by(
        "conversation_id"
    )
    metrics = ConversationMetrics.objects.filter(conversation_id__in=stateful).order_by(
        "conversation_id"
    )
    if connection.in_atomic_block:
        segments, metrics = segments.select_for_update(), metrics.select_for_update()
    current = {s.conversation_id: s for s in segments}
    rows = {m.conversation_id: m for m in metrics}
    before = rollups.states(rows.values())  # the timelines change the rows in place
    schedules = _Schedules(
        lambda: [
            *(s.department_id for s in current.values()),
            *(m.department_id for m in rows.values()),
            *(c.department_id for pk in stateful for c in changes[pk]),
        ]
    )
    timelines: list[Timeline] = []
    new_metrics: set[int] = set()
    for pk in sorted(stateful):
        row = rows.get(pk)
        if row is None:
            payload = payloads[pk]
            department = payload.get("department")
            row = ConversationMetrics(
                conversation_id=pk,
                opened_at=_moment(payload.get("created_at")) or changes[pk][0].at,
                department_id=department["id"] if department else None,
                status=payload.get("status") or ConversationStatus.BOT,
            )
            new_metrics.add(pk)
        timeline = Timeline(metrics=row, schedule_of=schedules, current=current.get(pk))
        for change in changes[pk]:
            timeline.apply(change)
        timelines.append(timeline)
    _save(timelines, new_metrics=new_metrics)
    return stateful, before


# --- Rebuild: from the stored history ----------------------------------------------------------


def _change_of_row(row: Mapping[str, Any]) -> Change | None:
    """The segments' view of a stored ``ConversationEvent`` (the same as of its domain event)."""
    kind, after, at = row["kind"], row["after"] or {}, row["created_at"]
    by_person = row["actor_id"] is not None
    department_id, assignee = after.get("department"), after.get("assigned_to")
    if kind in (EventKind.TAKEN_OVER, EventKind.ASSIGNED):
        return Change(
            at=at,
            what="agent",
            agent_id=assignee,
            department_id=department_id,
            ended_by=SegmentEnd.ASSIGNED,
        )
    if kind in (EventKind.TRANSFERRED, EventKind.QUEUED):
        return Change(
            at=at,
            what="agent" if assignee and kind == EventKind.TRANSFERRED else "queue",
            agent_id=assignee if kind == EventKind.TRANSFERRED else None,
            department_id=department_id,
            ended_by=SegmentEnd.TRANSFERRED if by_person else SegmentEnd.QUEUED,
            transfer=by_person,
        )
    if kind == EventKind.CLOSED:
        return Change(at=at, what="closed")
    if kind == EventKind.REOPENED:
        return Change(at=at, what="reopened", agent_id=assignee, department_id=department_id)
    return None


_HISTORY_KINDS = [
    EventKind.TAKEN_OVER,
    EventKind.ASSIGNED,
    EventKind.TRANSFERRED,
    EventKind.QUEUED,
    EventKind.CLOSED,
    EventKind.REOPENED,
]


def _rebuild_chunk(ids: list[int], *, schedule_of: ScheduleOf) -> None:
    conversations = list(
        Conversation.objects.filter(pk__in=ids).values(
            "pk", "created_at", "department_id", "status"
        )
    )
    history: dict[int, list[tuple[datetime, int, int, Change]]] = {pk: [] for pk in ids}
    for c in conversations:
        created = Change(at=c["created_at"], what="created")
        history[c["pk"]].append((c["created_at"], 0, 0, created))
    rows = (
        ConversationEvent.objects.filter(conversation_id__in=ids, kind__in=_HISTORY_KINDS)
        .order_by()
        .values("id", "conversation_id", "kind", "actor_id", "after", "created_at")
    )
    for row in rows:
        change = _change_of_row(row)
        if change is not None:
            history[row["conversation_id"]].append((row["created_at"], 1, row["id"], change))
    messages = (
        Message.objects.filter(conversation_id__in=ids)
        .order_by()
        .values("id", "conversation_id", "direction", "sender", "sender_user_id", "created_at")
    )
    for message in messages:
        change = Change(
            at=message["created_at"],
            what="message",
            direction=message["direction"],
            sender=message["sender"],
            sender_user_id=message["sender_user_id"],
        )
        history[message["conversation_id"]].append(
            (message["created_at"], 2, message["id"], change)
        )
    stored = list(ConversationMetrics.objects.filter(conversation_id__in=ids))
    csat: dict[int, Mapping[str, Any]] = {
        row.conversation_id: {"csat_score": row.csat_score, "csat_comment": row.csat_comment}
        for row in stored
    }
    # The surveys are the source of the scores: the newest answered one of each conversation.
    for survey in (
        CsatSurvey.objects.filter(conversation_id__in=ids, score__isnull=False)
        .order_by("conversation_id", "scored_at", "pk")
        .values("conversation_id", "score", "comment")
    ):
        csat[survey["conversation_id"]] = {
            "csat_score": survey["score"],
            "csat_comment": survey["comment"],
        }
    timelines = []
    for c in conversations:
        kept: Mapping[str, Any] = csat.get(c["pk"]) or {}
        metrics = ConversationMetrics(
            conversation_id=c["pk"],
            opened_at=c["created_at"],
            department_id=c["department_id"],
            status=c["status"],  # the conversation's own, whatever its history says
            csat_score=kept.get("csat_score"),
            csat_comment=kept.get("csat_comment", ""),
        )
        timeline = Timeline(metrics=metrics, schedule_of=schedule_of)
        # Same moment: the creation, then changes of hands, then messages (as services emit).
        for *_key, change in sorted(history[c["pk"]], key=lambda item: item[:3]):
            timeline.apply(change)
        timelines.append(timeline)
    Segment.objects.filter(conversation_id__in=ids).delete()
    ConversationMetrics.objects.filter(conversation_id__in=ids).delete()
    ConversationMetrics.objects.bulk_create([t.metrics for t in timelines])
    Segment.objects.bulk_create([s for t in timelines for s in t.touched])
    # The daily roll-ups of the cells these conversations were in, and are in now.
    rollups.refresh(conversation_ids=ids, before=rollups.states(stored))


def segments_rebuild(
    *,
    conversation_ids: Iterable[int] | None = None,
    chunk_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Recompute every (or these) conversation's segments and roll-up from its
    ``ConversationEvent`` rows and messages, ``chunk_size`` conversations per transaction
    (CSAT answers already stored are kept). ``progress(done, total)`` after each chunk.
    Returns the number of conversations rebuilt."""
    queryset = Conversation.objects.order_by("pk")
    if conversation_ids is not None:
        queryset = queryset.filter(pk__in=list(conversation_ids))
    total = queryset.count()
    schedules = schedules_for(BusinessSchedule.objects.values_list("department_id", flat=True))

    def schedule_of(department_id: int | None) -> BusinessSchedule | None:
        return schedules.get(department_id) if department_id is not None else None

    done = 0
    chunk: list[int] = []
    for pk in queryset.values_list("pk", flat=True).iterator(chunk_size=chunk_size):
        chunk.append(pk)
        if len(chunk) == chunk_size:
            with transaction.atomic():
                _rebuild_chunk(chunk, schedule_of=schedule_of)
            done += len(chunk)
            chunk = []
            if progress is not None:
                progress(done, total)
    if chunk:
        with transaction.atomic():
            _rebuild_chunk(chunk, schedule_of=schedule_of)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    if conversation_ids is None:
        # Every cell again, those of conversations deleted since included.
        with transaction.atomic():
            rollups.refresh(conversation_ids=None)
    return done


# --- Goals -------------------------------------------------------------------------------------


def _require_admin(actor: User) -> None:
    if not (actor.is_active and actor.is_admin):
        raise NotPermitted(_("Only administrators can change goals."))


def _goal_state(goal: Goal) -> dict[str, Any]:
    return {
        "metric": goal.metric,
        "target": goal.target,
        "agent": goal.agent_id,
        "department": goal.department_id,
        "is_active": goal.is_active,
    }


def _goal_check(goal: Goal) -> None:
    """The model's validation (its named constraints, with their messages) as a refusal."""
    try:
        goal.full_clean(exclude=["created_at", "updated_at"])
    except ValidationError as exc:
        raise ServiceError(" ".join(exc.messages), code="invalid_goal") from exc


@transaction.atomic
def goal_create(
    *,
    actor: User,
    metric: str,
    target: float,
    agent: User | None = None,
    department: Department | None = None,
    is_active: bool = True,
) -> Goal:
    _require_admin(actor)
    goal = Goal(
        metric=metric, target=target, agent=agent, department=department, is_active=is_active
    )
    _goal_check(goal)
    goal.save()
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target=goal,
        after={"created": _goal_state(goal)},
    )
    return goal


@transaction.atomic
def goal_update(*, goal: Goal, actor: User, **fields: Any) -> Goal:
    """Changes ``metric``, ``target``, ``agent``, ``department``, ``is_active``."""
    _require_admin(actor)
    goal = Goal.objects.select_for_update().get(pk=goal.pk)
    before = _goal_state(goal)
    for name in ("metric", "target", "agent", "department", "is_active"):
        if name in fields:
            setattr(goal, name, fields[name])
    _goal_check(goal)
    goal.save()
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target=goal,
        before=before,
        after=_goal_state(goal),
    )
    return goal


@transaction.atomic
def goal_delete(*, goal: Goal, actor: User) -> None:
    _require_admin(actor)
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target=goal,
        before=_goal_state(goal),
        after={"deleted": True},
    )
    goal.delete()
