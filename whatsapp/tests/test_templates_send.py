"""A template goes out only when it is synced and APPROVED for the conversation's number, with
as many body parameters as it has placeholders — through the service, the REST API and the
console's picker."""

from datetime import timedelta
from typing import Any

import pytest

from common.exceptions import ServiceError
from conversations import services
from conversations.models import Message, MessageStatus, MessageType
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer
from whatsapp.models import MessageTemplate
from whatsapp.tests.conftest import open_conversation
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

BODY = [{"type": "BODY", "text": "Olá {{1}}, seu pedido {{2}} chegou. Podemos continuar?"}]


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"  # requests too read the English texts


@pytest.fixture
def conversation(fake_graph: Any, agent: Any, support: Any) -> Any:
    """Outside the 24-hour window: only a template may be sent."""
    return open_conversation(fake_graph, agent, support, inbound_ago=timedelta(days=2))


def _template(account: Any, *, status: str = "APPROVED", **kwargs: Any) -> MessageTemplate:
    fields: dict[str, Any] = {"name": "pedido_chegou", "language": "pt_BR", "components": BODY}
    fields.update(kwargs)
    return MessageTemplate.objects.create(account=account, status=status, **fields)


def _raw(*parameters: str, name: str = "pedido_chegou", language: str = "pt_BR") -> Any:
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if parameters:
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in parameters]}
        ]
    return {"template": template}


def _send_template(conversation: Any, agent: Any, raw: Any) -> Message:
    return services.message_create_outbound(
        conversation=conversation,
        actor=agent,
        body="Olá",
        type=MessageType.TEMPLATE,
        raw_payload=raw,
    )


# --- the service ------------------------------------------------------------------------------


def test_an_approved_template_with_its_parameters_is_sent(
    fake_graph: Any, conversation: Any, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _template(fake_graph.account)
    with django_capture_on_commit_callbacks(execute=True):
        message = _send_template(conversation, agent, _raw("Maria", "123"))
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert fake_graph.message_sends[0]["template"]["name"] == "pedido_chegou"


def test_a_template_that_is_not_synced_is_refused(
    fake_graph: Any, conversation: Any, agent: Any
) -> None:
    # same name on another number, or in another language, does not count
    _template(WhatsAppAccountFactory())
    _template(fake_graph.account, language="en_US")
    with pytest.raises(ServiceError, match="not known for this WhatsApp number") as refused:
        _send_template(conversation, agent, _raw("Maria", "123"))
    assert refused.value.code == "template_not_found"
    assert "pedido_chegou" in refused.value.message
    assert not conversation.messages.exists()
    assert fake_graph.sends == []


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("PAUSED", "paused"),
        ("REJECTED", "rejected"),
        ("PENDING", "pending review"),
        ("DISABLED", "disabled"),
    ],
)
def test_a_template_that_is_not_approved_is_refused_naming_its_state(
    fake_graph: Any, conversation: Any, agent: Any, status: str, state: str
) -> None:
    _template(fake_graph.account, status=status)
    with pytest.raises(ServiceError) as refused:
        _send_template(conversation, agent, _raw("Maria", "123"))
    assert refused.value.code == "template_not_approved"
    assert f"on WhatsApp it is {state}, not approved" in refused.value.message
    assert not conversation.messages.exists()


@pytest.mark.parametrize("parameters", [(), ("Maria",), ("Maria", "123", "extra")])
def test_the_number_of_body_parameters_must_match(
    fake_graph: Any, conversation: Any, agent: Any, parameters: tuple[str, ...]
) -> None:
    _template(fake_graph.account)
    with pytest.raises(ServiceError, match="needs 2 body parameter") as refused:
        _send_template(conversation, agent, _raw(*parameters))
    assert refused.value.code == "template_parameters"
    assert f"{len(parameters)} given" in refused.value.message


