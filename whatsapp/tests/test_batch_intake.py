"""Deliveries processed together: what a burst of webhooks turns into, and what it costs.

The drain task (``whatsapp.tasks.webhook_drain``) stores many deliveries in one go; the result must
be exactly what processing them one by one gives, whatever Meta redelivers or quotes.
"""

import json
import time
from functools import partial

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.models import Conversation, Customer, Message, MessageReaction
from conversations.serializers import (
    ConversationSerializer,
    MessageSerializer,
    conversation_payload,
    message_payload,
)
from conversations.services import conversations_open_for_customers
from supportdesk.celery import app as celery_app
from supportdesk.tests.concurrency import errors_of, race
from whatsapp import tasks
from whatsapp.models import WebhookEvent, WebhookStatus
from whatsapp.services import inbound, intake
from whatsapp.services import sandbox as wa
from whatsapp.tests.fake_graph import signed_webhook

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/webhooks/whatsapp"
T0 = int(time.time()) - 600  # within the 24-hour window: the bot answers


def store(payload) -> int:
    """A signed delivery stored like the view does (``received``), not processed yet."""
    body, headers = signed_webhook(payload)
    return intake.webhook_receive(
        raw_body=body, signature=headers["X-Hub-Signature-256"], queue=False
    ).pk


def text(wa_id: str, body: str, wamid: str, ts: int, **extra) -> int:
    return store(
        wa.delivery(
            contacts=[wa.contact(wa_id=wa_id, name=f"Cliente {wa_id[-4:]}")],
            messages=[
                wa.message(wa_id=wa_id, content={"body": body}, wamid=wamid, timestamp=ts, **extra)
            ],
        )
    )


def test_a_burst_is_stored_once_per_message_in_whatsapp_order(fake_graph):
    ana, bia = "5511987650001", "5511987650002"
    ids = [
        text(ana, "segunda", "wamid.A2", T0 + 20),
        text(ana, "primeira", "wamid.A1", T0 + 10),  # Meta delivered it late
        text(bia, "oi", "wamid.B1", T0 + 15),
        text(ana, "segunda", "wamid.A2", T0 + 20),  # redelivered within the burst
        # Ana's other form of the same number (without the ninth digit)
        text("551187650001", "terceira", "wamid.A3", T0 + 30),
    ]
    processed, failed = inbound.webhook_events_drain(batch_size=100)

    assert (processed, failed) == (len(ids), [])
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {WebhookStatus.PROCESSED}
    assert Customer.objects.count() == 2
    ana_chat = Conversation.objects.get(customer__wa_id__in=[ana, "551187650001"])
    inbound_messages = ana_chat.messages.filter(direction="in").order_by("created_at")
    bodies = list(inbound_messages.values_list("body", flat=True))
    assert bodies == ["primeira", "segunda", "terceira"]
    assert ana_chat.unread_count == 3
    assert Message.objects.filter(direction="in").count() == 4
    # What Meta sent is kept byte for byte (the admin shows it parsed).
    event = WebhookEvent.objects.get(pk=ids[2])
    assert json.loads(event.raw_body)["entry"][0]["changes"][0]["value"]["messages"][0]["id"] == (
        "wamid.B1"
    )


def test_a_reply_and_a_reaction_to_a_message_of_the_same_burst_find_it(fake_graph):
    maria = "5511987650003"
    text(maria, "meu pedido não chegou", "wamid.Q1", T0)
    text(maria, "é o 1234", "wamid.Q2", T0 + 5, context_id="wamid.Q1")
    store(
        wa.delivery(
            contacts=[wa.contact(wa_id=maria, name="Maria")],
            messages=[
                wa.message(
                    wa_id=maria,
                    type="reaction",
                    content={"message_id": "wamid.Q1", "emoji": "🙏"},
                    wamid="wamid.Q3",
                    timestamp=T0 + 6,
                )
            ],
        )
    )
    inbound.webhook_events_drain(batch_size=100)

    quoted = Message.objects.get(wa_message_id="wamid.Q1")
    assert Message.objects.get(wa_message_id="wamid.Q2").reply_to == quoted
    reaction = MessageReaction.objects.get(message=quoted)
    assert reaction.emoji == "🙏"
    assert not Message.objects.filter(wa_message_id="wamid.Q3").exists()


