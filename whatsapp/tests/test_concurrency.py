"""Concurrent deliveries for one customer, on separate database connections (PostgreSQL)."""

from functools import partial

import pytest
from django.db import connection

from conversations.models import Conversation, Customer, Message
from supportdesk.tests.concurrency import errors_of, race
from whatsapp.services import sandbox as wa
from whatsapp.services.inbound import webhook_event_process
from whatsapp.services.intake import webhook_receive
from whatsapp.tests.fake_graph import signed_webhook

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL (row locks, real concurrency)"
    ),
]

WORKERS = 8


def _store(wa_id: str, body: str, wamid: str) -> int:
    payload = wa.delivery(
        contacts=[wa.contact(wa_id=wa_id, name="Maria")],
        messages=[wa.message(wa_id=wa_id, content={"body": body}, wamid=wamid)],
    )
    raw, headers = signed_webhook(payload)
    return webhook_receive(raw_body=raw, signature=headers["X-Hub-Signature-256"]).pk


def _race(event_ids: list[int]) -> list[BaseException]:
    return errors_of(race(*[partial(webhook_event_process, event_id=pk) for pk in event_ids]))


def test_concurrent_deliveries_for_one_customer_make_one_open_conversation(fake_graph):
    # Both forms of a Brazilian mobile number, as Meta and people write it.
    forms = ["5511987654321", "551187654321"]
    event_ids = [_store(forms[i % 2], f"msg {i}", f"wamid.RACE{i}") for i in range(WORKERS)]
    errors = _race(event_ids)
    assert errors == []
    assert Customer.objects.count() == 1
    assert Conversation.objects.exclude(status="closed").count() == 1
    assert Message.objects.filter(direction="in").count() == WORKERS


def test_the_same_delivery_processed_concurrently_stores_each_message_once(fake_graph):
    event_ids = [_store("5511987650002", "Oi", "wamid.SAME") for _ in range(WORKERS)]
    errors = _race(event_ids)
    assert errors == []
    assert Message.objects.filter(wa_message_id="wamid.SAME").count() == 1
    assert Conversation.objects.get().unread_count == 1