def test_a_template_without_placeholders_takes_no_parameters(
    fake_graph: Any, conversation: Any, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _template(fake_graph.account, components=[{"type": "BODY", "text": "Podemos continuar?"}])
    with django_capture_on_commit_callbacks(execute=True):
        _send_template(conversation, agent, _raw())
    assert len(fake_graph.message_sends) == 1


def test_the_refusal_is_translated(fake_graph: Any, conversation: Any, agent: Any) -> None:
    from django.utils import translation

    _template(fake_graph.account, status="PAUSED")
    with translation.override("pt-br"), pytest.raises(ServiceError) as refused:
        _send_template(conversation, agent, _raw("Maria", "123"))
    assert "pausado" in refused.value.message


# --- the REST API -----------------------------------------------------------------------------


def _api_send(agent: Any, conversation: Any, **template: Any) -> Any:
    payload = {"name": "pedido_chegou", "language": "pt_BR", "parameters": ["Maria", "123"]}
    payload.update(template)
    return bearer(agent).post(
        "/api/v1/messages", {"conversation": conversation.pk, "template": payload}, "json"
    )


def test_api_sends_an_approved_template(
    fake_graph: Any, conversation: Any, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _template(fake_graph.account)
    with django_capture_on_commit_callbacks(execute=True):
        response = _api_send(agent, conversation)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "template"
    assert body["body"] == "Olá Maria, seu pedido 123 chegou. Podemos continuar?"
    sent = fake_graph.message_sends[0]
    assert sent["to"] == "5511987650002"
    assert sent["template"] == {
        "name": "pedido_chegou",
        "language": {"code": "pt_BR"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Maria"}, {"type": "text", "text": "123"}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("status", "request_template", "code", "text"),
    [
        (None, {}, "template_not_found", "not known"),
        ("APPROVED", {"language": "en_US"}, "template_not_found", "not known"),
        ("PAUSED", {}, "template_not_approved", "paused"),
        ("REJECTED", {}, "template_not_approved", "rejected"),
        ("PENDING", {}, "template_not_approved", "pending review"),
        ("DISABLED", {}, "template_not_approved", "disabled"),
        ("APPROVED", {"parameters": ["Maria"]}, "template_parameters", "needs 2"),
    ],
)
def test_api_refuses_with_a_400_and_the_code(  # noqa: PLR0917 - pytest fixtures
    fake_graph: Any,
    conversation: Any,
    agent: Any,
    status: str | None,
    request_template: dict[str, Any],
    code: str,
    text: str,
) -> None:
    if status:
        _template(fake_graph.account, status=status)
    body = assert_error_shape(_api_send(agent, conversation, **request_template), 400, code)
    assert text in body["detail"]
    assert "pedido_chegou" in body["detail"]
    assert not conversation.messages.exists()
    assert fake_graph.sends == []


def test_api_template_needs_name_and_language(conversation: Any, agent: Any) -> None:
    response = bearer(agent).post(
        "/api/v1/messages",
        {"conversation": conversation.pk, "template": {"name": "pedido_chegou"}},
        "json",
    )
    body = assert_error_shape(response, 400)
    assert body["errors"]["template"] == ["language: This field is required."]


# --- the console's picker ---------------------------------------------------------------------

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_console_shows_why_a_template_paused_meanwhile_was_not_sent(
    client: Any, fake_graph: Any, conversation: Any, agent: Any
) -> None:
    template = _template(fake_graph.account)
    client.force_login(agent)
    assert "pedido_chegou" in client.get(f"/c/{conversation.pk}/").content.decode()
    # Meta pauses the template while the agent fills in the parameters
    MessageTemplate.objects.filter(pk=template.pk).update(status="PAUSED")
    html = client.post(
        f"/c/{conversation.pk}/template/",
        {"template": template.pk, "parameters": "Maria\n123"},
        **HTMX,
    ).content.decode()
    assert "on WhatsApp it is paused, not approved" in html
    assert not conversation.messages.exists()


def test_console_shows_a_wrong_number_of_parameters(
    client: Any, fake_graph: Any, conversation: Any, agent: Any
) -> None:
    template = _template(fake_graph.account)
    client.force_login(agent)
    html = client.post(
        f"/c/{conversation.pk}/template/", {"template": template.pk, "parameters": "Maria"}, **HTMX
    ).content.decode()
    assert "needs 2 body parameter(s); 1 given" in html
    assert not conversation.messages.exists()