def test_one_bad_message_does_not_hold_back_the_rest_of_the_batch(fake_graph, monkeypatch):
    good = [text(f"55119876500{i:02d}", "oi", f"wamid.G{i}", T0 + i) for i in range(5)]
    bad = text("5511987650099", "quebra", "wamid.BAD", T0 + 9)
    describe = inbound._describe

    def fragile(kind, obj, message):
        if message.get("id") == "wamid.BAD":
            raise RuntimeError("boom")
        return describe(kind, obj, message)

    monkeypatch.setattr(inbound, "_describe", fragile)
    processed, failed = inbound.webhook_events_drain(batch_size=100)

    assert processed == 6
    assert failed == [bad]
    assert WebhookEvent.objects.get(pk=bad).status == WebhookStatus.FAILED
    assert "boom" in WebhookEvent.objects.get(pk=bad).error
    assert Message.objects.filter(wa_message_id__startswith="wamid.G").count() == len(good)
    assert set(WebhookEvent.objects.filter(pk__in=good).values_list("status", flat=True)) == {
        WebhookStatus.PROCESSED
    }


def _bot_apart(monkeypatch) -> list[list[int]]:
    """The bot's own work apart: its handler still runs on ``message.created``, but the turns it
    queues are only recorded (one list of message ids per task)."""
    from botflows import tasks as bot_tasks

    queued: list[list[int]] = []
    monkeypatch.setattr(bot_tasks.bot_handle_messages, "delay", queued.append)
    monkeypatch.setattr(bot_tasks.bot_handle_message, "delay", lambda pk: queued.append([pk]))
    return queued


def test_the_cost_of_a_batch_does_not_grow_with_its_size(fake_graph, monkeypatch):
    """Queries per batch are fixed: 20 deliveries cost what 10 cost (existing customers)."""
    queued_for_bot = _bot_apart(monkeypatch)
    customers = [f"55119876501{i:02d}" for i in range(5)]
    for i, wa_id in enumerate(customers):  # the customers and their conversations exist
        text(wa_id, "oi", f"wamid.W{i}", T0)
    inbound.webhook_events_drain(batch_size=100)

    def batch_queries(count: int, tag: str) -> int:
        ids = [
            text(customers[i % 5], f"msg {i}", f"wamid.{tag}{i}", T0 + 100 + i)
            for i in range(count)
        ]
        with CaptureQueriesContext(connection) as queries:
            inbound.webhook_events_process(event_ids=ids)
        assert Message.objects.filter(wa_message_id__startswith=f"wamid.{tag}").count() == count
        return len(queries.captured_queries)

    assert batch_queries(10, "TEN") == batch_queries(20, "TWENTY")
    assert [len(ids) for ids in queued_for_bot[-2:]] == [10, 20]  # one bot task per batch


def test_new_customers_cost_no_more_queries_the_more_there_are(fake_graph, monkeypatch):
    """A burst from people who never wrote before: their customers, conversations and the
    conversations' ``created`` events are written for all of them at once."""
    _bot_apart(monkeypatch)

    def batch_queries(count: int, tag: str) -> int:
        ids = [
            text(f"5521987{tag}{i:03d}", f"primeira {i}", f"wamid.{tag}{i}", T0 + i)
            for i in range(count)
        ]
        with CaptureQueriesContext(connection) as queries:
            inbound.webhook_events_process(event_ids=ids)
        return len(queries.captured_queries)

    few, many = batch_queries(4, "11"), batch_queries(12, "22")
    if (
        connection.vendor == "postgresql"
    ):  # SQLite bumps each conversation with an UPDATE of its own
        assert few == many
    for tag, count in (("11", 4), ("22", 12)):
        customers = Customer.objects.filter(wa_id__startswith=f"5521987{tag}")
        assert customers.count() == count
        for customer in customers:
            conversation = Conversation.objects.get(customer=customer)
            assert conversation.status == "bot"
            assert conversation.customer.name == f"Cliente {customer.wa_id[-4:]}"
            assert conversation.events.filter(kind="created").count() == 1
            assert conversation.messages.get().body.startswith("primeira")


