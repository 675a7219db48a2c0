"""Conversations the desk starts (``POST /api/v1/conversations``): the customer found as the
intake finds them, a conversation assigned to the caller, the template through the fake Graph
API — or a clear refusal that leaves nothing behind."""

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from common.events import DomainEvent
from conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Customer,
    Message,
    MessageStatus,
)
from conversations.tests.factories import ConversationFactory, CustomerFactory
from departments.tests.factories import DepartmentFactory
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer
from whatsapp.models import MessageTemplate
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

WELCOME = [{"type": "BODY", "text": "Olá {{1}}, aqui é a Loja. Podemos ajudar?"}]
BOLETO = [
    {"type": "HEADER", "format": "DOCUMENT"},
    {"type": "BODY", "text": "Olá {{1}}, seu boleto de {{2}} está anexo."},
    {
        "type": "BUTTONS",
        "buttons": [{"type": "URL", "text": "Pagar", "url": "https://loja.example.com/p/{{1}}"}],
    },
]


class Recorder:
    """Keeps the domain events emitted (inside the transaction)."""

    events: ClassVar[list[DomainEvent]] = []

    def in_transaction(self, events: Sequence[DomainEvent]) -> None:
        Recorder.events.extend(events)


@pytest.fixture
def emitted(settings: Any) -> list[DomainEvent]:
    Recorder.events = []
    settings.DOMAIN_EVENT_HANDLERS = [
        *settings.DOMAIN_EVENT_HANDLERS,
        "conversations.tests.test_proactive.Recorder",
    ]
    return Recorder.events


@pytest.fixture(autouse=True)
def _english(settings: Any) -> Any:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def welcome(fake_graph: Any) -> MessageTemplate:
    return MessageTemplate.objects.create(
        account=fake_graph.account,
        name="boas_vindas",
        language="pt_BR",
        status="APPROVED",
        components=WELCOME,
    )


def _start(user: Any, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "phone": "+55 11 98765-4321",
        "template": {"name": "boas_vindas", "language": "pt_BR", "parameters": ["Maria"]},
    }
    data.update(fields)
    return bearer(user).post("/api/v1/conversations", data, "json")


def _sent(fake_graph: Any) -> list[dict[str, Any]]:
    return fake_graph.message_sends


# --- starting -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("welcome")
def test_an_agent_starts_a_conversation_and_the_template_reaches_the_customer(
    fake_graph: Any,
    agent: Any,
    support: Any,
    emitted: list[DomainEvent],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(agent, name="Maria Souza")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "open"
    assert body["assigned_to"]["id"] == agent.pk
    assert body["department"] == {"id": support.pk, "name": "Suporte"}
    assert body["customer"]["phone"] == "+5511987654321"
    assert body["customer"]["name"] == "Maria Souza"
    assert body["whatsapp_account"]["id"] == fake_graph.account.pk
    assert body["message"]["type"] == "template"
    assert body["message"]["body"] == "Olá Maria, aqui é a Loja. Podemos ajudar?"
    assert _sent(fake_graph) == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": "template",
            "template": {
                "name": "boas_vindas",
                "language": {"code": "pt_BR"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}],
            },
        }
    ]
    message = Message.objects.get(pk=body["message"]["id"])
    assert message.status == MessageStatus.SENT
    assert message.sender_user == agent
    assert [e.type for e in emitted] == [
        "conversation.created",
        "conversation.assigned",
        "message.created",
        "message.status",  # sent
    ]
    kinds = ConversationEvent.objects.filter(conversation_id=body["id"]).values_list(
        "kind", flat=True
    )
    assert set(kinds) >= {"created", "taken_over", "first_response"}


@pytest.mark.usefixtures("welcome")
def test_the_new_conversation_shows_in_the_agents_list(agent: Any) -> None:
    started = _start(agent).json()
    listed = bearer(agent).get("/api/v1/conversations?assigned_to=" + str(agent.pk)).json()
    assert [c["id"] for c in listed["results"]] == [started["id"]]


@pytest.mark.usefixtures("welcome")
def test_a_supervisor_may_leave_the_department_empty(fake_graph: Any, supervisor: Any) -> None:
    response = _start(supervisor)
    assert response.status_code == 201, response.content
    assert response.json()["department"] is None
    assert response.json()["assigned_to"]["id"] == supervisor.pk


@pytest.mark.usefixtures("welcome")
def test_an_agent_may_choose_another_of_their_departments(agent: Any, sales: Any) -> None:
    agent.departments.add(sales)
    response = _start(agent, department=sales.pk)
    assert response.status_code == 201, response.content
    assert response.json()["department"]["name"] == "Vendas"


def test_another_number_is_chosen_by_whatsapp_account(fake_graph: Any, agent: Any) -> None:
    shop = WhatsAppAccountFactory(name="Loja 2")
    MessageTemplate.objects.create(
        account=shop, name="boas_vindas", language="pt_BR", status="APPROVED", components=WELCOME
    )
    response = _start(agent, whatsapp_account=shop.pk)
    assert response.status_code == 201, response.content
    assert response.json()["whatsapp_account"]["id"] == shop.pk


