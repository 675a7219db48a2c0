"""The role matrix of contract §4: every endpoint x {admin, supervisor, agent of the department,
agent of another department, anonymous} → the status each one gets."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from conversations.models import ConversationStatus, QuickReply, Tag
from conversations.tests.factories import ConversationFactory, MessageFactory
from integrations.models import WebhookDelivery
from integrations.tests.factories import OutgoingEventFactory, WebhookSubscriptionFactory
from supportdesk.tests.api_support import api_env, bearer
from whatsapp.models import MessageTemplate

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

ROLES = ("admin", "supervisor", "agent", "other_agent", "anonymous")


class World:
    """A Suporte conversation (with one inbound message) and the people of the matrix."""

    def __init__(self, request: pytest.FixtureRequest, conversation_state: str) -> None:
        self.admin = request.getfixturevalue("admin_user")
        self.supervisor = request.getfixturevalue("supervisor")
        self.agent = request.getfixturevalue("agent")
        self.other_agent = request.getfixturevalue("other_agent")
        self.support = request.getfixturevalue("support")
        self.sales = request.getfixturevalue("sales")
        kwargs: dict[str, Any] = {"department": self.support}
        if conversation_state == "closed":
            kwargs["status"] = ConversationStatus.CLOSED
        elif conversation_state == "assigned":
            kwargs.update(status=ConversationStatus.OPEN, assigned_to=self.agent)
        self.conversation = ConversationFactory(**kwargs)
        self.message = MessageFactory(conversation=self.conversation)

    def api_key(self) -> ApiKey:
        return api_key_create(actor=self.admin, name="Matrix", role="supervisor")[0]

    def user(self, role: str) -> Any:
        return None if role == "anonymous" else getattr(self, role)


Call = Callable[[Any, World], Any]


def _subscription() -> Any:
    return WebhookSubscriptionFactory()


def _delivery() -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        subscription=WebhookSubscriptionFactory(),
        event="conversation.closed",
        outgoing_event=OutgoingEventFactory(type="conversation.closed"),
        status="failed",
    )


def _tag() -> Tag:
    return Tag.objects.get_or_create(name="VIP", defaults={"color": "#dc2626"})[0]


def _personal_reply(w: "World") -> QuickReply:
    """The agent's own quick reply."""
    return QuickReply.objects.create(shortcut="meu", title="Meu", body="Oi", owner=w.agent)


def _shared_reply() -> QuickReply:
    return QuickReply.objects.get_or_create(
        shortcut="ola", defaults={"title": "Olá", "body": "Oi"}
    )[0]


def _in_an_hour() -> str:
    return (timezone.now() + timedelta(hours=1)).isoformat()


def _scheduled(w: "World", status: str = "scheduled") -> Any:
    return MessageFactory(
        conversation=w.conversation,
        direction="out",
        sender="agent",
        sender_user=w.agent,
        status=status,
        send_at=timezone.now() + timedelta(hours=1),
        wa_message_id=None,
    )


def _start(w: "World", *, phone: str = "+55 11 91234-0000") -> dict[str, Any]:
    """``POST /conversations`` into Suporte, on the conversation's number, with its template."""
    account = w.conversation.whatsapp_account
    MessageTemplate.objects.get_or_create(
        account=account,
        name="ola",
        language="pt_BR",
        defaults={"status": "APPROVED", "components": [{"type": "BODY", "text": "Olá {{1}}"}]},
    )
    return {
        "phone": phone,
        "department": w.support.pk,
        "whatsapp_account": account.pk,
        "template": {"name": "ola", "language": "pt_BR", "parameters": ["Maria"]},
    }


