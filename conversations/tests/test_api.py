"""``/api/v1/conversations...`` and ``/api/v1/messages...``: filters, actions, history,
sending text and files, marking read, errors and query counts (stats: reports/tests)."""

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditAction, AuditLogEntry
from conversations.models import (
    ConversationEvent,
    ConversationStatus,
    EventKind,
    Message,
)
from conversations.tests.factories import ConversationFactory, CustomerFactory, MessageFactory
from departments.tests.factories import DepartmentFactory
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


@pytest.fixture
def media_root(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- Listing and filters -------------------------------------------------------------------------


def test_agents_list_their_departments_and_their_own(
    agent: Any, other_agent: Any, support: Any, sales: Any
) -> None:
    mine = ConversationFactory(department=support)
    assigned = ConversationFactory(department=sales, assigned_to=agent, status="open")
    ConversationFactory(department=sales)
    ConversationFactory(department=None, status=ConversationStatus.BOT)
    assert set(ids(bearer(agent).get("/api/v1/conversations"))) == {mine.pk, assigned.pk}
    assert_error_shape(bearer(other_agent).get(f"/api/v1/conversations/{mine.pk}"), 404)


def test_filters_status_department_assignee_and_search(
    admin_user: Any, agent: Any, support: Any, sales: Any
) -> None:
    maria = ConversationFactory(
        department=support,
        status="open",
        assigned_to=agent,
        customer=CustomerFactory(name="Maria Silva", wa_id="5511987650002", phone="+5511987650002"),
    )
    joao = ConversationFactory(
        department=sales, customer=CustomerFactory(name="João", phone="+5521999990000")
    )
    MessageFactory(conversation=joao, body="Quero o boleto do plano anual")
    closed = ConversationFactory(
        department=sales, status="closed", customer=CustomerFactory(name="Pedro")
    )
    client = bearer(admin_user)

    assert ids(client.get("/api/v1/conversations?status=open")) == [maria.pk]
    assert set(ids(client.get("/api/v1/conversations?status=pending&status=closed"))) == {
        joao.pk,
        closed.pk,
    }
    assert set(ids(client.get(f"/api/v1/conversations?department={sales.pk}"))) == {
        joao.pk,
        closed.pk,
    }
    assert ids(client.get(f"/api/v1/conversations?assigned_to={agent.pk}")) == [maria.pk]
    assert set(ids(client.get("/api/v1/conversations?assigned_to=none"))) == {joao.pk, closed.pk}
    assert ids(client.get("/api/v1/conversations?search=maria")) == [maria.pk]
    assert ids(client.get("/api/v1/conversations?search=98765")) == [maria.pk]
    assert ids(client.get("/api/v1/conversations?search=BOLETO")) == [joao.pk]
    body = assert_error_shape(client.get("/api/v1/conversations?status=lost"), 400)
    assert "status" in body["errors"]


def test_list_query_count_does_not_grow_with_rows(
    agent: Any, support: Any, django_assert_num_queries: Any
) -> None:
    client = bearer(agent)

    def fetch() -> int:
        # auth user, count, page (customer, department, assignee joined), tags, contacts' tags
        with django_assert_num_queries(5):
            return len(client.get("/api/v1/conversations?page_size=100").json()["results"])

    for _ in range(2):
        ConversationFactory(department=support, assigned_to=agent, status="open")
    assert fetch() == 2
    for _ in range(20):
        ConversationFactory(department=support)
    assert fetch() == 22


def test_detail_has_the_contract_fields(agent: Any, support: Any) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent, status="open")
    body = bearer(agent).get(f"/api/v1/conversations/{conversation.pk}/").json()
    assert {
        "id",
        "status",
        "customer",
        "department",
        "assigned_to",
        "last_message_at",
        "unread_count",
        "created_at",
        "closed_at",
    } <= set(body)
    assert set(body["customer"]) == {"id", "phone", "name", "tags"}
    assert body["priority"] == "normal"
    assert body["tags"] == []
    assert body["department"] == {"id": support.pk, "name": "Suporte"}
    assert body["assigned_to"] == {"id": agent.pk, "name": agent.name}


# --- Actions -------------------------------------------------------------------------------------


