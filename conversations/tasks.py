"""Celery tasks of the desk core: interfaces only (one service call each)."""

from celery import shared_task
from django.db import DatabaseError

from .services.automate import conversations_auto_close, messages_send_due
from .services.organise import priority_rules_apply_waiting


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=3,
)
def priority_rules_sweep() -> int:
    """The admins' "waiting longer than N minutes" rules (``CELERY_BEAT_SCHEDULE``, every
    minute; idempotent: a conversation already at the rule's priority is left alone)."""
    return priority_rules_apply_waiting()


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=3,
)
def scheduled_messages_send() -> int:
    """Scheduled messages whose ``send_at`` has come (``CELERY_BEAT_SCHEDULE``, every 15 s;
    idempotent: each is taken under a row lock, skipped by a concurrent run, sent once)."""
    return messages_send_due()


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=3,
)
def auto_close_sweep() -> int:
    """Departments' auto-close (``CELERY_BEAT_SCHEDULE``, every minute; idempotent: a closed
    conversation, or one whose customer wrote last, is left alone)."""
    return conversations_auto_close()
