"""The desk's timers through the production path: a REAL ``celery beat`` publishes the schedule
of ``CELERY_BEAT_SCHEDULE`` to Redis and a REAL ``celery worker`` runs it against this test's
PostgreSQL database and the fake Graph API (issue 13 §3, contract §10).

The schedule is the settings' own, shortened by ``BEAT_INTERVAL_SCALE`` (0.05: the scheduled
messages' sender every 0.75 s, the auto-close sweep every 3 s), so a message scheduled a few
seconds ahead goes out, once, and a conversation idle past its department's
``auto_close_minutes`` gets its closing message and is closed, within seconds. (The same timers
under controlled time: ``conversations/tests/test_scheduled_messages.py``, ``test_auto_close.py``.)
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from conversations.models import (
    ConversationEvent,
    ConversationStatus,
    Direction,
    EventKind,
    Message,
    MessageStatus,
    SenderKind,
)
from conversations.services import automate
from conversations.tests.factories import MessageFactory
from supportdesk.celery import app
from whatsapp.tests.conftest import open_conversation
from whatsapp.tests.test_worker import _environment

ROOT = Path(__file__).resolve().parents[2]
QUEUE = f"timers-test-{os.getpid()}"
CLOSING = "Encerramos por falta de resposta. É só escrever de novo!"

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset"),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the worker needs the shared PostgreSQL database"
    ),
]


def _celery(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "supportdesk", *args, "--loglevel=WARNING"],
        cwd=ROOT,
        env=env,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def beat_and_worker(fake_graph: Any, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """A celery beat and a celery worker for the block, sharing this test's database, Redis
    (its own queue) and fake Graph API; started once the test's data is written, so the first
    runs already see it."""
    env = {
        **_environment(fake_graph),
        "CELERY_QUEUE": QUEUE,
        "BEAT_INTERVAL_SCALE": "0.05",
        "LANGUAGE_CODE": "pt-br",
    }
    worker = _celery(
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--queues={QUEUE}.intake,{QUEUE},{QUEUE}.webhooks",
        env=env,
    )
    beat = _celery("beat", f"--schedule={tmp_path / 'beat-schedule'}", "--max-interval=1", env=env)
    # What this process queues (a message's send after a commit here) goes to that worker too.
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = QUEUE
    try:
        yield [beat, worker]
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous
        _stop(beat)
        _stop(worker)


def _until(condition: Callable[[], bool], what: str, processes: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            assert process.poll() is None, f"a celery process died while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _bodies(fake_graph: Any) -> list[str]:
    return [s.get("text", {}).get("body", "") for s in fake_graph.message_sends]


def test_beat_and_worker_send_a_scheduled_message_once_and_auto_close_an_idle_conversation(
    fake_graph: Any, agent: Any, support: Any, tmp_path: Path
) -> None:
    started = time.monotonic()
    support.auto_close_minutes = 30
    support.auto_close_message = CLOSING
    support.save()
    # a conversation where the agent schedules a reminder for a few seconds from now
    reminded = open_conversation(fake_graph, agent, support, customer__wa_id="5511987650101")
    scheduled = automate.message_schedule(
        conversation=reminded,
        actor=agent,
        send_at=timezone.now() + timedelta(seconds=4),
        body="Lembrete pelo beat",
    )
    # one where our message was the last, 31 idle minutes ago: due for auto-close
    idle = open_conversation(
        fake_graph,
        agent,
        support,
        customer__wa_id="5511987650102",
        inbound_ago=timedelta(minutes=40),
    )
    long_ago = timezone.now() - timedelta(minutes=31)
    ours = MessageFactory(
        conversation=idle,
        direction=Direction.OUT,
        sender=SenderKind.AGENT,
        sender_user=agent,
        body="Pode confirmar?",
        status=MessageStatus.READ,
    )
    Message.objects.filter(pk=ours.pk).update(created_at=long_ago)
    type(idle).objects.filter(pk=idle.pk).update(last_message_at=long_ago)
    # one idle as long whose customer wrote last: never closed
    waiting_for_us = open_conversation(
        fake_graph,
        agent,
        support,
        customer__wa_id="5511987650103",
        inbound_ago=timedelta(minutes=45),
    )
    type(waiting_for_us).objects.filter(pk=waiting_for_us.pk).update(
        last_message_at=timezone.now() - timedelta(minutes=45)
    )

    # when the beat and the worker run
    with beat_and_worker(fake_graph, tmp_path) as processes:
        # then the scheduled message goes out at its moment, through the fake Graph API
        _until(
            lambda: Message.objects.filter(pk=scheduled.pk, status=MessageStatus.SENT).exists(),
            "the scheduled message to be sent",
            processes,
            timeout=30,
        )
        # and the idle conversation gets its closing message and is closed
        _until(
            lambda: (
                type(idle).objects.filter(pk=idle.pk, status=ConversationStatus.CLOSED).exists()
                and Message.objects.filter(
                    conversation=idle, body=CLOSING, status=MessageStatus.SENT
                ).exists()
            ),
            "the auto-close",
            processes,
            timeout=20,
        )
        # a few more runs of both entries change nothing (each is idempotent)
        time.sleep(3.5)
        for process in processes:
            assert process.poll() is None

    sent = Message.objects.get(pk=scheduled.pk)
    assert sent.wa_message_id.startswith("wamid.FAKE")
    assert sent.send_at is not None and sent.created_at >= sent.send_at
    assert _bodies(fake_graph).count("Lembrete pelo beat") == 1
    assert _bodies(fake_graph).count(CLOSING) == 1
    closing = Message.objects.get(conversation=idle, body=CLOSING)
    assert (closing.sender, closing.direction) == (SenderKind.BOT, Direction.OUT)
    closed = ConversationEvent.objects.get(conversation=idle, kind=EventKind.CLOSED)
    assert closed.actor is None
    assert closed.after["reason"] == automate.AUTO_CLOSE_REASON
    waiting_for_us.refresh_from_db()
    assert waiting_for_us.status == ConversationStatus.OPEN
    reminded.refresh_from_db()
    assert reminded.status == ConversationStatus.OPEN  # the customer has not had the time yet
    assert time.monotonic() - started < 60
