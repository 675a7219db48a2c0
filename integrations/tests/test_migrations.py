"""The deliveries already written before each event's data was stored once keep what they send."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from integrations import outbox
from integrations.models import WebhookDelivery

BEFORE = [("integrations", "0002_delivery_claim_id")]
AFTER = [("integrations", "0003_outgoing_event_once")]


@pytest.mark.django_db(transaction=True)
def test_a_pending_delivery_of_before_the_change_sends_the_same_body():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        subscription = old.get_model("integrations", "WebhookSubscription").objects.create(
            url="https://hooks.example.com/x", events=["*"], secret="s"
        )
        data = {"id": 7, "status": "closed", "customer": {"name": "Zé Ninguém"}}
        delivery = old.get_model("integrations", "WebhookDelivery").objects.create(
            subscription_id=subscription.pk,
            event="conversation.closed",
            payload={
                "id": "ignored",
                "type": "conversation.closed",
                "created_at": "2026-12-01T10:00:00+00:00",
                "data": data,
            },
        )
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    body = json.loads(outbox.delivery_body(WebhookDelivery.objects.get(pk=delivery.pk)))
    assert body == {
        "id": str(delivery.pk),
        "type": "conversation.closed",
        "created_at": "2026-12-01T10:00:00+00:00",
        "data": data,
    }