def test_new_senders_that_are_one_customer_end_up_as_one(fake_graph):
    # The same person in one burst: by number with the user id, then by the user id alone.
    store(
        wa.delivery(
            contacts=[wa.contact(wa_id="5511987650031", name="Caio", user_id="BR.caio")],
            messages=[
                wa.message(
                    wa_id="5511987650031",
                    content={"body": "oi"},
                    wamid="wamid.U1",
                    timestamp=T0,
                    user_id="BR.caio",
                )
            ],
        )
    )
    store(
        wa.delivery(
            contacts=[wa.contact(wa_id="", name="Caio", user_id="BR.caio")],
            messages=[
                wa.message(
                    content={"body": "sou eu"},
                    wamid="wamid.U2",
                    timestamp=T0 + 1,
                    user_id="BR.caio",
                )
            ],
        )
    )
    store(wa.text_delivery(wa_id="5511987650032", body="outra pessoa", wamid="wamid.U3"))

    assert inbound.webhook_events_drain(batch_size=100) == (3, [])

    caio = Customer.objects.get(bsuid="BR.caio")
    assert caio.wa_id == "5511987650031"
    assert Customer.objects.count() == 2
    assert sorted(
        Conversation.objects.get(customer=caio)
        .messages.filter(direction="in")
        .values_list("body", flat=True)
    ) == [
        "oi",
        "sou eu",
    ]


def test_opening_many_conversations_falls_back_when_one_exists_already(fake_graph):
    account_id = fake_graph.account.pk
    ana = Customer.objects.create(wa_id="5511987650041", phone="+5511987650041")
    bia = Customer.objects.create(wa_id="5511987650042", phone="+5511987650042")
    ongoing = Conversation.objects.create(customer=bia, whatsapp_account_id=account_id)

    opened = conversations_open_for_customers(pairs=[(ana, account_id), (bia, account_id)])

    assert opened[bia.pk, account_id] == ongoing  # not a second conversation in progress
    assert opened[ana.pk, account_id].customer == ana
    assert Conversation.objects.filter(customer=bia).count() == 1
    assert Conversation.objects.filter(customer=ana).count() == 1


def test_live_update_payloads_are_the_api_shapes(fake_graph):
    text("5511987650004", "oi", "wamid.P1", T0)
    text("5511987650005", "olá", "wamid.P2", T0 + 1)
    inbound.webhook_events_drain(batch_size=100)
    messages = list(Message.objects.filter(direction="in").order_by("pk"))
    conversations = list(Conversation.objects.select_related("customer").order_by("pk"))
    # The shared serializers give what a fresh serializer per object gives (the API's shape).
    assert [message_payload(m) for m in messages] == [
        dict(MessageSerializer(m).data) for m in messages
    ]
    assert [conversation_payload(c) for c in conversations] == [
        dict(ConversationSerializer(c).data) for c in conversations
    ]


def test_the_drain_task_takes_every_waiting_delivery(fake_graph, settings):
    settings.WHATSAPP_INTAKE_BATCH = 3  # several batches
    ids = [text(f"55119876502{i:02d}", "oi", f"wamid.D{i}", T0 + i) for i in range(8)]
    tasks.webhook_drain.delay()  # eager in tests
    assert WebhookEvent.objects.filter(pk__in=ids, status=WebhookStatus.PROCESSED).count() == 8
    assert Message.objects.filter(direction="in").count() == 8


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_workers_draining_at_once_share_the_work_without_duplicates(fake_graph):
    # Overlapping customers in both halves, both forms of each Brazilian number.
    forms = [(f"5511987650{i:03d}", f"551187650{i:03d}") for i in range(6)]
    for i in range(60):
        wa_id = forms[i % 6][i % 2]
        text(wa_id, f"msg {i}", f"wamid.R{i}", T0 + i)
        if i % 10 == 0:
            text(wa_id, f"msg {i}", f"wamid.R{i}", T0 + i)  # redelivered
    results = race(*[partial(inbound.webhook_events_drain, batch_size=7)] * 2, timeout=120)

    assert errors_of(results) == []
    assert sum(count for count, _failed in results) == 66
    assert Message.objects.filter(direction="in").count() == 60
    assert Customer.objects.count() == 6
    assert Conversation.objects.exclude(status="closed").count() == 6
    assert not WebhookEvent.objects.exclude(status=WebhookStatus.PROCESSED).exists()


