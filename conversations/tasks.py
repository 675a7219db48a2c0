"""Celery tasks of the desk core: interfaces only (one service call each)."""

from typing import Any

from celery import shared_task
from django.db import DatabaseError

from .services.assignment import assignment_run, assignment_sweep
from .services.automate import conversations_auto_close, messages_send_due
from .services.organise import priority_rules_apply_waiting

#: The beat's periodic tasks: acknowledged late, retried a few times while the database is away
#: (each is idempotent, and the next beat comes anyway).
SWEEP_TASK: dict[str, Any] = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 5,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 3,
}


@shared_task(**SWEEP_TASK)
def priority_rules_sweep() -> int:
    """The admins' "waiting longer than N minutes" rules (``CELERY_BEAT_SCHEDULE``, every
    minute; idempotent: a conversation already at the rule's priority is left alone)."""
    return priority_rules_apply_waiting()


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=1,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=5,
)
def assignment_run_task(*, department_ids: list[int], user_ids: list[int]) -> int:
    """Automatic assignment for queues a conversation entered and agents who have room again
    (queued by ``conversations.handlers.AssignmentHandler``; idempotent: what is assigned is no
    longer waiting, and an agent at capacity gets nothing)."""
    return len(assignment_run(department_ids=department_ids, user_ids=user_ids))


@shared_task(**SWEEP_TASK)
def assignment_sweep_task() -> int:
    """Every minute (``CELERY_BEAT_SCHEDULE``): what waits in automatic queues goes to agents
    who have room (a lost task, an agent whose console came back, a queue switched to automatic)."""
    return assignment_sweep()


@shared_task(**SWEEP_TASK)
def scheduled_messages_send() -> int:
    """Scheduled messages whose ``send_at`` has come (``CELERY_BEAT_SCHEDULE``, every 15 s;
    idempotent: each is taken under a row lock, skipped by a concurrent run, sent once)."""
    return messages_send_due()


@shared_task(**SWEEP_TASK)
def auto_close_sweep() -> int:
    """Departments' auto-close (``CELERY_BEAT_SCHEDULE``, every minute; idempotent: a closed
    conversation, or one whose customer wrote last, is left alone)."""
    return conversations_auto_close()