# --- the customer: the intake's identity rules ----------------------------------------------------


@pytest.mark.usefixtures("welcome")
@pytest.mark.parametrize(
    ("known_as", "typed"),
    [
        ("551187654321", "+55 11 98765-4321"),  # WhatsApp knows the old form, the agent types 9
        ("5511987654321", "55 11 8765-4321"),  # and the other way round
    ],
)
def test_the_ninth_digit_finds_the_existing_customer(
    fake_graph: Any,
    agent: Any,
    known_as: str,
    typed: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    known = CustomerFactory(wa_id=known_as, phone=f"+{known_as}", name="Maria Antiga")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(agent, phone=typed, name="Outro Nome")
    # then
    assert response.status_code == 201, response.content
    assert response.json()["customer"]["id"] == known.pk
    assert Customer.objects.count() == 1
    known.refresh_from_db()
    assert known.wa_id == known_as  # the form WhatsApp reported stays the one written to
    assert known.name == "Maria Antiga"  # an existing contact keeps its name
    assert _sent(fake_graph)[0]["to"] == known_as


@pytest.mark.usefixtures("welcome")
def test_the_customer_who_writes_afterwards_joins_the_same_conversation(
    fake_graph: Any, agent: Any, signed_webhook: Any, client: Any
) -> None:
    from whatsapp.services import sandbox

    started = _start(agent, phone="+55 11 98765-4321").json()
    # WhatsApp reports the customer without the ninth digit
    body, headers = signed_webhook(sandbox.text_delivery(wa_id="551187654321", body="Oi!"))
    client.post("/api/v1/webhooks/whatsapp", body, content_type="application/json", headers=headers)
    assert Customer.objects.count() == 1
    conversation = Conversation.objects.get()
    assert conversation.pk == started["id"]
    assert conversation.messages.filter(direction="in", body="Oi!").exists()
    assert conversation.assigned_to == agent


# --- the customer's conversation in progress ------------------------------------------------------


@pytest.mark.usefixtures("welcome")
def test_the_agents_own_conversation_in_progress_is_used(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    mine = ConversationFactory(
        whatsapp_account=fake_graph.account,
        customer__wa_id="5511987654321",
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(agent)
    assert response.status_code == 200, response.content
    assert response.json()["id"] == mine.pk
    assert Conversation.objects.count() == 1
    assert len(_sent(fake_graph)) == 1


@pytest.mark.usefixtures("welcome")
def test_a_conversation_waiting_with_the_bot_is_taken_over(
    fake_graph: Any, agent: Any, support: Any, emitted: list[DomainEvent]
) -> None:
    waiting = ConversationFactory(
        whatsapp_account=fake_graph.account,
        customer__wa_id="5511987654321",
        status=ConversationStatus.BOT,
        department=None,
    )
    response = _start(agent)
    assert response.status_code == 200, response.content
    waiting.refresh_from_db()
    assert (waiting.status, waiting.assigned_to, waiting.department) == ("open", agent, support)
    assert [e.type for e in emitted] == ["conversation.assigned", "message.created"]


@pytest.mark.usefixtures("welcome")
def test_a_conversation_a_colleague_handles_is_a_conflict(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from accounts.tests.factories import UserFactory

    colleague = UserFactory(role="agent", name="Carla Colega", departments=[support])
    theirs = ConversationFactory(
        whatsapp_account=fake_graph.account,
        customer__wa_id="5511987654321",
        customer__name="Maria",
        department=support,
        assigned_to=colleague,
        status=ConversationStatus.OPEN,
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(agent)
    body = assert_error_shape(response, 409, "conversation_in_progress")
    assert "Maria already has a conversation in progress with Carla Colega" in body["detail"]
    theirs.refresh_from_db()
    assert theirs.assigned_to == colleague
    assert not Message.objects.exists()
    assert _sent(fake_graph) == []


@pytest.mark.usefixtures("welcome")
def test_a_queue_the_agent_does_not_see_is_a_conflict_a_supervisor_takes_it(
    fake_graph: Any, agent: Any, supervisor: Any, sales: Any
) -> None:
    queued = ConversationFactory(
        whatsapp_account=fake_graph.account,
        customer__wa_id="5511987654321",
        department=sales,
        status=ConversationStatus.PENDING,
    )
    body = assert_error_shape(_start(agent), 409, "conversation_in_progress")
    assert "waiting in another department's queue" in body["detail"]
    assert _start(supervisor).status_code == 200
    queued.refresh_from_db()
    assert (queued.assigned_to, queued.department) == (supervisor, sales)


@pytest.mark.usefixtures("welcome")
def test_a_closed_conversation_does_not_count(fake_graph: Any, agent: Any, support: Any) -> None:
    old = ConversationFactory(
        whatsapp_account=fake_graph.account,
        customer__wa_id="5511987654321",
        department=support,
        status=ConversationStatus.CLOSED,
    )
    response = _start(agent)
    assert response.status_code == 201
    assert response.json()["id"] != old.pk
    assert response.json()["customer"]["id"] == old.customer_id


# --- who may --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("welcome")
def test_an_agent_starts_only_in_their_own_departments(
    fake_graph: Any, agent: Any, sales: Any
) -> None:
    assert_error_shape(_start(agent, department=sales.pk), 403, "permission_denied")
    assert not Customer.objects.exists()
    assert not Conversation.objects.exists()


def test_anonymous_callers_are_refused(db: Any) -> None:
    assert_error_shape(_start(None), 401)


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("welcome")
@pytest.mark.parametrize(
    ("fields", "code", "field", "text"),
    [
        ({"phone": ""}, "blank", "phone", "may not be blank"),
        ({"phone": "12345"}, "invalid_phone", None, "is not a WhatsApp number"),
        ({"phone": "+55 11 abcd"}, "invalid_phone", None, "is not a WhatsApp number"),
        ({"template": None}, "null", "template", "may not be null"),
        ({"template": {"name": "boas_vindas"}}, "invalid", "template", "language"),
        ({"department": 999999}, "does_not_exist", "department", "Invalid pk"),
        ({"whatsapp_account": 999999}, "invalid_whatsapp_account", None, "active numbers"),
        (
            {"template": {"name": "nao_existe", "language": "pt_BR"}},
            "template_not_found",
            None,
            "not known for this WhatsApp number",
        ),
        (
            {"template": {"name": "boas_vindas", "language": "pt_BR", "parameters": []}},
            "template_parameters",
            None,
            "needs 1 body parameter(s); 0 given",
        ),
    ],
)
def test_refusals_are_400s_with_the_error_shape_and_leave_nothing(  # noqa: PLR0917 - parameters
    fake_graph: Any,
    agent: Any,
    fields: dict[str, Any],
    code: str,
    field: str | None,
    text: str,
) -> None:
    body = assert_error_shape(_start(agent, **fields), 400, code)
    assert text in body["detail"]
    if field:
        assert field in body["errors"]
    assert not Customer.objects.exists()
    assert not Conversation.objects.exists()
    assert _sent(fake_graph) == []


@pytest.mark.usefixtures("welcome")
def test_an_inactive_department_is_refused(agent: Any) -> None:
    closed = DepartmentFactory(name="Antigo", is_active=False)
    agent.departments.add(closed)
    assert_error_shape(_start(agent, department=closed.pk), 400, "inactive_department")


def test_a_template_that_is_not_approved_is_refused(fake_graph: Any, agent: Any) -> None:
    MessageTemplate.objects.create(
        account=fake_graph.account,
        name="boas_vindas",
        language="pt_BR",
        status="PAUSED",
        components=WELCOME,
    )
    body = assert_error_shape(_start(agent), 400, "template_not_approved")
    assert "paused" in body["detail"]
    assert not Conversation.objects.exists()


# --- a media header -------------------------------------------------------------------------------


def test_a_boleto_pdf_uploaded_as_the_header_goes_through_graph_media(
    fake_graph: Any, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import json

    MessageTemplate.objects.create(
        account=fake_graph.account,
        name="boleto",
        language="pt_BR",
        status="APPROVED",
        components=BOLETO,
    )
    pdf = SimpleUploadedFile("boleto.pdf", b"%PDF-1.4 boleto", content_type="application/pdf")
    template = {
        "name": "boleto",
        "language": "pt_BR",
        "parameters": ["Maria", "R$ 129,90"],
        "buttons": [{"index": 0, "text": "abc123"}],
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = bearer(agent).post(
            "/api/v1/conversations",
            {"phone": "5511987654321", "template": json.dumps(template), "file": pdf},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    assert response.json()["message"]["media"]["filename"] == "boleto.pdf"
    assert [u["content"] for u in fake_graph.uploads if b"%PDF" in u["content"]]
    media_id = fake_graph.uploads[0]["id"]
    assert _sent(fake_graph)[0]["template"]["components"] == [
        {
            "type": "header",
            "parameters": [
                {"type": "document", "document": {"filename": "boleto.pdf", "id": media_id}}
            ],
        },
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Maria"},
                {"type": "text", "text": "R$ 129,90"},
            ],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [{"type": "text", "text": "abc123"}],
        },
    ]


@pytest.mark.usefixtures("welcome")
def test_the_refusals_speak_portuguese(agent: Any, settings: Any) -> None:
    settings.LANGUAGE_CODE = "pt-br"
    body = assert_error_shape(_start(agent, phone="123"), 400, "invalid_phone")
    assert "não é um número de WhatsApp" in body["detail"]
