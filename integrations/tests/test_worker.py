"""A delivery survives its worker being killed mid-request: a REAL Celery worker (prefork, one
child) on Redis and PostgreSQL POSTs to a receiver that hangs; the child is SIGKILLed; the task,
acknowledged late and rejected on worker loss, runs again in the child the worker starts anew,
waits for the dead attempt's claim to expire, and the same delivery (same uuid) succeeds."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from conversations import services as desk
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory
from integrations import services
from integrations.models import DeliveryStatus, WebhookDelivery
from supportdesk.celery import app

ROOT = Path(__file__).resolve().parents[2]
QUEUE = f"hooks-test-{os.getpid()}"

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset"),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the worker needs the shared PostgreSQL database"
    ),
]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


@pytest.fixture
def worker() -> Any:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test",
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONPATH": str(ROOT),
        "CELERY_QUEUE": QUEUE,
        "OUTGOING_WEBHOOKS_ALLOW_PRIVATE": "true",
        # The attempt is killed long before this; its claim then lasts 2 * 3 + 5 s.
        "OUTGOING_WEBHOOK_TIMEOUT": "3",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "supportdesk",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--queues={QUEUE}.webhooks",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
    )
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = QUEUE
    try:
        yield process
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_worker_killed_mid_delivery_delivers_again_under_the_same_uuid(
    receiver, admin_user, agent, support, worker
):
    # given: a receiver that keeps the first request hanging
    receiver.hang_seconds = 30
    receiver.answer("hang")
    services.subscription_create(
        actor=admin_user, url=receiver.url, events=["conversation.closed"], secret="s" * 24
    )
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    # when: the change commits and its delivery is in flight
    desk.conversation_close(conversation=conversation, actor=agent)
    receiver.wait_for(1, timeout=60)
    (child,) = _children(worker.pid)
    os.kill(child, signal.SIGKILL)  # the worker's process dies mid-request
    # then: once the dead attempt's claim expires, the task (run again after the loss) makes the
    # attempt again, under the same delivery id
    deadline = time.monotonic() + 60
    while WebhookDelivery.objects.get().status != DeliveryStatus.SUCCEEDED:
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, "the delivery was not made again"
        time.sleep(0.2)
    first, second = receiver.requests[:2]
    assert first.headers["X-SupportDesk-Delivery"] == second.headers["X-SupportDesk-Delivery"]
    delivery = WebhookDelivery.objects.get()
    assert str(delivery.pk) == second.headers["X-SupportDesk-Delivery"]
    assert delivery.attempts == 1  # the killed attempt never committed
    assert _children(worker.pid) != [child]
