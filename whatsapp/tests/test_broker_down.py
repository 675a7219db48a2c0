"""The broker (Redis) down under the publishers (issue 16 §1): a publish that fails marks it
down (common.breaker.BROKER), what could not be published is handed over, once, as soon as a
publish succeeds again, and nothing waits for a dead broker meanwhile."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import current_app

from common.breaker import BROKER
from whatsapp.services import intake, outbound
from whatsapp.tasks import message_send, webhook_drain


@pytest.fixture
def broker(monkeypatch: Any) -> Iterator[dict[str, Any]]:
    """A broker the test turns off and on: ``state["up"]``; publishes in ``state["sent"]``."""
    state: dict[str, Any] = {"up": True, "sent": [], "tried": 0}

    def publish(name: str) -> Any:
        def delay(*args: Any, **kwargs: Any) -> None:
            state["tried"] += 1
            if not state["up"]:
                raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")
            state["sent"].append((name, args))

        return delay

    monkeypatch.setattr(message_send, "delay", publish("send"))
    monkeypatch.setattr(message_send, "apply_async", lambda args, **kw: publish("send")(*args))
    monkeypatch.setattr(webhook_drain, "delay", publish("drain"))
    monkeypatch.setattr(intake, "_drain_seen_until", 0.0)
    monkeypatch.setattr(outbound, "_unpublished", set())
    current_app.conf.task_always_eager = False  # the root conftest sets it back
    yield state


def test_sends_kept_back_while_the_broker_is_down_are_published_once_when_it_returns(
    broker: dict[str, Any], locmem_cache: Any
) -> None:
    broker["up"] = False
    assert outbound.outbound_queue(message_id=1) is False  # tried, failed: marked down
    assert broker["tried"] == 1
    assert outbound.outbound_queue(message_id=2) is False  # skipped: nothing waits for Redis
    assert broker["tried"] == 1
    assert BROKER.is_open
    broker["up"] = True
    BROKER._down_until = 1.0  # the cooldown is over
    assert outbound.outbound_queue(message_id=3) is True
    sends = sorted(args for name, args in broker["sent"] if name == "send")
    assert sends == [(1,), (2,), (3,)]  # each once
    # the deliveries stored meanwhile get their drain too
    assert ("drain", ()) in broker["sent"]
    assert not BROKER.is_open
    assert outbound.outbound_queue_unpublished() == 0


def test_the_webhook_does_not_wait_for_a_dead_broker(
    broker: dict[str, Any], locmem_cache: Any
) -> None:
    broker["up"] = False
    intake.webhook_drain_wake()
    intake.webhook_drain_wake(force=True)
    intake.webhook_drain_wake(force=True)
    assert broker["tried"] == 1


@pytest.fixture
def locmem_cache(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": str(uuid.uuid4()),  # no drain hint left by another test
        }
    }
