"""Faults with real processes (issue 16 §1): PostgreSQL and Redis stopped under the webhook.

Each test starts private instances (``supportdesk/tests/private_services.py``) on ports of their
own — never the machine's shared PostgreSQL or Redis — and points only its own processes at them.
``bench/faults.py`` measures the same faults under a stream of deliveries.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from celery import current_app
from django.db import connection

from common.breaker import BROKER
from conversations.models import ConversationStatus, Message, MessageStatus
from conversations.tests.factories import ConversationFactory
from supportdesk.tests import processes
from supportdesk.tests.api_support import bearer
from supportdesk.tests.private_services import (
    PrivatePostgres,
    PrivateRedis,
    free_port_from,
    postgres_available,
    redis_available,
)
from whatsapp.models import WebhookEvent, WebhookStatus
from whatsapp.services import sandbox as wa
from whatsapp.services.intake import sign
from whatsapp.tests.fake_graph import APP_SECRET, signed_webhook

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/v1/webhooks/whatsapp"
QUEUE = f"sdfaults-{os.getpid()}"
PHONE = "106540352242999"

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the faults need PostgreSQL (CI's database)"
    ),
]


def _test_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# --- PostgreSQL stopped under a real ASGI server ---------------------------------------------


@pytest.fixture(scope="session")
def private_pg(django_db_setup: Any, django_db_blocker: Any) -> Iterator[PrivatePostgres]:
    """A private PostgreSQL holding the desk's schema (copied from the test database, much faster
    than migrating again): started once, stopped and started by the tests."""
    if not postgres_available() or not (shutil_which("pg_dump") and shutil_which("psql")):
        pytest.skip("PostgreSQL's server programs are not installed")
    with django_db_blocker.unblock():
        source = _test_database_url()
    pg = PrivatePostgres(port=free_port_from(55440))
    try:
        pg.start()
        pg.create_database("desk")
        schema = subprocess.run(
            ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", source],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(
            ["psql", "--quiet", "--set=ON_ERROR_STOP=1", pg.url("desk")],
            input=schema,
            check=True,
            capture_output=True,
        )
        yield pg
    finally:
        pg.close()


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


@pytest.fixture
def daphne_on_private_pg(private_pg: PrivatePostgres) -> Iterator[str]:
    """The desk's ASGI application in a real daphne on the private PostgreSQL (embedded tasks:
    a stored delivery is processed in the server itself)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test",
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": private_pg.url("desk"),
            "DB_POOL_TIMEOUT": "3",
            "INPROCESS_BEAT": "false",
            "SECURE_SSL_REDIRECT": "false",
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_PHONE_NUMBER_ID": PHONE,
            "WHATSAPP_ACCESS_TOKEN": "",
        }
    )
    with processes.daphne(env) as base:
        yield base


def _deliver(base: str, body: bytes) -> requests.Response:
    return requests.post(
        f"{base}{URL}",
        data=body,
        headers={"X-Hub-Signature-256": sign(body, secret=APP_SECRET)},
        timeout=15,
    )


def _rows(pg: PrivatePostgres, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg.url("desk")) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def test_postgres_stopped_the_webhook_answers_503_and_the_redelivery_is_stored_once(
    private_pg: PrivatePostgres, daphne_on_private_pg: str
) -> None:
    base = daphne_on_private_pg
    phone = PHONE  # the server's default number: its account is created on first use

    def body(wamid: str, text: str) -> bytes:
        return wa.encode(
            wa.text_delivery(
                wa_id="5511987650101", body=text, name="Maria", wamid=wamid, phone_number_id=phone
            )
        )

    before = body("wamid.PG.BEFORE", "antes da queda")
    during = body("wamid.PG.DURING", "durante a queda")
    assert _deliver(base, before).status_code == 200

    private_pg.stop(mode="immediate")
    try:
        answers = [_deliver(base, during) for _ in range(3)]  # Meta retries what is not 200
        assert [a.status_code for a in answers] == [503] * 3, [a.text for a in answers]
    finally:
        private_pg.start()

    # Meta keeps delivering until it gets a 200, then once more (a duplicate, as Meta does).
    deadline = time.monotonic() + 30
    while (answer := _deliver(base, during)).status_code != 200:
        assert answer.status_code == 503, (answer.status_code, answer.text)
        assert time.monotonic() < deadline, "the webhook did not recover"
        time.sleep(0.5)
    assert _deliver(base, during).status_code == 200

    deadline = time.monotonic() + 20
    while _rows(private_pg, "SELECT 1 FROM whatsapp_webhookevent WHERE status = 'received'"):
        assert time.monotonic() < deadline, "deliveries left unprocessed"
        time.sleep(0.2)
    messages = _rows(
        private_pg,
        "SELECT wa_message_id, count(*) FROM conversations_message "
        "WHERE direction = 'in' GROUP BY 1 ORDER BY 1",
    )
    assert messages == [("wamid.PG.BEFORE", 1), ("wamid.PG.DURING", 1)]
    # Nothing half-written: every stored delivery was processed (none failed), one customer
    # with one conversation holding both messages.
    statuses = dict(
        _rows(private_pg, "SELECT status, count(*) FROM whatsapp_webhookevent GROUP BY 1")
    )
    assert set(statuses) == {"processed"}
    assert statuses["processed"] == 3  # before, the redelivery answered 200, its duplicate
    assert _rows(private_pg, "SELECT count(*) FROM conversations_conversation") == [(1,)]
    assert _rows(private_pg, "SELECT count(*) FROM conversations_customer") == [(1,)]


# --- Redis stopped under a real Celery worker --------------------------------------------------


