"""The console's "New conversation" form (``/new/``) and the pane's template picker with a field
per parameter (header text, a media header's link or file, body, buttons)."""

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone, translation

from conversations.models import Conversation, ConversationStatus, Customer
from conversations.tests.factories import ConversationFactory
from whatsapp.models import MessageTemplate

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
BOLETO = [
    {"type": "HEADER", "format": "DOCUMENT"},
    {"type": "BODY", "text": "Olá {{1}}, seu boleto de {{2}} está anexo."},
    {
        "type": "BUTTONS",
        "buttons": [
            {"type": "URL", "text": "Pagar", "url": "https://loja.example.com/p/{{1}}"},
            {"type": "QUICK_REPLY", "text": "Já paguei"},
        ],
    },
]
ORDER = [
    {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"},
    {"type": "BODY", "text": "Olá {{1}}, seu pedido saiu."},
]


@pytest.fixture(autouse=True)
def _english(settings: Any) -> Any:
    settings.LANGUAGE_CODE = "en"
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    with translation.override("en"):
        yield


@pytest.fixture
def boleto(fake_graph: Any) -> MessageTemplate:
    return MessageTemplate.objects.create(
        account=fake_graph.account,
        name="boleto",
        language="pt_BR",
        status="APPROVED",
        components=BOLETO,
    )


@pytest.fixture
def order(fake_graph: Any) -> MessageTemplate:
    return MessageTemplate.objects.create(
        account=fake_graph.account,
        name="pedido",
        language="pt_BR",
        status="APPROVED",
        components=ORDER,
    )


def _pdf() -> SimpleUploadedFile:
    return SimpleUploadedFile("boleto.pdf", b"%PDF-1.4 boleto", content_type="application/pdf")


def test_the_console_offers_a_new_conversation(client: Any, agent: Any) -> None:
    client.force_login(agent)
    html = client.get("/").content.decode()
    assert 'id="new-conversation"' in html
    assert 'href="/new/"' in html


@pytest.mark.usefixtures("boleto", "order")
def test_the_form_offers_the_agents_departments_and_each_templates_fields(
    client: Any, agent: Any, sales: Any
) -> None:
    client.force_login(agent)
    html = client.get("/new/", **HTMX).content.decode()
    assert 'id="new-conversation-form"' in html
    assert "data-new-conversation" in html
    assert ">Suporte</option>" in html
    assert ">Vendas</option>" not in html  # not the agent's department
    assert ">No department</option>" not in html
    # one fieldset per template, with its parameters
    assert html.count("data-template-fields=") == 2
    assert 'name="header_file"' in html  # the boleto's document header
    assert 'name="header_link"' in html
    assert 'name="header_text"' in html  # the order's text header
    assert 'name="button_0"' in html  # "Pagar": the end of its link
    assert "the end of https://loja.example.com/p/{{1}}" in html
    assert 'name="button_1"' in html  # the quick reply's optional payload
    assert html.count('name="body"') == 3


def test_a_supervisor_may_choose_no_department(client: Any, supervisor: Any, sales: Any) -> None:
    client.force_login(supervisor)
    html = client.get("/new/").content.decode()
    assert ">No department</option>" in html
    assert ">Vendas</option>" in html


def test_starting_opens_the_new_conversation_and_sends_the_template(  # noqa: PLR0917 - fixtures
    client: Any,
    fake_graph: Any,
    agent: Any,
    support: Any,
    boleto: MessageTemplate,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client.force_login(agent)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/new/",
            {
                "phone": "+55 (11) 98765-4321",
                "name": "Maria Souza",
                "department": support.pk,
                "template": boleto.pk,
                "header_file": _pdf(),
                "body": ["Maria", "R$ 129,90"],
                "button_0": "abc123",
                "button_1": "",
            },
            **HTMX,
        )
    conversation = Conversation.objects.get()
    assert response["HX-Push-Url"] == f"/c/{conversation.pk}/"
    html = response.content.decode()
    assert f'data-conversation-id="{conversation.pk}"' in html
    assert "Olá Maria, seu boleto de R$ 129,90 está anexo." in html
    assert (conversation.assigned_to, conversation.status) == (agent, ConversationStatus.OPEN)
    assert conversation.customer.name == "Maria Souza"
    (sent,) = fake_graph.message_sends
    assert sent["to"] == "5511987654321"
    (upload,) = fake_graph.uploads
    assert sent["template"]["components"] == [
        {
            "type": "header",
            "parameters": [
                {"type": "document", "document": {"filename": "boleto.pdf", "id": upload["id"]}}
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


def test_a_refusal_shows_in_the_form_with_what_was_typed(
    client: Any, fake_graph: Any, agent: Any, order: MessageTemplate
) -> None:
    client.force_login(agent)
    html = client.post(
        "/new/",
        {"phone": "12345", "name": "Maria", "template": order.pk, "header_text": "7", "body": "x"},
        **HTMX,
    ).content.decode()
    assert "is not a WhatsApp number" in html
    assert 'value="12345"' in html
    assert 'value="Maria"' in html
    assert not Customer.objects.exists()
    assert fake_graph.sends == []


def test_a_colleagues_conversation_in_progress_is_explained(
    client: Any, fake_graph: Any, agent: Any, support: Any, order: MessageTemplate
) -> None:
    from accounts.tests.factories import UserFactory

    colleague = UserFactory(role="agent", name="Carla Colega", departments=[support])
    ConversationFactory(
        whatsapp_account=fake_graph.account,
        customer__wa_id="5511987654321",
        customer__name="Maria",
        department=support,
        assigned_to=colleague,
        status=ConversationStatus.OPEN,
    )
    client.force_login(agent)
    html = client.post(
        "/new/",
        {"phone": "5511987654321", "template": order.pk, "header_text": "7", "body": "Maria"},
        **HTMX,
    ).content.decode()
    assert "already has a conversation in progress with Carla Colega" in html
    assert fake_graph.sends == []


def test_without_htmx_the_form_redirects_to_the_conversation(
    client: Any, fake_graph: Any, agent: Any, order: MessageTemplate
) -> None:
    client.force_login(agent)
    response = client.post(
        "/new/",
        {"phone": "5511987654321", "template": order.pk, "header_text": "7", "body": "Maria"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/c/{Conversation.objects.get().pk}/"


# --- the pane's picker ---------------------------------------------------------------------------


@pytest.fixture
def closed_window(fake_graph: Any, agent: Any, support: Any) -> Conversation:
    return ConversationFactory(
        whatsapp_account=fake_graph.account,
        customer__wa_id="5511987650002",
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        last_inbound_at=timezone.now() - timedelta(days=2),
    )


def test_the_pane_picker_sends_a_text_header_and_the_body(  # noqa: PLR0917 - fixtures
    client: Any,
    fake_graph: Any,
    agent: Any,
    closed_window: Conversation,
    order: MessageTemplate,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client.force_login(agent)
    assert 'name="header_text"' in client.get(f"/c/{closed_window.pk}/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        html = client.post(
            f"/c/{closed_window.pk}/template/",
            {"template": order.pk, "header_text": "77", "body": ["Rita"]},
            **HTMX,
        ).content.decode()
    assert "Pedido 77" in html
    assert "Olá Rita, seu pedido saiu." in html
    (sent,) = fake_graph.message_sends
    assert sent["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "77"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Rita"}]},
    ]


def test_the_pane_picker_takes_a_link_for_a_document_header(  # noqa: PLR0917 - fixtures
    client: Any,
    fake_graph: Any,
    agent: Any,
    closed_window: Conversation,
    boleto: MessageTemplate,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client.force_login(agent)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/c/{closed_window.pk}/template/",
            {
                "template": boleto.pk,
                "header_link": "https://loja.example.com/b/1.pdf",
                "header_filename": "boleto-dezembro.pdf",
                "body": ["Rita", "R$ 10"],
                "button_0": "x1",
                "button_1": "PAGO",
            },
            **HTMX,
        )
    (sent,) = fake_graph.message_sends
    components = sent["template"]["components"]
    assert components[0] == {
        "type": "header",
        "parameters": [
            {
                "type": "document",
                "document": {
                    "link": "https://loja.example.com/b/1.pdf",
                    "filename": "boleto-dezembro.pdf",
                },
            }
        ],
    }
    assert components[-1] == {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "1",
        "parameters": [{"type": "payload", "payload": "PAGO"}],
    }


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"header_text": "77", "body": [" "]}, "got an empty parameter"),
        ({"body": ["Rita"]}, "needs 1 header parameter(s); 0 given"),
    ],
)
def test_the_pane_picker_explains_what_is_missing(  # noqa: PLR0917 - fixtures
    client: Any,
    fake_graph: Any,
    agent: Any,
    closed_window: Conversation,
    order: MessageTemplate,
    fields: dict[str, Any],
    text: str,
) -> None:
    client.force_login(agent)
    html = client.post(
        f"/c/{closed_window.pk}/template/", {"template": order.pk, **fields}, **HTMX
    ).content.decode()
    assert text in html
    assert not closed_window.messages.exists()
