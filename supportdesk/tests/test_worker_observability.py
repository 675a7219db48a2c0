"""A REAL Celery worker (a subprocess of ``celery -A``, LOG_FORMAT=json): the tasks a request
queued log with that request's id, and what the worker counts shows in the web process's
``/metrics`` through the shared multiprocess directory."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from supportdesk.celery import app
from supportdesk.tests import processes
from whatsapp.models import WebhookEvent, WebhookStatus
from whatsapp.services import sandbox as wa
from whatsapp.services.intake import DRAIN_PENDING_KEY
from whatsapp.tests.fake_graph import signed_webhook

ROOT = Path(__file__).resolve().parents[2]
QUEUE = f"observe-test-{os.getpid()}"

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset"),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the worker needs the shared PostgreSQL database"
    ),
]


@pytest.fixture
def worker(fake_graph, tmp_path):
    env = processes.desk_environment(
        queue=QUEUE,
        redis_url=settings.REDIS_URL,
        fake_graph=fake_graph,
        LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    log = tmp_path / "worker.log"
    cache.delete(DRAIN_PENDING_KEY)
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = QUEUE
    try:
        with (
            log.open("w") as out,
            processes.celery_worker(
                env,
                queues=[f"{QUEUE}.intake", QUEUE],
                options=["--pool=solo"],
                loglevel="INFO",
                stdout=out,
                stderr=subprocess.STDOUT,
            ) as process,
        ):
            yield process, log, tmp_path
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous


def _json_lines(log: Path) -> list[dict]:
    lines = []
    for raw in log.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def test_a_real_workers_task_logs_with_the_request_id_of_the_request_that_queued_it(
    client, settings, fake_graph, worker
) -> None:
    process, log, directory = worker
    settings.SECURE_SSL_REDIRECT = False
    body, headers = signed_webhook(wa.text_delivery(wa_id="5511987650002", body="Oi, worker"))
    response = client.post(
        "/api/v1/webhooks/whatsapp",
        body,
        content_type="application/json",
        headers={**headers, "X-Request-ID": "from-the-proxy-42"},
    )
    assert response.status_code == 200
    deadline = time.monotonic() + 60
    while WebhookEvent.objects.get().status != WebhookStatus.PROCESSED:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)

    deadline = time.monotonic() + 10
    while True:
        mine = [
            line
            for line in _json_lines(log)
            if line.get("task") == "whatsapp.tasks.webhook_drain"
            and line.get("request_id") == "from-the-proxy-42"
        ]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine, log.read_text()[-3000:]
    assert mine[0]["task_id"]

    # the worker counted the processing into the shared directory
    files = list(directory.glob("counter_*.db"))
    assert files