def test_takeover_assigns_to_the_caller(agent: Any, support: Any) -> None:
    conversation = ConversationFactory(department=support)
    body = bearer(agent).post(f"/api/v1/conversations/{conversation.pk}/takeover").json()
    assert body["status"] == "open"
    assert body["assigned_to"]["id"] == agent.pk


def test_transfer_to_a_department_with_note_is_audited_and_in_the_history(
    agent: Any, support: Any, sales: Any
) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent, status="open")
    MessageFactory(conversation=conversation, body="Quero comprar")
    client = bearer(agent)
    response = client.post(
        f"/api/v1/conversations/{conversation.pk}/transfer",
        {"to_department": sales.pk, "note": "Cliente quer comprar"},
        format="json",
        REMOTE_ADDR="198.51.100.30",
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "pending"
    assert response.json()["department"]["id"] == sales.pk
    # the audit log has it, with the caller's IP
    entry = AuditLogEntry.objects.get(action=AuditAction.TRANSFER)
    assert (entry.actor, entry.ip) == (agent, "198.51.100.30")
    assert entry.after["note"] == "Cliente quer comprar"
    # the agent lost sight of it (no longer in their department nor theirs): 404 now
    assert_error_shape(client.get(f"/api/v1/conversations/{conversation.pk}/history"), 404)


def test_history_lists_messages_and_events_in_order(admin_user: Any, support: Any) -> None:
    conversation = ConversationFactory(department=support)
    client = bearer(admin_user)
    MessageFactory(conversation=conversation, body="Oi")
    client.post(f"/api/v1/conversations/{conversation.pk}/takeover")
    client.post("/api/v1/messages", {"conversation": conversation.pk, "body": "Olá!"}, "json")
    client.post(f"/api/v1/conversations/{conversation.pk}/close")
    history = client.get(f"/api/v1/conversations/{conversation.pk}/history").json()
    kinds = [
        row["message"]["body"] if row["kind"] == "message" else row["event"]["kind"]
        for row in history["results"]
    ]
    assert kinds == ["Oi", "taken_over", "Olá!", "first_response", "closed"]
    event = history["results"][1]["event"]
    assert event["actor"] == {"id": admin_user.pk, "name": admin_user.name}


def test_transfer_validation_errors(admin_user: Any, support: Any) -> None:
    conversation = ConversationFactory(department=support)
    client = bearer(admin_user)
    url = f"/api/v1/conversations/{conversation.pk}/transfer"
    nothing = assert_error_shape(client.post(url, {}, format="json"), 400, "no_target")
    assert list(nothing["errors"]) == ["to_user"]
    closed_department = DepartmentFactory(name="Antigo", is_active=False)
    inactive = client.post(url, {"to_department": closed_department.pk}, format="json")
    assert list(assert_error_shape(inactive, 400)["errors"]) == ["to_department"]
    bad_type = client.post(url, {"to_user": "ana"}, format="json")
    assert list(assert_error_shape(bad_type, 400)["errors"]) == ["to_user"]


def test_refused_actions_explain_themselves(agent: Any, admin_user: Any, support: Any) -> None:
    colleague_s = ConversationFactory(department=support, assigned_to=admin_user, status="open")
    response = bearer(agent).post(f"/api/v1/conversations/{colleague_s.pk}/close")
    body = assert_error_shape(response, 403, "permission_denied")
    assert body["detail"]


def test_reopen_conflict_is_a_400_with_the_service_code(admin_user: Any, support: Any) -> None:
    old = ConversationFactory(department=support, status="closed")
    ConversationFactory(
        department=support, customer=old.customer, whatsapp_account=old.whatsapp_account
    )
    response = bearer(admin_user).post(f"/api/v1/conversations/{old.pk}/reopen")
    assert_error_shape(response, 400, "conversation_in_progress")


# --- Messages ------------------------------------------------------------------------------------


def test_conversation_names_the_number_it_came_through_and_filters_by_it(
    agent: Any, support: Any, django_assert_num_queries: Any
) -> None:
    shop = WhatsAppAccountFactory(name="Loja", display_phone_number="+55 11 4000-1000")
    billing = WhatsAppAccountFactory(name="Cobrança", display_phone_number="+55 11 4000-2000")
    at_shop = [ConversationFactory(department=support, whatsapp_account=shop) for _ in range(3)]
    at_billing = ConversationFactory(department=support, whatsapp_account=billing)
    client = bearer(agent)

    # the number rides on the page's one query (the tags take two more): no query per row
    with django_assert_num_queries(5):
        rows = client.get("/api/v1/conversations").json()["results"]
    numbers = {row["id"]: row["whatsapp_account"] for row in rows}
    assert numbers[at_billing.pk] == {
        "id": billing.pk,
        "name": "Cobrança",
        "display_phone_number": "+55 11 4000-2000",
    }
    assert {numbers[c.pk]["name"] for c in at_shop} == {"Loja"}
    detail = client.get(f"/api/v1/conversations/{at_billing.pk}").json()
    assert detail["whatsapp_account"]["id"] == billing.pk

    filtered = client.get("/api/v1/conversations", {"whatsapp_account": shop.pk})
    assert sorted(ids(filtered)) == sorted(c.pk for c in at_shop)
    assert ids(client.get("/api/v1/conversations", {"whatsapp_account": billing.pk})) == [
        at_billing.pk
    ]


def test_messages_oldest_first_paginated_and_query_count(
    agent: Any, support: Any, django_assert_num_queries: Any
) -> None:
    conversation = ConversationFactory(department=support)
    first = MessageFactory(conversation=conversation, body="primeira")
    for n in range(11):
        MessageFactory(conversation=conversation, body=f"m{n}")
    client = bearer(agent)
    # auth user, conversation (visibility), count, page
    with django_assert_num_queries(4):
        page = client.get(f"/api/v1/messages?conversation={conversation.pk}&page_size=5").json()
    assert page["count"] == 12
    assert page["results"][0]["id"] == first.pk
    assert [m["body"] for m in page["results"]][:2] == ["primeira", "m0"]
    assert "page=2" in page["next"]


def test_messages_need_a_visible_conversation(agent: Any, sales: Any) -> None:
    client = bearer(agent)
    missing = assert_error_shape(client.get("/api/v1/messages"), 400)
    assert list(missing["errors"]) == ["conversation"]
    hidden = ConversationFactory(department=sales)
    assert_error_shape(client.get(f"/api/v1/messages?conversation={hidden.pk}"), 404)
    post = client.post("/api/v1/messages", {"conversation": hidden.pk, "body": "x"}, "json")
    assert_error_shape(post, 404)


def test_sending_text_records_a_queued_message(agent: Any, support: Any) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent, status="open")
    response = bearer(agent).post(
        "/api/v1/messages/", {"conversation": conversation.pk, "body": "Olá, Maria"}, "json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["direction"] == "out"
    assert body["sender"] == "agent"
    assert body["sender_user"] == agent.pk
    assert body["type"] == "text"
    assert body["body"] == "Olá, Maria"
    assert body["media"] is None
    assert Message.objects.get(pk=body["id"]).conversation_id == conversation.pk


def test_sending_a_file_as_multipart_stores_it(agent: Any, support: Any, media_root: Any) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent, status="open")
    upload = SimpleUploadedFile("recibo.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png")
    response = bearer(agent).post(
        "/api/v1/messages",
        {"conversation": conversation.pk, "body": "Segue o recibo", "file": upload},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "image"
    assert body["body"] == "Segue o recibo"
    assert body["media"]["mime_type"] == "image/png"
    assert body["media"]["filename"] == "recibo.png"
    assert body["media"]["size"] == 108
    stored = Message.objects.get(pk=body["id"])
    assert stored.media_file.read().startswith(b"\x89PNG")


def test_upload_limits_and_empty_messages(
    settings: Any, agent: Any, support: Any, media_root: Any
) -> None:
    settings.API_UPLOAD_MAX_BYTES = 50
    conversation = ConversationFactory(department=support, assigned_to=agent, status="open")
    client = bearer(agent)
    big = SimpleUploadedFile("big.pdf", b"%PDF" + b"0" * 100, "application/pdf")
    too_big = client.post(
        "/api/v1/messages", {"conversation": conversation.pk, "file": big}, format="multipart"
    )
    assert list(assert_error_shape(too_big, 400, "file_too_large")["errors"]) == ["file"]
    empty = client.post("/api/v1/messages", {"conversation": conversation.pk, "body": " "}, "json")
    assert list(assert_error_shape(empty, 400, "empty_message")["errors"]) == ["body"]
    assert not Message.objects.filter(direction="out").exists()


def test_mark_read_zeroes_the_unread_count(agent: Any, support: Any) -> None:
    conversation = ConversationFactory(department=support, unread_count=2)
    first = MessageFactory(conversation=conversation)
    MessageFactory(conversation=conversation)
    response = bearer(agent).patch(f"/api/v1/messages/{first.pk}/read")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == first.pk
    conversation.refresh_from_db()
    assert conversation.unread_count == 0
    assert not Message.objects.filter(conversation=conversation, read_at__isnull=True).exists()
    assert ConversationEvent.objects.filter(kind=EventKind.READ).count() == 1


def test_history_query_count_is_constant(
    admin_user: Any, support: Any, django_assert_num_queries: Any
) -> None:
    conversation = ConversationFactory(department=support)
    client = bearer(admin_user)

    def fetch() -> int:
        # auth user, conversation, messages (sender, reply joined), events (actor joined)
        with django_assert_num_queries(4):
            return client.get(f"/api/v1/conversations/{conversation.pk}/history").json()["count"]

    MessageFactory(conversation=conversation)
    assert fetch() == 1
    for _ in range(5):
        MessageFactory(conversation=conversation)
        ConversationEvent.objects.create(conversation=conversation, actor=admin_user, kind="queued")
    assert fetch() == 11


def test_history_query_count_does_not_grow_with_messages_transfers_and_notes(
    admin_user: Any, support: Any, sales: Any, django_assert_num_queries: Any
) -> None:
    from conversations.models import ConversationNote, MessageReaction

    conversation = ConversationFactory(department=support)
    client = bearer(admin_user)

    def grow(messages: int) -> None:
        while conversation.messages.count() < messages:
            asked = MessageFactory(conversation=conversation)
            MessageReaction.objects.create(message=asked, sender="agent", emoji="👍")
            MessageFactory(conversation=conversation, reply_to=asked, sender_user=admin_user)
            for kind in (EventKind.TRANSFERRED, EventKind.READ):
                ConversationEvent.objects.create(
                    conversation=conversation,
                    actor=admin_user,
                    kind=kind,
                    after={"department": sales.pk, "note": "Vendas"},
                )
            ConversationNote.objects.create(conversation=conversation, author=admin_user, body="n")

    def kinds() -> list[str]:
        with django_assert_num_queries(4):  # auth user, conversation, messages, events
            response = client.get(f"/api/v1/conversations/{conversation.pk}/history")
        return [row["kind"] for row in response.json()["results"]]

    grow(3)
    # notes are the team's, "marked read" is no history: neither is listed
    assert kinds().count("message") == 4 and kinds().count("event") == 2
    grow(12)
    assert kinds().count("message") == 12 and kinds().count("event") == 6


def test_a_message_sent_through_the_api_may_quote_one_of_its_conversation(
    agent: Any, support: Any
) -> None:
    conversation = ConversationFactory(department=support, assigned_to=agent, status="open")
    asked = MessageFactory(conversation=conversation, body="Qual o prazo?")
    elsewhere = MessageFactory(conversation=ConversationFactory(department=support))
    client = bearer(agent)

    sent = client.post(
        "/api/v1/messages",
        {"conversation": conversation.pk, "body": "Amanhã", "reply_to": asked.pk},
        format="json",
    )
    assert sent.status_code == 201, sent.content
    assert sent.json()["reply_to"] == asked.pk
    assert Message.objects.get(pk=sent.json()["id"]).reply_to_id == asked.pk

    refused = client.post(
        "/api/v1/messages",
        {"conversation": conversation.pk, "body": "Oi", "reply_to": elsewhere.pk},
        format="json",
    )
    assert refused.status_code == 400
    assert "reply_to" in refused.json()["errors"]
    assert Message.objects.filter(conversation=conversation).count() == 2  # nothing more
