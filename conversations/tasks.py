"""Celery tasks of the desk core: interfaces only (one service call each)."""

from celery import shared_task
from django.db import DatabaseError

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
