"""Processing of stored deliveries: every message type, customers, reactions, statuses, errors.

The payloads follow the shapes documented in docs/whatsapp-cloud-api.md (Meta's "Webhooks").
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import (
    Conversation,
    Customer,
    Message,
    MessageReaction,
    MessageStatus,
    MessageType,
    SenderKind,
)
from conversations.tests.factories import ConversationFactory, MessageFactory
from whatsapp.models import ChannelError, PendingStatus, WebhookEvent, WebhookStatus
from whatsapp.services import sandbox as wa
from whatsapp.services.inbound import webhook_event_process
from whatsapp.services.intake import webhook_receive
from whatsapp.tests.fake_graph import signed_webhook

pytestmark = pytest.mark.django_db

MARIA = "5511987650002"
T0 = 1732406400


def deliver(payload):
    """Store a signed delivery like the view does, then process it (as the task would)."""
    body, headers = signed_webhook(payload)
    event = webhook_receive(raw_body=body, signature=headers["X-Hub-Signature-256"])
    return webhook_event_process(event_id=event.pk)


def one(message, *, wa_id=MARIA, name="Maria Silva"):
    return wa.delivery(contacts=[wa.contact(wa_id=wa_id, name=name)], messages=[message])


# --- every message type ------------------------------------------------------------------------

TYPE_CASES = [
    ("text", {"body": "Olá"}, {}, MessageType.TEXT, "Olá"),
    (
        "image",
        {"id": "1111", "mime_type": "image/jpeg", "sha256": "abc", "caption": "foto"},
        {},
        MessageType.IMAGE,
        "foto",
    ),
    (
        "audio",
        {"id": "2222", "mime_type": "audio/ogg; codecs=opus", "sha256": "abc", "voice": True},
        {},
        MessageType.AUDIO,
        "",
    ),
    ("video", {"id": "3333", "mime_type": "video/mp4", "sha256": "abc"}, {}, MessageType.VIDEO, ""),
    (
        "document",
        {"id": "4444", "mime_type": "application/pdf", "sha256": "abc", "filename": "boleto.pdf"},
        {},
        MessageType.DOCUMENT,
        "",
    ),
    (
        "sticker",
        {"id": "5555", "mime_type": "image/webp", "sha256": "abc", "animated": False},
        {},
        MessageType.STICKER,
        "",
    ),
    (
        "location",
        {"latitude": -23.56, "longitude": -46.65, "name": "Loja", "address": "Av. Paulista"},
        {},
        MessageType.LOCATION,
        "📍 Loja — Av. Paulista (-23.56, -46.65)",
    ),
    (
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "dept-1", "title": "Suporte"}},
        {},
        MessageType.INTERACTIVE,
        "Suporte",
    ),
    (
        "interactive",
        {
            "type": "list_reply",
            "list_reply": {"id": "dept-2", "title": "Vendas", "description": "Compras"},
        },
        {},
        MessageType.INTERACTIVE,
        "Vendas",
    ),
    ("button", {"payload": "SIM", "text": "Sim"}, {}, MessageType.BUTTON, "Sim"),
]


@pytest.mark.parametrize(("kind", "content", "extra", "our_type", "body"), TYPE_CASES)
def test_every_message_type_is_stored(fake_graph, kind, content, extra, our_type, body):  # noqa: PLR0917
    event = deliver(one(wa.message(wa_id=MARIA, type=kind, content=content, **extra)))
    assert event.status == WebhookStatus.PROCESSED
    message = Message.objects.get()
    assert message.type == our_type
    assert message.body == body
    assert message.raw_payload[kind] == content  # everything Meta sent is kept
    if "id" in content:
        assert message.media_id == content["id"]
        assert message.media_mime_type == content["mime_type"]


def test_contacts_message_lists_names_and_phones(fake_graph):
    contacts = [
        {
            "name": {"formatted_name": "João Souza", "first_name": "João"},
            "phones": [{"phone": "+55 11 91234-5678", "wa_id": "5511912345678", "type": "CELL"}],
        }
    ]
    deliver(one(wa.message(wa_id=MARIA, type="contacts", contacts=contacts)))
    message = Message.objects.get()
    assert message.type == MessageType.CONTACTS
    assert "João Souza" in message.body
    assert "+55 11 91234-5678" in message.body


def test_unsupported_message_is_kept_with_its_error(fake_graph):
    errors = [
        {
            "code": 131051,
            "title": "Message type unknown",
            "message": "Message type unknown",
            "error_data": {"details": "Message type is currently not supported."},
        }
    ]
    deliver(one(wa.message(wa_id=MARIA, type="unsupported", errors=errors)))
    message = Message.objects.get()
    assert message.type == MessageType.UNSUPPORTED
    assert message.error_code == 131051
    assert "not supported" in message.error
    assert message.body == "Message type unknown"


@pytest.mark.parametrize("kind", ["order", "some_future_type", "unknown"])
def test_types_we_do_not_know_are_kept_never_dropped(fake_graph, kind):
    deliver(one(wa.message(wa_id=MARIA, type=kind, content={"x": 1})))
    message = Message.objects.get()
    assert message.type == MessageType.UNSUPPORTED
    assert message.raw_payload["type"] == kind


def test_system_message_is_kept(fake_graph):
    content = {
        "body": "Maria changed from 5511987650002 to 5511987650003",
        "type": "customer_changed_number",
        "wa_id": "5511987650003",
    }
    deliver(one(wa.message(wa_id=MARIA, type="system", content=content)))
    message = Message.objects.get()
    assert message.type == MessageType.SYSTEM
    assert "changed from" in message.body


# --- idempotency, batches, order -------------------------------------------------------------


def test_the_same_message_delivered_twice_is_stored_once(fake_graph):
    payload = one(wa.message(wa_id=MARIA, content={"body": "Oi"}, wamid="wamid.DUP1"))
    deliver(payload)
    deliver(payload)
    event = WebhookEvent.objects.order_by("pk").first()
    webhook_event_process(event_id=event.pk, force=True)  # an operator's replay
    assert Message.objects.filter(wa_message_id="wamid.DUP1").count() == 1
    assert Conversation.objects.get().unread_count == 1


def test_a_batch_with_several_entries_changes_messages_and_statuses(fake_graph):
    outbound = MessageFactory(
        direction="out", sender=SenderKind.AGENT, status=MessageStatus.SENT, wa_message_id="wamid.O"
    )
    first = one(wa.message(wa_id=MARIA, content={"body": "um"}))
    second = wa.delivery(
        contacts=[wa.contact(wa_id="5521999990000", name="João")],
        messages=[
            wa.message(wa_id="5521999990000", content={"body": "dois"}),
            wa.message(wa_id="5521999990000", content={"body": "três"}),
        ],
        statuses=[wa.status(wamid="wamid.O", status="delivered")],
    )
    payload = {
        "object": "whatsapp_business_account",
        "entry": [first["entry"][0], second["entry"][0], second["entry"][0] | {"id": "2"}],
    }
    deliver(payload)
    assert sorted(Message.objects.filter(direction="in").values_list("body", flat=True)) == [
        "dois",
        "três",
        "um",
    ]
    assert Customer.objects.filter(wa_id__in=[MARIA, "5521999990000"]).count() == 2
    outbound.refresh_from_db()
    assert outbound.status == MessageStatus.DELIVERED


def test_message_order_follows_whatsapp_timestamps(fake_graph):
    deliver(one(wa.message(wa_id=MARIA, content={"body": "segunda"}, timestamp=T0 + 60)))
    deliver(one(wa.message(wa_id=MARIA, content={"body": "primeira"}, timestamp=T0)))
    conversation = Conversation.objects.get()
    assert [m.body for m in conversation.messages.order_by("created_at", "id")] == [
        "primeira",
        "segunda",
    ]


# --- customers -------------------------------------------------------------------------------


def test_customer_is_created_with_profile_name_and_updated(fake_graph):
    deliver(one(wa.message(wa_id=MARIA, content={"body": "Oi"}), name="Maria"))
    deliver(one(wa.message(wa_id=MARIA, content={"body": "Oi"}), name="Maria Silva"))
    customer = Customer.objects.get()
    assert customer.name == "Maria Silva"
    assert customer.phone == "+5511987650002"
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [("5511987654321", "551187654321"), ("551187654321", "5511987654321")],
)
def test_brazilian_number_with_and_without_ninth_digit_is_one_customer(fake_graph, first, second):
    deliver(one(wa.message(wa_id=first, content={"body": "1"}), wa_id=first))
    deliver(one(wa.message(wa_id=second, content={"body": "2"}), wa_id=second))
    assert Customer.objects.count() == 1
    assert Conversation.objects.count() == 1
    assert Customer.objects.get().wa_id == second  # the form Meta uses now


def test_landline_like_numbers_are_not_merged(fake_graph):
    deliver(one(wa.message(wa_id="551133334444", content={"body": "1"}), wa_id="551133334444"))
    deliver(one(wa.message(wa_id="5511933334444", content={"body": "2"}), wa_id="5511933334444"))
    assert Customer.objects.count() == 2


def test_username_customer_is_identified_by_business_scoped_id(fake_graph):
    bsuid = "US.13491208655302741918"
    payload = wa.delivery(
        contacts=[wa.contact(user_id=bsuid, name="mari.s")],
        messages=[wa.message(user_id=bsuid, content={"body": "Oi"})],
    )
    deliver(payload)
    deliver(
        wa.delivery(
            contacts=[wa.contact(user_id=bsuid, name="mari.s")],
            messages=[wa.message(user_id=bsuid, content={"body": "De novo"})],
        )
    )
    customer = Customer.objects.get()
    assert customer.bsuid == bsuid
    assert customer.wa_id is None
    assert customer.conversations.get().messages.count() == 2


# --- reactions and replies -------------------------------------------------------------------


def test_reaction_is_attached_to_the_message_and_removable(fake_graph):
    target = MessageFactory(
        direction="out", sender=SenderKind.AGENT, wa_message_id="wamid.TARGET", body="Pronto!"
    )
    react = wa.message(
        wa_id=MARIA,
        type="reaction",
        content={"message_id": "wamid.TARGET", "emoji": "👍"},
        timestamp=T0,
    )
    deliver(one(react))
    assert MessageReaction.objects.get(message=target, sender=SenderKind.CUSTOMER).emoji == "👍"
    assert not Message.objects.filter(type=MessageType.REACTION).exists()
    remove = wa.message(
        wa_id=MARIA,
        type="reaction",
        content={"message_id": "wamid.TARGET", "emoji": ""},
        timestamp=T0 + 5,
    )
    deliver(one(remove))
    assert not MessageReaction.objects.exclude(emoji="").exists()
    deliver(one(react))  # the older "👍" redelivered late does not come back
    assert not MessageReaction.objects.filter(message=target).exclude(emoji="").exists()


def test_reaction_to_an_unknown_message_is_kept(fake_graph):
    react = wa.message(
        wa_id=MARIA, type="reaction", content={"message_id": "wamid.GONE", "emoji": "❤️"}
    )
    deliver(one(react))
    message = Message.objects.get()
    assert message.type == MessageType.REACTION
    assert message.body == "❤️"


def test_reply_context_links_the_quoted_message(fake_graph):
    quoted = MessageFactory(direction="out", sender=SenderKind.AGENT, wa_message_id="wamid.Q")
    deliver(one(wa.message(wa_id=MARIA, content={"body": "Sobre isso"}, context_id="wamid.Q")))
    reply = Message.objects.get(body="Sobre isso")
    assert reply.reply_to == quoted


# --- statuses --------------------------------------------------------------------------------


def _outbound(**kwargs):
    return MessageFactory(
        direction="out",
        sender=SenderKind.AGENT,
        status=MessageStatus.SENT,
        wa_message_id="wamid.OUT1",
        **kwargs,
    )


def _statuses(*items):
    return wa.delivery(statuses=list(items))


def test_statuses_never_go_backwards(fake_graph):
    message = _outbound()
    deliver(_statuses(wa.status(wamid="wamid.OUT1", status="read", timestamp=T0 + 10)))
    deliver(_statuses(wa.status(wamid="wamid.OUT1", status="delivered", timestamp=T0 + 5)))
    message.refresh_from_db()
    assert message.status == MessageStatus.READ
    assert [h["status"] for h in message.status_history] == ["read", "delivered"]
    assert message.status_history[1]["applied"] is False


def test_played_for_voice_notes(fake_graph):
    message = _outbound(type=MessageType.AUDIO)
    deliver(
        _statuses(
            wa.status(wamid="wamid.OUT1", status="delivered", timestamp=T0),
            wa.status(wamid="wamid.OUT1", status="read", timestamp=T0 + 1),
            wa.status(wamid="wamid.OUT1", status="played", timestamp=T0 + 2),
        )
    )
    message.refresh_from_db()
    assert message.status == MessageStatus.PLAYED


def test_failed_keeps_metas_error_and_a_late_delivered_is_a_note(fake_graph):
    message = _outbound()
    errors = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }
    ]
    deliver(_statuses(wa.status(wamid="wamid.OUT1", status="failed", errors=errors)))
    deliver(_statuses(wa.status(wamid="wamid.OUT1", status="delivered", timestamp=T0 + 99)))
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.error_code == 131026
    assert message.error == "Message undeliverable — Message Undeliverable."
    assert message.error_data["href"].startswith("https://")
    assert "another device" in message.status_history[-1]["note"]


def test_the_same_status_twice_changes_nothing(fake_graph):
    message = _outbound()
    payload = _statuses(wa.status(wamid="wamid.OUT1", status="delivered", timestamp=T0))
    deliver(payload)
    deliver(payload)
    message.refresh_from_db()
    assert len(message.status_history) == 1


def test_status_before_its_message_is_known_waits_then_applies(fake_graph):
    deliver(_statuses(wa.status(wamid="wamid.LATER", status="delivered", timestamp=T0)))
    assert PendingStatus.objects.filter(wa_message_id="wamid.LATER").exists()
    from whatsapp.services.outbound import _record_sent

    message = MessageFactory(
        direction="out", sender=SenderKind.AGENT, status=MessageStatus.QUEUED, wa_message_id=None
    )
    _record_sent(message.pk, wa_message_id="wamid.LATER")
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert not PendingStatus.objects.exists()


# --- delivery-level errors and unknown numbers -----------------------------------------------


def test_value_errors_are_recorded_for_admins(fake_graph):
    errors = [
        {
            "code": 131000,
            "title": "Something went wrong",
            "message": "Something went wrong",
            "error_data": {"details": "Unknown error on the app."},
        }
    ]
    event = deliver(wa.delivery(errors=errors))
    error = ChannelError.objects.get()
    assert error.code == 131000
    assert error.details == "Unknown error on the app."
    assert error.webhook_event == event
    webhook_event_process(event_id=event.pk, force=True)
    assert ChannelError.objects.count() == 1


def test_unknown_phone_number_id_is_kept_and_marked(fake_graph):
    event = deliver(wa.text_delivery(wa_id=MARIA, body="Oi", phone_number_id="999"))
    assert event.status == WebhookStatus.UNKNOWN
    assert "999" in event.error
    assert not Message.objects.exists()
    assert WebhookEvent.objects.filter(pk=event.pk).exists()


def test_other_fields_are_kept_and_marked(fake_graph):
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {"x": 1}}]}],
    }
    event = deliver(payload)
    assert event.status == WebhookStatus.UNKNOWN


def test_env_configured_number_is_provisioned_automatically(settings, db):
    settings.WHATSAPP_PHONE_NUMBER_ID = "123456789012345"
    settings.WHATSAPP_APP_SECRET = "s"
    event = deliver(wa.text_delivery(wa_id=MARIA, body="Oi", phone_number_id="123456789012345"))
    assert event.status == WebhookStatus.PROCESSED
    assert Conversation.objects.get().whatsapp_account.phone_number_id == "123456789012345"


# --- conversations -----------------------------------------------------------------------------


def test_new_customer_message_goes_to_the_bot(fake_graph, django_capture_on_commit_callbacks):
    from celery.signals import task_prerun

    seen = []

    def record(sender=None, args=None, **kwargs):
        seen.append((sender.name, tuple(args or ())))

    task_prerun.connect(record, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            deliver(one(wa.message(wa_id=MARIA, content={"body": "Oi"})))
    finally:
        task_prerun.disconnect(record)
    message = Message.objects.filter(direction="in").get()
    assert ("botflows.tasks.bot_handle_message", (message.pk,)) in seen


def test_message_joins_the_conversation_in_progress(fake_graph):
    conversation = ConversationFactory(
        customer__wa_id=MARIA, whatsapp_account=fake_graph.account, status="open"
    )
    deliver(one(wa.message(wa_id=MARIA, content={"body": "Oi"})))
    assert Message.objects.get().conversation == conversation
    conversation.refresh_from_db()
    assert conversation.last_inbound_at > timezone.now() - timedelta(minutes=1)


def test_a_message_without_any_sender_is_kept_and_marked(fake_graph):
    payload = wa.delivery(messages=[wa.message(content={"body": "?"}, wamid="wamid.NOONE")])
    event = deliver(payload)
    assert event.status == WebhookStatus.UNKNOWN
    assert "without a sender" in event.error
    assert "wamid.NOONE" in event.raw_body
