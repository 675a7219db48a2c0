"""Webhook → message through a REAL Celery worker on Redis (a subprocess of ``celery -A``)."""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from conversations.models import Message
from supportdesk.celery import app
from supportdesk.tests import processes
from whatsapp.models import WebhookEvent, WebhookStatus
from whatsapp.services import sandbox as wa
from whatsapp.services.intake import DRAIN_PENDING_KEY
from whatsapp.tests.fake_graph import signed_webhook

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


def _environment(fake_graph) -> dict[str, str]:
    """What a worker or server process of the desk needs to share this test's database."""
    return processes.desk_environment(
        queue=QUEUE, redis_url=settings.REDIS_URL, fake_graph=fake_graph
    )


QUEUE = f"wa-test-{os.getpid()}"


@pytest.fixture
def worker(fake_graph):
    # A drain queued by an earlier test went to that test's queue: this one must publish its own.
    cache.delete(DRAIN_PENDING_KEY)
    previous = (app.conf.task_always_eager, app.conf.task_default_queue)
    app.conf.task_always_eager = False
    app.conf.task_default_queue = QUEUE
    try:
        with processes.celery_worker(
            _environment(fake_graph), queues=[f"{QUEUE}.intake", QUEUE]
        ) as process:
            yield process
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = previous


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


@pytest.fixture
def daphne_server(fake_graph, worker):
    """The desk's ASGI application in a real daphne process, as production runs it."""
    env = {**_environment(fake_graph), "SECURE_SSL_REDIRECT": "false"}
    with processes.daphne(env, stdout=None) as base:
        yield base


def test_deliveries_posted_to_daphne_at_once_are_stored_at_the_edge_and_processed(
    fake_graph, worker, daphne_server
):
    customers = [f"55119876520{i:02d}" for i in range(8)]
    deliveries = [
        signed_webhook(wa.text_delivery(wa_id=customers[i % 8], body=f"pela borda {i}"))
        for i in range(40)
    ]

    def post(delivery: tuple[bytes, dict[str, str]]) -> requests.Response:
        body, headers = delivery
        return requests.post(
            f"{daphne_server}{URL}",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=10,
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, [*deliveries, deliveries[3]]))  # one delivered twice
    forged = post((deliveries[0][0], {"X-Hub-Signature-256": "sha256=" + "0" * 64}))

    assert [a.status_code for a in answers] == [200] * 41
    assert all(a.text.startswith("ok ") for a in answers)
    assert forged.status_code == 403
    assert WebhookEvent.objects.count() == 41  # the forged one stored nothing
    deadline = time.monotonic() + 60
    while WebhookEvent.objects.exclude(status=WebhookStatus.PROCESSED).exists():
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, "deliveries left unprocessed"
        time.sleep(0.2)
    bodies = Message.objects.filter(direction="in").values_list("body", flat=True)
    assert sorted(bodies) == sorted(f"pela borda {i}" for i in range(40))