def test_a_burst_of_webhooks_queues_one_drain_not_one_task_each(
    client, settings, monkeypatch, fake_graph
):
    settings.SECURE_SSL_REDIRECT = False
    published: list[int] = []
    monkeypatch.setattr(tasks.webhook_drain, "delay", lambda: published.append(1))
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)  # as with a broker
    monkeypatch.setattr(intake, "_drain_seen_until", 0.0)
    cache.delete(intake.DRAIN_PENDING_KEY)

    def post(i: int) -> None:
        body, headers = signed_webhook(
            wa.text_delivery(wa_id="5511987650030", body=f"oi {i}", name="Rita")
        )
        response = client.post(URL, body, content_type="application/json", headers=headers)
        assert response.status_code == 200

    for i in range(10):
        post(i)
    assert published == [1]
    assert WebhookEvent.objects.filter(status=WebhookStatus.RECEIVED).count() == 10

    # Once the drain has started (and this process's hint expired), the next delivery queues one.
    intake.webhook_drain_started()
    monkeypatch.setattr(intake, "_drain_seen_until", 0.0)
    post(10)
    assert published == [1, 1]
    # Meanwhile nothing was lost: the drain takes every delivery that waits.
    processed, _failed = inbound.webhook_events_drain(batch_size=100)
    assert processed == 11
    assert Message.objects.filter(direction="in", body__startswith="oi").count() == 11


def test_a_drain_says_the_intake_is_busy_for_a_turn_and_a_second(fake_graph, monkeypatch):
    """Outgoing webhooks wait for it (settings.OUTGOING_WEBHOOKS_YIELD_TO)."""
    cache.delete(intake.INTAKE_BUSY_KEY)
    monkeypatch.setattr(tasks.webhook_drain, "delay", lambda: None)
    text("5511987650299", "oi", "wamid.BUSY1", T0)
    assert not intake.webhook_intake_busy()

    tasks.webhook_drain.run()  # as a worker runs it

    assert Message.objects.filter(wa_message_id="wamid.BUSY1").exists()
    assert intake.webhook_intake_busy()
    time.sleep(intake.INTAKE_BUSY_TTL + 0.2)
    assert not intake.webhook_intake_busy()


def test_fifty_deliveries_within_a_second_mark_a_burst_and_a_quiet_pace_never(
    fake_graph, monkeypatch
):
    """The searches take turns while it lasts (settings.SEARCH_YIELD_TO)."""
    cache.delete(intake.INTAKE_BURST_KEY)
    intake._burst_recent.clear()
    monkeypatch.setattr(intake, "_burst_marked_at", -1e9)  # whatever an earlier test marked
    clock = [1000.0]
    monkeypatch.setattr(intake.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(intake, "webhook_queue", lambda event_id: None)

    def accept(n: int) -> None:
        body, headers = signed_webhook({"object": "whatsapp_business_account", "entry": []})
        answer = intake.webhook_accept(raw_body=body, signature=headers["X-Hub-Signature-256"])
        assert answer.status == 200, n

    # 49 a second, second after second: a busy hour, no burst.
    for n in range(3 * (intake.INTAKE_BURST_RATE - 1)):
        clock[0] += 1 / (intake.INTAKE_BURST_RATE - 1.5)
        accept(n)
    assert not intake.webhook_intake_burst()

    # Then fifty within a tenth of a second, whenever in the second they begin: a burst from
    # the fiftieth on.
    clock[0] += 5.7
    for n in range(intake.INTAKE_BURST_RATE - 1):
        clock[0] += 0.002
        accept(n)
    assert not intake.webhook_intake_burst()
    accept(-1)
    assert intake.webhook_intake_burst()
    assert WebhookEvent.objects.count() == 4 * intake.INTAKE_BURST_RATE - 3  # all of them kept