@pytest.fixture
def private_redis(settings: Any) -> Iterator[PrivateRedis]:
    """A private Redis as this test's cache and broker (the shared one is never touched)."""
    if not redis_available():
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(port=free_port_from(56390))
    server.start()
    settings.CACHES = {
        "default": {"BACKEND": "common.cache.FailSoftRedisCache", "LOCATION": server.url(0)}
    }
    conf = current_app.conf
    saved = (conf.broker_url, conf.task_always_eager, conf.task_default_queue)
    conf.task_always_eager, conf.task_default_queue = False, QUEUE
    _use_broker(server.url(0))
    BROKER.reset()
    try:
        yield server
    finally:
        _use_broker(saved[0])
        conf.task_always_eager, conf.task_default_queue = saved[1:]
        BROKER.reset()
        server.close()


def _use_broker(url: str) -> None:
    """Publish to ``url`` from now on: Celery's connection and producer pools are built anew
    (kombu keeps one pool per broker address)."""
    current_app.conf.broker_url = url
    current_app._pool = None
    current_app.amqp._producer_pool = None


@pytest.fixture
def worker_on_private_redis(private_redis: PrivateRedis, fake_graph: Any) -> Iterator[Any]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": private_redis.url(0),
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_PHONE_NUMBER_ID": fake_graph.phone_number_id,
        "WHATSAPP_API_URL": fake_graph.base_url,
        "WHATSAPP_ACCESS_TOKEN": fake_graph.token,
        "PYTHONPATH": str(ROOT),
        "CELERY_QUEUE": QUEUE,
    }
    with processes.celery_worker(
        env, queues=[f"{QUEUE}.intake", QUEUE], options=["--pool=solo"]
    ) as process:
        yield process


def _wait(condition: Any, *, timeout: float, worker: Any, what: str, beat: Any = None) -> None:
    """Until ``condition()``; ``beat`` (optional) is called every 3 s meanwhile, the way beat
    sends the sweepers on their schedule."""
    deadline = time.monotonic() + timeout
    next_beat = 0.0
    while not condition():
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, what
        if beat is not None and time.monotonic() >= next_beat:
            beat()
            next_beat = time.monotonic() + 3
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True)
def test_redis_stopped_mid_stream_webhooks_answer_200_and_everything_goes_through_once(  # noqa: PLR0917 - fixtures
    client: Any,
    settings: Any,
    fake_graph: Any,
    agent: Any,
    support: Any,
    private_redis: PrivateRedis,
    worker_on_private_redis: Any,
) -> None:
    settings.SECURE_SSL_REDIRECT = False
    worker = worker_on_private_redis

    def deliver(n: int) -> int:
        payload = wa.text_delivery(
            wa_id=f"55119876503{n % 3:02d}", body=f"fluxo {n}", wamid=f"wamid.REDIS.{n:03d}"
        )
        body, headers = signed_webhook(payload)
        return client.post(URL, body, content_type="application/json", headers=headers).status_code

    assert [deliver(n) for n in range(4)] == [200] * 4
    _wait(
        lambda: Message.objects.filter(body__startswith="fluxo").count() == 4,
        timeout=30,
        worker=worker,
        what="the worker did not process the first deliveries",
    )
    conversation = ConversationFactory(
        whatsapp_account=fake_graph.account,
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        customer__wa_id="5511987650399",
        last_inbound_at=Message.objects.latest("pk").created_at,
    )

    private_redis.stop()
    started = time.monotonic()
    answers = [deliver(n) for n in range(4, 10)]
    sent = bearer(agent).post(
        "/api/v1/messages",
        {"conversation": conversation.pk, "body": "Enviada sem Redis"},
        format="json",
    )
    # Stored in PostgreSQL and acknowledged, fast: nothing waits for Redis.
    assert answers == [200] * 6
    assert sent.status_code == 201, sent.content[:300]
    assert time.monotonic() - started < 10
    # Every acknowledged delivery is in PostgreSQL (a drain still running in the worker when
    # Redis went may already have taken some: what matters is that none is lost or doubled).
    assert WebhookEvent.objects.count() == 10
    out = Message.objects.get(body="Enviada sem Redis")
    assert out.status == MessageStatus.QUEUED

    private_redis.start()  # empty: whatever it held is gone
    # What beat sends on its schedule (every 30 and 60 s; every 3 s here): the sweepers. The
    # worker may take a few rounds to be back on Redis, and a publish from it may fail while
    # its breaker is open: the next round of the sweepers catches up, as in production.
    from whatsapp.tasks import outbound_requeue_stuck, webhook_drain

    def beat() -> None:
        try:
            webhook_drain.delay()
            outbound_requeue_stuck.delay(older_than_seconds=0)
        except Exception:  # noqa: S110 - Redis not answering yet: the next round
            pass

    _wait(
        lambda: not WebhookEvent.objects.filter(status=WebhookStatus.RECEIVED).exists(),
        timeout=60,
        worker=worker,
        what="the deliveries stored while Redis was down were not processed",
        beat=beat,
    )
    stored = list(
        Message.objects.filter(direction="in", wa_message_id__startswith="wamid.REDIS.")
        .order_by("wa_message_id")
        .values_list("wa_message_id", flat=True)
    )
    assert stored == [f"wamid.REDIS.{n:03d}" for n in range(10)]  # each exactly once
    _wait(
        lambda: Message.objects.get(pk=out.pk).status != MessageStatus.QUEUED,
        timeout=60,
        worker=worker,
        what="the agent's send did not go out",
        beat=beat,
    )
    beat()
    time.sleep(2)  # more publishes of the same send (the sweepers') have had their chance
    ours = [s for s in fake_graph.message_sends if (s.get("text") or {}).get("body") == out.body]
    assert len(ours) == 1
    assert Message.objects.get(pk=out.pk).status == MessageStatus.SENT
