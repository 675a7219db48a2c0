"""Webhook → message through a REAL Celery worker on Redis (a subprocess of ``celery -A``)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from conversations.models import Message
from supportdesk.celery import app
from whatsapp.models import WebhookEvent, WebhookStatus
from whatsapp.services import sandbox as wa
from whatsapp.services.intake import DRAIN_PENDING_KEY
from whatsapp.tests.fake_graph import APP_SECRET, signed_webhook

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/v1/webhooks/whatsapp"

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset"),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the worker needs the shared PostgreSQL database"
    ),
]


@pytest.fixture
def worker(fake_graph):
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_PHONE_NUMBER_ID": fake_graph.phone_number_id,
        "WHATSAPP_API_URL": fake_graph.base_url,
        "WHATSAPP_ACCESS_TOKEN": fake_graph.token,
        "PYTHONPATH": str(ROOT),
    }
    queue = f"wa-test-{os.getpid()}"
    env["CELERY_QUEUE"] = queue  # what the worker queues itself (the bot's turns) comes back
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "supportdesk",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--queues={queue}.intake,{queue}",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=env,
    )
    # A drain queued by an earlier test went to that test's queue: this one must publish its own.
    cache.delete(DRAIN_PENDING_KEY)
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = queue
    try:
        yield process
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_webhook_to_message_through_a_real_worker(client, settings, fake_graph, worker):
    settings.SECURE_SSL_REDIRECT = False
    payload = wa.text_delivery(wa_id="5511987650002", body="Olá pelo worker", name="Maria")
    body, headers = signed_webhook(payload)
    started = time.monotonic()
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 200
    acked_in = time.monotonic() - started

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Message.objects.filter(body="Olá pelo worker").exists():
            break
        assert worker.poll() is None, "the worker died"
        time.sleep(0.2)
    message = Message.objects.get(body="Olá pelo worker")
    assert message.conversation.customer.name == "Maria"
    assert acked_in < 5  # acknowledged without waiting for the processing
    deadline = time.monotonic() + 10
    while WebhookEvent.objects.get().status != WebhookStatus.PROCESSED:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_burst_of_webhooks_is_drained_by_the_worker_and_the_bot_answers_everyone(
    client, settings, fake_graph, worker
):
    settings.SECURE_SSL_REDIRECT = False
    customers = [f"55119876510{i:02d}" for i in range(5)]
    sent = []
    for i in range(30):
        payload = wa.text_delivery(wa_id=customers[i % 5], body=f"rajada {i}", name=f"C{i % 5}")
        body, headers = signed_webhook(payload)
        sent.append(body)
        response = client.post(URL, body, content_type="application/json", headers=headers)
        assert response.status_code == 200
    body, headers = signed_webhook(sent[0])  # Meta delivers one of them again
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 200

    deadline = time.monotonic() + 60
    while WebhookEvent.objects.exclude(status=WebhookStatus.PROCESSED).exists():
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, "deliveries left unprocessed"
        time.sleep(0.2)
    assert Message.objects.filter(direction="in", body__startswith="rajada").count() == 30
    # Each customer got the bot's greeting: through the fake Graph API, to their number.
    while not set(customers) <= {m.get("to") for m in fake_graph.sends}:
        assert time.monotonic() < deadline, f"the bot answered only {fake_graph.sends}"
        time.sleep(0.2)