ADMIN_ONLY = {"supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401}

# (name, state of the conversation, call, {role: status})
MATRIX: list[tuple[str, str, Call, dict[str, int]]] = [
    (
        "me",
        "pending",
        lambda c, w: c.get("/api/v1/auth/me"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "switch own availability",
        "pending",
        lambda c, w: c.patch("/api/v1/auth/me", {"availability": "away"}, format="json"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "change own password (wrong current one)",
        "pending",
        lambda c, w: c.post(
            "/api/v1/auth/password",
            {"current_password": "nope", "new_password": "Outra-Senha-Forte-9"},
            format="json",
        ),
        {"admin": 400, "supervisor": 400, "agent": 400, "other_agent": 400, "anonymous": 401},
    ),
    (
        "conversation list",
        "pending",
        lambda c, w: c.get("/api/v1/conversations"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "start a conversation (a template)",
        "pending",
        lambda c, w: c.post("/api/v1/conversations", _start(w), format="json"),
        {"admin": 201, "supervisor": 201, "agent": 201, "other_agent": 403, "anonymous": 401},
    ),
    (
        "start a conversation with a customer the agent handles",
        "assigned",
        lambda c, w: c.post(
            "/api/v1/conversations",
            _start(w, phone=w.conversation.customer.phone),
            format="json",
        ),
        {"admin": 409, "supervisor": 409, "agent": 200, "other_agent": 403, "anonymous": 401},
    ),
    (
        "conversation detail",
        "pending",
        lambda c, w: c.get(f"/api/v1/conversations/{w.conversation.pk}"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "take over",
        "pending",
        lambda c, w: c.post(f"/api/v1/conversations/{w.conversation.pk}/takeover"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "take over a colleague's",
        "assigned",
        lambda c, w: c.post(f"/api/v1/conversations/{w.conversation.pk}/takeover"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "transfer",
        "pending",
        lambda c, w: c.post(
            f"/api/v1/conversations/{w.conversation.pk}/transfer",
            {"to_department": w.sales.pk, "note": "vendas"},
            format="json",
        ),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "close an unassigned one",
        "pending",
        lambda c, w: c.post(f"/api/v1/conversations/{w.conversation.pk}/close"),
        {"admin": 200, "supervisor": 200, "agent": 403, "other_agent": 404, "anonymous": 401},
    ),
    (
        "close own",
        "assigned",
        lambda c, w: c.post(f"/api/v1/conversations/{w.conversation.pk}/close"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "reopen",
        "closed",
        lambda c, w: c.post(f"/api/v1/conversations/{w.conversation.pk}/reopen"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "history",
        "pending",
        lambda c, w: c.get(f"/api/v1/conversations/{w.conversation.pk}/history"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "stats",
        "pending",
        lambda c, w: c.get("/api/v1/conversations/stats"),
        {"admin": 200, "supervisor": 200, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "conversations CSV",
        "pending",
        lambda c, w: c.get("/api/v1/reports/conversations.csv"),
        {"admin": 200, "supervisor": 200, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "tag list",
        "pending",
        lambda c, w: c.get("/api/v1/tags"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "tag create",
        "pending",
        lambda c, w: c.post("/api/v1/tags", {"name": "VIP", "color": "#dc2626"}, format="json"),
        {**ADMIN_ONLY, "admin": 201},
    ),
    (
        "tag rename",
        "pending",
        lambda c, w: c.patch(f"/api/v1/tags/{_tag().pk}", {"name": "Cliente VIP"}, format="json"),
        {**ADMIN_ONLY, "admin": 200},
    ),
    (
        "tag delete",
        "pending",
        lambda c, w: c.delete(f"/api/v1/tags/{_tag().pk}"),
        {**ADMIN_ONLY, "admin": 204},
    ),
    (
        "set a conversation's tags",
        "pending",
        lambda c, w: c.put(
            f"/api/v1/conversations/{w.conversation.pk}/tags", {"tags": [_tag().pk]}, format="json"
        ),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "set a contact's tags",
        "pending",
        lambda c, w: c.put(
            f"/api/v1/contacts/{w.conversation.customer_id}/tags",
            {"tags": [_tag().pk]},
            format="json",
        ),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "contact list",
        "pending",
        lambda c, w: c.get("/api/v1/contacts?search=a"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "contact detail",
        "pending",
        lambda c, w: c.get(f"/api/v1/contacts/{w.conversation.customer_id}"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "change a contact's name and notes",
        "pending",
        lambda c, w: c.patch(
            f"/api/v1/contacts/{w.conversation.customer_id}",
            {"name": "Maria", "notes": "VIP"},
            format="json",
        ),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "a contact's conversations",
        "closed",
        lambda c, w: c.get(f"/api/v1/contacts/{w.conversation.customer_id}/conversations"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "quick reply list",
        "pending",
        lambda c, w: c.get("/api/v1/quick-replies"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "quick replies of a conversation",
        "pending",
        lambda c, w: c.get(f"/api/v1/quick-replies?conversation={w.conversation.pk}"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "create a personal quick reply",
        "pending",
        lambda c, w: c.post(
            "/api/v1/quick-replies", {"shortcut": "oi", "title": "Oi", "body": "Oi"}, format="json"
        ),
        {"admin": 201, "supervisor": 201, "agent": 201, "other_agent": 201, "anonymous": 401},
    ),
    (
        "create a shared quick reply",
        "pending",
        lambda c, w: c.post(
            "/api/v1/quick-replies",
            {"shortcut": "oi", "title": "Oi", "body": "Oi", "personal": False},
            format="json",
        ),
        {**ADMIN_ONLY, "admin": 201},
    ),
    (
        "change the agent's personal quick reply",
        "pending",
        lambda c, w: c.patch(
            f"/api/v1/quick-replies/{_personal_reply(w).pk}", {"title": "x"}, format="json"
        ),
        {"admin": 404, "supervisor": 404, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "delete the agent's personal quick reply",
        "pending",
        lambda c, w: c.delete(f"/api/v1/quick-replies/{_personal_reply(w).pk}"),
        {"admin": 404, "supervisor": 404, "agent": 204, "other_agent": 404, "anonymous": 401},
    ),
    (
        "change a shared quick reply",
        "pending",
        lambda c, w: c.patch(
            f"/api/v1/quick-replies/{_shared_reply().pk}", {"title": "x"}, format="json"
        ),
        {**ADMIN_ONLY, "admin": 200},
    ),
    (
        "delete a shared quick reply",
        "pending",
        lambda c, w: c.delete(f"/api/v1/quick-replies/{_shared_reply().pk}"),
        {**ADMIN_ONLY, "admin": 204},
    ),
    (
        "set the priority",
        "pending",
        lambda c, w: c.patch(
            f"/api/v1/conversations/{w.conversation.pk}", {"priority": "urgent"}, format="json"
        ),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "message list",
        "pending",
        lambda c, w: c.get(f"/api/v1/messages?conversation={w.conversation.pk}"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "send a message (assigned to the agent)",
        "assigned",
        lambda c, w: c.post(
            "/api/v1/messages", {"conversation": w.conversation.pk, "body": "Olá"}, format="json"
        ),
        {"admin": 201, "supervisor": 403, "agent": 201, "other_agent": 404, "anonymous": 401},
    ),
    (
        "send a message (waiting in the queue)",
        "pending",
        lambda c, w: c.post(
            "/api/v1/messages", {"conversation": w.conversation.pk, "body": "Olá"}, format="json"
        ),
        {"admin": 201, "supervisor": 403, "agent": 403, "other_agent": 404, "anonymous": 401},
    ),
    (
        "schedule a message (assigned to the agent)",
        "assigned",
        lambda c, w: c.post(
            "/api/v1/messages",
            {"conversation": w.conversation.pk, "body": "Olá", "send_at": _in_an_hour()},
            format="json",
        ),
        {"admin": 201, "supervisor": 403, "agent": 201, "other_agent": 404, "anonymous": 401},
    ),
    (
        "cancel a scheduled message (the agent's)",
        "assigned",
        lambda c, w: c.delete(f"/api/v1/messages/{_scheduled(w).pk}"),
        {"admin": 204, "supervisor": 403, "agent": 204, "other_agent": 404, "anonymous": 401},
    ),
    (
        "cancel a message that was sent already",
        "assigned",
        lambda c, w: c.delete(f"/api/v1/messages/{_scheduled(w, status='sent').pk}"),
        {"admin": 409, "supervisor": 403, "agent": 409, "other_agent": 404, "anonymous": 401},
    ),
    (
        "mark a message read",
        "pending",
        lambda c, w: c.patch(f"/api/v1/messages/{w.message.pk}/read"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 404, "anonymous": 401},
    ),
    (
        "user list",
        "pending",
        lambda c, w: c.get("/api/v1/users"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "users online",
        "pending",
        lambda c, w: c.get("/api/v1/users/online"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "user detail",
        "pending",
        lambda c, w: c.get(f"/api/v1/users/{w.agent.pk}"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "change a user's role",
        "pending",
        lambda c, w: c.patch(f"/api/v1/users/{w.agent.pk}", {"role": "supervisor"}, format="json"),
        {"admin": 200, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "deactivate a user",
        "pending",
        lambda c, w: c.delete(f"/api/v1/users/{w.agent.pk}"),
        {"admin": 204, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "department list",
        "pending",
        lambda c, w: c.get("/api/v1/departments"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "department detail",
        "pending",
        lambda c, w: c.get(f"/api/v1/departments/{w.support.pk}"),
        {"admin": 200, "supervisor": 200, "agent": 200, "other_agent": 200, "anonymous": 401},
    ),
    (
        "create a department",
        "pending",
        lambda c, w: c.post("/api/v1/departments", {"name": "Financeiro"}, format="json"),
        {"admin": 201, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "change a department",
        "pending",
        lambda c, w: c.patch(
            f"/api/v1/departments/{w.support.pk}", {"description": "Ajuda"}, format="json"
        ),
        {"admin": 200, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "delete a department",
        "pending",
        lambda c, w: c.delete(f"/api/v1/departments/{w.sales.pk}"),
        {"admin": 204, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "API keys",
        "pending",
        lambda c, w: c.get("/api/v1/api-keys"),
        {"admin": 200, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "create an API key",
        "pending",
        lambda c, w: c.post("/api/v1/api-keys", {"name": "n8n", "role": "admin"}, format="json"),
        {"admin": 201, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "an API key",
        "pending",
        lambda c, w: c.get(f"/api/v1/api-keys/{w.api_key().pk}"),
        {"admin": 200, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "revoke an API key",
        "pending",
        lambda c, w: c.delete(f"/api/v1/api-keys/{w.api_key().pk}"),
        {"admin": 204, "supervisor": 403, "agent": 403, "other_agent": 403, "anonymous": 401},
    ),
    (
        "webhook subscription list",
        "pending",
        lambda c, w: c.get("/api/v1/webhook-subscriptions"),
        {"admin": 200, **ADMIN_ONLY},
    ),
    (
        "subscribe a webhook",
        "pending",
        lambda c, w: c.post(
            "/api/v1/webhook-subscriptions",
            {"url": "https://93.184.215.14/hook", "events": ["*"]},
            format="json",
        ),
        {"admin": 201, **ADMIN_ONLY},
    ),
    (
        "webhook subscription detail",
        "pending",
        lambda c, w: c.get(f"/api/v1/webhook-subscriptions/{_subscription().pk}"),
        {"admin": 200, **ADMIN_ONLY},
    ),
    (
        "change a webhook subscription",
        "pending",
        lambda c, w: c.patch(
            f"/api/v1/webhook-subscriptions/{_subscription().pk}",
            {"is_active": False},
            format="json",
        ),
        {"admin": 200, **ADMIN_ONLY},
    ),
    (
        "delete a webhook subscription",
        "pending",
        lambda c, w: c.delete(f"/api/v1/webhook-subscriptions/{_subscription().pk}"),
        {"admin": 204, **ADMIN_ONLY},
    ),
    (
        "webhook deliveries",
        "pending",
        lambda c, w: c.get(f"/api/v1/webhook-subscriptions/{_subscription().pk}/deliveries"),
        {"admin": 200, **ADMIN_ONLY},
    ),
    (
        "redeliver a webhook",
        "pending",
        lambda c, w: c.post(f"/api/v1/webhook-deliveries/{_delivery().pk}/redeliver"),
        {"admin": 202, **ADMIN_ONLY},
    ),
    (
        "webhook event types",
        "pending",
        lambda c, w: c.get("/api/v1/webhook-event-types"),
        {"admin": 200, **ADMIN_ONLY},
    ),
]

CASES = [
    pytest.param(state, call, role, expected[role], id=f"{name} / {role}")
    for name, state, call, expected in MATRIX
    for role in ROLES
]


@pytest.mark.parametrize(("state", "call", "role", "expected"), CASES)
def test_role_matrix(
    request: pytest.FixtureRequest, state: str, call: Call, role: str, expected: int
) -> None:
    # given
    world = World(request, state)
    # when
    response = call(bearer(world.user(role)), world)
    # then
    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        body = response.json()
        assert set(body) >= {"detail", "code"}
        # a 404 never carries data about the hidden object
        if expected == 404:
            assert body["code"] == "not_found"
            assert str(world.conversation.customer.phone) not in response.content.decode()


def test_every_documented_operation_is_in_the_matrix() -> None:
    """A new endpoint must get its row: the schema's operations minus auth flows are covered."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/") and not path.startswith(("/api/v1/bot", "/api/v1/webhooks"))
        for method in item
    }
    not_in_matrix = {
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/refresh-token"),
    }
    covered = {
        ("GET", "/api/v1/auth/me"),
        ("PATCH", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/password"),
        ("GET", "/api/v1/conversations"),
        ("POST", "/api/v1/conversations"),
        ("GET", "/api/v1/conversations/{id}"),
        ("PATCH", "/api/v1/conversations/{id}"),
        ("PUT", "/api/v1/conversations/{id}/tags"),
        ("PUT", "/api/v1/contacts/{id}/tags"),
        ("GET", "/api/v1/contacts"),
        ("GET", "/api/v1/contacts/{id}"),
        ("PATCH", "/api/v1/contacts/{id}"),
        ("GET", "/api/v1/contacts/{id}/conversations"),
        ("GET", "/api/v1/quick-replies"),
        ("POST", "/api/v1/quick-replies"),
        ("PATCH", "/api/v1/quick-replies/{id}"),
        ("DELETE", "/api/v1/quick-replies/{id}"),
        ("GET", "/api/v1/tags"),
        ("POST", "/api/v1/tags"),
        ("PATCH", "/api/v1/tags/{id}"),
        ("DELETE", "/api/v1/tags/{id}"),
        ("POST", "/api/v1/conversations/{id}/takeover"),
        ("POST", "/api/v1/conversations/{id}/transfer"),
        ("POST", "/api/v1/conversations/{id}/close"),
        ("POST", "/api/v1/conversations/{id}/reopen"),
        ("GET", "/api/v1/conversations/{id}/history"),
        ("GET", "/api/v1/conversations/stats"),
        ("GET", "/api/v1/reports/conversations.csv"),
        ("GET", "/api/v1/messages"),
        ("POST", "/api/v1/messages"),
        ("PATCH", "/api/v1/messages/{id}/read"),
        ("DELETE", "/api/v1/messages/{id}"),
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/users/online"),
        ("GET", "/api/v1/users/{id}"),
        ("PATCH", "/api/v1/users/{id}"),
        ("DELETE", "/api/v1/users/{id}"),
        ("GET", "/api/v1/departments"),
        ("POST", "/api/v1/departments"),
        ("GET", "/api/v1/departments/{id}"),
        ("PATCH", "/api/v1/departments/{id}"),
        ("DELETE", "/api/v1/departments/{id}"),
        ("GET", "/api/v1/api-keys"),
        ("POST", "/api/v1/api-keys"),
        ("GET", "/api/v1/api-keys/{id}"),
        ("DELETE", "/api/v1/api-keys/{id}"),
        ("GET", "/api/v1/webhook-subscriptions"),
        ("POST", "/api/v1/webhook-subscriptions"),
        ("GET", "/api/v1/webhook-subscriptions/{id}"),
        ("PATCH", "/api/v1/webhook-subscriptions/{id}"),
        ("DELETE", "/api/v1/webhook-subscriptions/{id}"),
        ("GET", "/api/v1/webhook-subscriptions/{id}/deliveries"),
        ("POST", "/api/v1/webhook-deliveries/{id}/redeliver"),
        ("GET", "/api/v1/webhook-event-types"),
    }
    assert operations - not_in_matrix == covered
