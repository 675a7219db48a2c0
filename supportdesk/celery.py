"""The Celery application: configured from Django settings (``CELERY_*``), tasks autodiscovered."""

import os
from typing import Any

from celery import Celery, signals

from common import context

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")

app = Celery("supportdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The request id (and user, conversation) of whoever queued a task goes with it, into the task's
# log lines (contract §11, common/context.py); weak=False: these module functions stay connected.
signals.before_task_publish.connect(context.task_publish_carry, weak=False)
signals.task_prerun.connect(context.task_prerun_bind, weak=False)
signals.task_postrun.connect(context.task_postrun_unbind, weak=False)


# Webhook intake goes first: its own queue, which every worker takes before any other (the
# settings list it first in ``task_queues`` and ask Redis for strict priority).
INTAKE_TASKS = frozenset({"whatsapp.tasks.webhook_drain", "whatsapp.tasks.webhook_process"})


def intake_queue(default_queue: str) -> str:
    return f"{default_queue}.intake"


# Outgoing webhook deliveries: a queue of their own, listed last (a slow receiver never delays
# the intake or the bot).
WEBHOOK_TASKS = frozenset(
    {"integrations.tasks.webhook_deliver", "integrations.tasks.webhook_deliver_batch"}
)


def webhooks_queue(default_queue: str) -> str:
    return f"{default_queue}.webhooks"


def route_task(name: str, *args: Any, **kwargs: Any) -> dict[str, str] | None:
    """``task_routes``: intake tasks to the intake queue of the configured default queue,
    webhook deliveries to its webhooks queue."""
    if name in INTAKE_TASKS:
        return {"queue": intake_queue(app.conf.task_default_queue)}
    if name in WEBHOOK_TASKS:
        return {"queue": webhooks_queue(app.conf.task_default_queue)}
    return None
