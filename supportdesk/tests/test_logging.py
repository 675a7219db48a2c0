"""``LOG_FORMAT=json`` and request ids (contract §11): one JSON object per line, with the request
id of the request — accepted from ``X-Request-ID`` or generated, and sent back — on the lines of
the request and of the Celery tasks it queued."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory
from django.utils.module_loading import import_string

from common import context
from common.logs import ContextFilter
from whatsapp.models import WebhookEvent
from whatsapp.services import inbound
from whatsapp.services import sandbox as wa
from whatsapp.tests.fake_graph import signed_webhook

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/v1/webhooks/whatsapp"


@pytest.fixture
def json_lines(settings):
    """The root logger also writes, as LOG_FORMAT=json configures it, into a buffer."""
    conf = dict(settings.LOGGING["formatters"]["json"])
    formatter = import_string(conf.pop("()"))(**conf)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]

    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.mark.django_db
def test_the_request_id_is_accepted_returned_and_on_the_lines_of_the_tasks_it_queued(
    client, settings, fake_graph, json_lines, monkeypatch
) -> None:
    settings.SECURE_SSL_REDIRECT = False
    original = inbound.webhook_event_process

    def logging_process(**kwargs):
        logging.getLogger("whatsapp.tasks").info("processing a delivery")
        return original(**kwargs)

    monkeypatch.setattr(inbound, "webhook_event_process", logging_process)
    body, headers = signed_webhook(wa.text_delivery(wa_id="5511987650002", body="Oi"))
    response = client.post(
        URL,
        body,
        content_type="application/json",
        headers={**headers, "X-Request-ID": "req-0123-abcd"},
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-0123-abcd"

    line = next(line for line in json_lines() if line["message"] == "processing a delivery")
    assert line["request_id"] == "req-0123-abcd"
    assert line["task"] == "whatsapp.tasks.webhook_process"
    assert line["task_id"]
    assert line["event_id"] == WebhookEvent.objects.get().pk
    assert line["level"] == "INFO"
    assert line["logger"] == "whatsapp.tasks"
    assert "time" in line
    # the task's context ended with it
    assert "task" not in context.current()


@pytest.mark.django_db
def test_a_request_without_a_sane_id_gets_a_new_one(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = False
    first = client.get("/health")
    second = client.get("/health", headers={"X-Request-ID": "bad id with spaces\n"})
    assert len(first["X-Request-ID"]) == 32
    assert len(second["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_the_user_is_known_once_authenticated_never_looked_up(django_user_model) -> None:
    request = RequestFactory().get("/")
    tokens = context.request_start(request, "r1")
    try:
        assert context.current() == {"request_id": "r1"}
        request.user = django_user_model(pk=42, email="a@example.com")
        assert context.current() == {"request_id": "r1", "user_id": 42}
        with context.bound(conversation_id=7):
            assert context.current()["conversation_id"] == 7
        assert "conversation_id" not in context.current()
    finally:
        context.request_end(tokens)
    assert context.current() == {}


def test_the_fields_travel_in_the_task_headers() -> None:
    headers: dict = {}
    with context.bound(request_id="r2", conversation_id=9):
        context.task_publish_carry(headers=headers)
    assert headers[context.TASK_HEADER] == {"request_id": "r2", "conversation_id": 9}

    class Task:
        name = "some.task"

        class request:  # noqa: N801 - Celery's task.request
            supportdesk_context = headers[context.TASK_HEADER]

    context.task_prerun_bind(task_id="t1", task=Task)
    assert context.current() == {
        "request_id": "r2",
        "conversation_id": 9,
        "task_id": "t1",
        "task": "some.task",
    }
    context.task_postrun_unbind(task_id="t1")
    assert context.current() == {}


def test_fields_bound_in_a_task_end_with_it_and_none_leak_from_outside_one() -> None:
    """A service that binds its conversation (the sender does) called outside a task, as a shell
    or a test does, must not mark every later log line of the thread with it."""
    context.bind(conversation_id=5)
    assert context.current() == {}

    class Task:
        name = "some.task"
        request = None

    context.task_prerun_bind(task_id="t2", task=Task)
    context.bind(conversation_id=6)
    assert context.current()["conversation_id"] == 6
    context.task_postrun_unbind(task_id="t2")
    assert context.current() == {}


def test_log_format_json_writes_one_object_per_line() -> None:
    """The real settings with LOG_FORMAT=json, in a fresh process."""
    script = (
        "import django, logging; django.setup();"
        "from common import context;"
        "ctx = context.bound(request_id='abc', conversation_id=5); ctx.__enter__();"
        "logging.getLogger('desk').warning('hello %s', 'world')"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test",
        "LOG_FORMAT": "json",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello world"
    assert line["request_id"] == "abc"
    assert line["conversation_id"] == 5
    assert line["level"] == "WARNING"


def test_an_unknown_log_format_is_refused() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test", "LOG_FORMAT": "xml"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr
