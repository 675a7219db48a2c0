"""Issue 13: every workflow change emits its domain event, and the event reaches both an outgoing
webhook subscriber (a real HTTP receiver subscribed to ``*``) under the type contract §8 names,
and the consoles' live updates (the channel layer, as a consumer listens to it).

One conversation lives through the workflow: the bot hands it to a round-robin queue (assigned
automatically), the customer's words raise its priority by a rule, the agent sets the priority
and tags it, tags the contact, schedules a message and cancels it, schedules another that the
beat's task sends, and the auto-close sweep closes it after its closing message."""

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from channels.layers import get_channel_layer
from django.utils import timezone

from accounts import presence
from common import realtime
from conversations import services as desk
from conversations.models import (
    ConversationStatus,
    Message,
    Priority,
    PriorityRule,
    RuleCondition,
    Tag,
)
from conversations.tasks import auto_close_sweep, scheduled_messages_send
from conversations.tests.factories import ConversationFactory
from departments.models import AssignmentMode
from departments.tests.factories import DepartmentFactory
from integrations import services
from integrations.models import DeliveryStatus, WebhookDelivery
from supportdesk.tests.api_support import bearer

from .receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

CLOSING = "Encerramos por falta de resposta."


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def online_agent(support: Any, agent: Any) -> Iterator[Any]:
    presence.presence_connect(user_id=agent.pk)
    yield agent
    presence.presence_disconnect(user_id=agent.pk)


class Observer:
    """What reached the subscriber and the consoles since the last look. The consoles' side
    listens as a consumer does, on one event loop of its own for every look (the Redis layer's
    receive buffers belong to the loop that first used them)."""

    def __init__(self, receiver: Receiver, *groups: str) -> None:
        self.receiver = receiver
        self.seen = 0
        self.loop = asyncio.new_event_loop()
        self.layer = get_channel_layer()
        self.channels = [self.loop.run_until_complete(self._listen(group)) for group in groups]

    async def _listen(self, group: str) -> str:
        channel = await self.layer.new_channel()
        await self.layer.group_add(group, channel)
        return str(channel)

    def close(self) -> None:
        self.loop.close()

    def webhooks(self) -> list[dict[str, Any]]:
        fresh = self.receiver.requests[self.seen :]
        self.seen += len(fresh)
        bodies = [json.loads(r.body) for r in fresh]
        for body, request in zip(bodies, fresh, strict=True):
            assert request.headers["X-SupportDesk-Event"] == body["type"]
        return bodies

    async def _drain(self, channel: str) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        while True:
            try:
                message = await asyncio.wait_for(self.layer.receive(channel), timeout=0.3)
            except TimeoutError:
                return received
            received.extend(message["events"] if message["type"] == "desk.events" else [message])

    def frames(self) -> list[tuple[str, dict[str, Any]]]:
        """The frames of the department's queue, then those of the agent's own group."""
        return [
            (f["event"], f["data"])
            for channel in self.channels
            for f in self.loop.run_until_complete(self._drain(channel))
        ]


def test_every_workflow_change_reaches_webhook_subscribers_and_consoles(
    receiver: Receiver,
    admin_user: Any,
    online_agent: Any,
    fake_graph: Any,
    request: pytest.FixtureRequest,
) -> None:
    agent = online_agent
    support = DepartmentFactory(name="Atendimento", assignment=AssignmentMode.ROUND_ROBIN)
    support.auto_close_minutes = 30
    support.auto_close_message = CLOSING
    support.save()
    agent.departments.add(support)
    vip = Tag.objects.create(name="VIP", color="#dc2626")
    PriorityRule.objects.create(
        name="Palavras",
        condition=RuleCondition.KEYWORDS,
        keywords="urgente",
        priority=Priority.URGENT,
    )
    services.subscription_create(actor=admin_user, url=receiver.url, events=["*"], secret="s3")
    conversation = ConversationFactory(
        whatsapp_account=fake_graph.account,
        status=ConversationStatus.BOT,
        customer__wa_id="5511987650002",
        last_inbound_at=timezone.now(),
    )
    seen = Observer(receiver, realtime.department_group(support.pk), realtime.user_group(agent.pk))
    request.addfinalizer(seen.close)
    api = bearer(agent)

    # the bot hands the customer to the queue: assigned automatically, at once
    desk.conversation_route_to_department(
        conversation=conversation, department=support, reason="menu"
    )
    receiver.wait_for(2)
    webhooks = seen.webhooks()
    assert [w["type"] for w in webhooks] == ["conversation.transferred", "conversation.assigned"]
    assert webhooks[1]["data"]["assigned_to"]["id"] == agent.pk
    frames = seen.frames()
    assert ("conversation_assigned", {"conversationId": conversation.pk, "userId": agent.pk}) in (
        frames
    )

    # the customer's words raise the priority (an admin's rule)
    desk.message_record_inbound(conversation=conversation, body="É URGENTE, por favor")
    receiver.wait_for(4)
    webhooks = seen.webhooks()
    assert [w["type"] for w in webhooks] == ["conversation.updated", "message.created"]
    assert webhooks[0]["data"]["priority"] == "urgent"
    assert any(
        name == "conversation_update" and data["priority"] == "urgent"
        for name, data in seen.frames()
    )

    # the agent sets the priority, tags the conversation, then the contact
    assert (
        api.patch(
            f"/api/v1/conversations/{conversation.pk}", {"priority": "high"}, format="json"
        ).status_code
        == 200
    )
    assert (
        api.put(
            f"/api/v1/conversations/{conversation.pk}/tags", {"tags": [vip.pk]}, format="json"
        ).status_code
        == 200
    )
    assert (
        api.put(
            f"/api/v1/contacts/{conversation.customer_id}/tags", {"tags": [vip.pk]}, format="json"
        ).status_code
        == 200
    )
    receiver.wait_for(7)
    webhooks = seen.webhooks()
    assert [w["type"] for w in webhooks] == ["conversation.updated"] * 3
    assert webhooks[0]["data"]["priority"] == "high"
    assert webhooks[1]["data"]["tags"] == [{"id": vip.pk, "name": "VIP", "color": "#dc2626"}]
    assert webhooks[2]["data"]["customer"]["tags"] == [
        {"id": vip.pk, "name": "VIP", "color": "#dc2626"}
    ]
    updates = [data for name, data in seen.frames() if name == "conversation_update"]
    assert [u["priority"] for u in updates][-3:] == ["high", "high", "high"]
    assert updates[-2]["tags"] == [{"id": vip.pk, "name": "VIP", "color": "#dc2626"}]

    # a scheduled message, then cancelled: the consoles see both; the desk keeps it internal
    # until it goes (contract §8 has no type for it: subscribers hear of it as message.created)
    start = timezone.now()
    later = api.post(
        "/api/v1/messages",
        {
            "conversation": conversation.pk,
            "body": "Não vai",
            "send_at": (start + timedelta(minutes=5)).isoformat(),
        },
        format="json",
    ).json()
    assert api.delete(f"/api/v1/messages/{later['id']}").status_code == 204
    frames = seen.frames()
    # (each of the two groups listened to: the department's and the agent's)
    assert [(n, d["id"], d["status"]) for n, d in frames if n == "message_update"] == [
        ("message_update", later["id"], "scheduled"),  # scheduled
        ("message_update", later["id"], "scheduled"),  # cancelled: the timeline drops it
    ] * 2
    assert seen.webhooks() == []

    # another one goes at its moment through the beat's task: created (queued), then sent
    reminder = api.post(
        "/api/v1/messages",
        {
            "conversation": conversation.pk,
            "body": "Lembrete",
            "send_at": (start + timedelta(minutes=10)).isoformat(),
        },
        format="json",
    ).json()
    assert ("message_update", reminder["id"]) in [(n, d["id"]) for n, d in seen.frames()]
    # (the in-memory layer drops a channel whose old frames expire under travelled time: the
    # consoles read theirs before the clock moves)
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        assert scheduled_messages_send.apply().result == 1
    receiver.wait_for(9)
    webhooks = seen.webhooks()
    assert [(w["type"], w["data"]["id"], w["data"]["status"]) for w in webhooks] == [
        ("message.created", reminder["id"], "queued"),
        ("message.status", reminder["id"], "sent"),
    ]
    assert webhooks[0]["data"]["conversation"]["id"] == conversation.pk
    assert ("new_message", reminder["id"]) in [(n, d.get("id")) for n, d in seen.frames()]

    # idle past auto_close_minutes while waiting for the customer: closing message, closed
    with time_machine.travel(start + timedelta(minutes=45), tick=False):
        assert auto_close_sweep.apply().result == 1
    receiver.wait_for(12)
    webhooks = seen.webhooks()
    assert [w["type"] for w in webhooks] == [
        "message.created",
        "message.status",
        "conversation.closed",
    ]
    assert webhooks[0]["data"]["body"] == CLOSING
    assert webhooks[2]["data"]["status"] == "closed"
    frames = seen.frames()
    assert any(n == "conversation_update" and d["status"] == "closed" for n, d in frames)
    assert Message.objects.filter(conversation=conversation, body=CLOSING).exists()

    # every delivery went through, signed, once
    deliveries = WebhookDelivery.objects.all()
    assert deliveries.count() == 12
    assert set(deliveries.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
