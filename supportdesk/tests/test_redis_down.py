"""Redis gone (issue 16 §1): the cache (throttles, presence, the drain's hint) and the broker
refuse connections. The API and the console keep answering, an agent's send is stored as
queued, and nothing answers 500. Redis is "stopped" by pointing the cache and the broker at a
port where nothing listens: the shared Redis of the machine is never touched."""

import socket
from typing import Any

import pytest
from celery import current_app
from django.test import Client

from conversations.models import ConversationStatus, Message, MessageStatus
from conversations.tests.factories import ConversationFactory
from supportdesk.tests.api_support import bearer

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again on leaving: nothing listens there


@pytest.fixture
def redis_down(settings: Any) -> Any:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.CACHES = {"default": {"BACKEND": "common.cache.FailSoftRedisCache", "LOCATION": url}}
    settings.SECURE_SSL_REDIRECT = False
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "user": "600/min",
            "anon": "60/min",
        },
    }
    conf = current_app.conf
    saved = (conf.broker_url, conf.task_always_eager, conf.broker_connection_retry)
    conf.broker_url, conf.task_always_eager = url, False
    conf.broker_transport_options = {"max_retries": 0}
    _new_broker_pool()
    yield url
    conf.broker_url, conf.task_always_eager, _ = saved
    conf.broker_transport_options = {}
    _new_broker_pool()


def _new_broker_pool() -> None:
    """The app's broker pool is built again for the broker URL now configured. Never closed:
    kombu keeps one pool per URL for the whole process, and a closed one stays closed (every
    later task would fail with "Acquire on closed pool")."""
    current_app._pool = None
    current_app.amqp._producer_pool = None


def test_api_reads_and_sends_without_redis(redis_down: Any, agent: Any, support: Any) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    api = bearer(agent)
    assert api.get("/api/v1/conversations").status_code == 200
    assert api.get(f"/api/v1/conversations/{conversation.pk}").status_code == 200
    sent = api.post(
        "/api/v1/messages", {"conversation": conversation.pk, "body": "Já volto"}, format="json"
    )
    assert sent.status_code in (201, 202), sent.content[:300]
    message = Message.objects.get(body="Já volto")
    # stored, waiting for the sender: the sweeper sends it once Redis is back
    assert message.status == MessageStatus.QUEUED
    assert bearer(None).get("/api/v1/conversations").status_code == 401


def test_console_works_without_redis(redis_down: Any, agent: Any, support: Any) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    client = Client()
    client.force_login(agent)
    assert client.get("/").status_code == 200
    assert client.get(f"/c/{conversation.pk}/").status_code == 200
    response = client.post(
        f"/c/{conversation.pk}/send/", {"body": "Um momento"}, headers={"HX-Request": "true"}
    )
    assert response.status_code < 500
    assert Message.objects.filter(body="Um momento").exists()
    login = Client().post("/login/", {"username": agent.email, "password": "wrong"})
    assert login.status_code < 500


def test_the_cache_misses_while_redis_is_stopped_and_works_again_when_it_returns(
    tmp_path: Any,
) -> None:
    import shutil
    import subprocess
    import time

    from common.cache import FailSoftRedisCache

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = _closed_port()

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [server, "--port", str(port), "--save", "", "--appendonly", "no"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return process
            time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    cache = FailSoftRedisCache(f"redis://127.0.0.1:{port}/0", {})
    private = start()
    try:
        cache.set("k", "v")
        assert cache.get("k") == "v"
        private.terminate()
        private.wait(10)
        # stopped: misses, writes dropped, add lets the caller go on, incr says "no such key"
        assert cache.get("k", "missing") == "missing"
        assert cache.get_many(["k"]) == {}
        cache.set("k", "w")
        assert cache.add("n", 1) is True
        with pytest.raises(ValueError):
            cache.incr("n")
        assert cache.delete("k") is False
        private = start()
        cache.set("k", "back")
        assert cache.get("k") == "back"
    finally:
        private.terminate()
        private.wait(10)
