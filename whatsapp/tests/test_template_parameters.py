"""Every kind of template parameter Meta takes — header text, an image, video or document header
(a link, or a file uploaded to Graph media), a location header, body parameters (positional or
named), a URL button's link ending, a quick reply's payload — built into the Cloud API's
``components`` and checked against the synced template, through ``POST /messages``."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations.models import Message
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer
from whatsapp.models import MessageTemplate
from whatsapp.tests.conftest import open_conversation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

ORDER = [
    {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"},
    {"type": "BODY", "text": "Olá {{1}}, seu pedido saiu para entrega."},
    {"type": "FOOTER", "text": "Loja"},
    {
        "type": "BUTTONS",
        "buttons": [
            {"type": "URL", "text": "Rastrear", "url": "https://loja.example.com/r/{{1}}"},
            {"type": "QUICK_REPLY", "text": "Falar com atendente"},
            {"type": "PHONE_NUMBER", "text": "Ligar", "phone_number": "+551140001000"},
            {"type": "URL", "text": "Site", "url": "https://loja.example.com"},
        ],
    },
]
NAMED = [
    {"type": "HEADER", "format": "TEXT", "text": "Pedido {{pedido}}"},
    {"type": "BODY", "text": "Olá {{nome}}, tudo certo?"},
]
PLAIN = [{"type": "BODY", "text": "Olá {{1}}"}]
LOCATION = [{"type": "HEADER", "format": "LOCATION"}, {"type": "BODY", "text": "Estamos aqui."}]
PDF = b"%PDF-1.4 boleto"
JPEG = b"\xff\xd8\xff\xe0 jpeg"


def _media(kind: str) -> list[dict[str, Any]]:
    return [{"type": "HEADER", "format": kind.upper()}, {"type": "BODY", "text": "Segue."}]


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def conversation(fake_graph: Any, agent: Any, support: Any) -> Any:
    """Outside the 24-hour window: only a template may be sent."""
    return open_conversation(fake_graph, agent, support, inbound_ago=timedelta(days=2))


def _synced(fake_graph: Any, components: list[dict[str, Any]], name: str = "t") -> None:
    MessageTemplate.objects.create(
        account=fake_graph.account,
        name=name,
        language="pt_BR",
        status="APPROVED",
        components=components,
    )


def _send(agent: Any, conversation: Any, file: Any = None, **template: Any) -> Any:
    data: dict[str, Any] = {"name": "t", "language": "pt_BR", **template}
    if file is None:
        return bearer(agent).post(
            "/api/v1/messages", {"conversation": conversation.pk, "template": data}, "json"
        )
    return bearer(agent).post(
        "/api/v1/messages",
        {"conversation": conversation.pk, "template": json.dumps(data), "file": file},
        format="multipart",
    )


def _components(fake_graph: Any) -> list[dict[str, Any]]:
    (sent,) = fake_graph.message_sends
    return sent["template"]["components"]


# --- the Graph payload, kind by kind ------------------------------------------------------------


def test_header_text_body_url_suffix_and_quick_reply_payload(
    fake_graph: Any, conversation: Any, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _synced(fake_graph, ORDER)
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(
            agent,
            conversation,
            header={"text": "123"},
            parameters=["Maria"],
            buttons=[{"index": 0, "text": "BR123"}, {"index": 1, "payload": "HUMANO"}],
        )
    assert response.status_code == 201, response.content
    assert response.json()["body"] == "*Pedido 123*\nOlá Maria, seu pedido saiu para entrega."
    assert _components(fake_graph) == [
        {"type": "header", "parameters": [{"type": "text", "text": "123"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Maria"}]},
        {
            "type": "button",
            "sub_type": "url",
            "index": "0",
            "parameters": [{"type": "text", "text": "BR123"}],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "1",
            "parameters": [{"type": "payload", "payload": "HUMANO"}],
        },
    ]


def test_a_quick_reply_payload_is_optional(
    fake_graph: Any, conversation: Any, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _synced(fake_graph, ORDER)
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(
            agent,
            conversation,
            header={"text": "123"},
            parameters=["Maria"],
            buttons=[{"index": 0, "text": "BR123"}],
        )
    assert response.status_code == 201, response.content
    assert [c["type"] for c in _components(fake_graph)] == ["header", "body", "button"]


def test_named_parameters_carry_their_names(
    fake_graph: Any, conversation: Any, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _synced(fake_graph, NAMED)
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(agent, conversation, header={"text": "77"}, parameters=["Rita"])
    assert response.status_code == 201, response.content
    assert _components(fake_graph) == [
        {
            "type": "header",
            "parameters": [{"type": "text", "text": "77", "parameter_name": "pedido"}],
        },
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Rita", "parameter_name": "nome"}],
        },
    ]


@pytest.mark.parametrize(
    ("kind", "header", "expected"),
    [
        (
            "image",
            {"link": "https://cdn.example.com/p.jpg"},
            {"type": "image", "image": {"link": "https://cdn.example.com/p.jpg"}},
        ),
        (
            "video",
            {"type": "video", "link": "https://cdn.example.com/v.mp4"},
            {"type": "video", "video": {"link": "https://cdn.example.com/v.mp4"}},
        ),
        (
            "document",
            {"link": "https://loja.example.com/b/1.pdf", "filename": "boleto.pdf"},
            {
                "type": "document",
                "document": {"link": "https://loja.example.com/b/1.pdf", "filename": "boleto.pdf"},
            },
        ),
        ("document", {"id": "4490709327"}, {"type": "document", "document": {"id": "4490709327"}}),
    ],
)
def test_a_media_header_by_link_or_id(  # noqa: PLR0917 - pytest parameters
    fake_graph: Any,
    conversation: Any,
    agent: Any,
    django_capture_on_commit_callbacks: Any,
    kind: str,
    header: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    _synced(fake_graph, _media(kind))
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(agent, conversation, header=header)
    assert response.status_code == 201, response.content
    assert _components(fake_graph) == [{"type": "header", "parameters": [expected]}]
    assert fake_graph.uploads == []


@pytest.mark.parametrize(
    ("kind", "name", "content", "mime"),
    [
        ("document", "boleto.pdf", PDF, "application/pdf"),
        ("image", "foto.jpg", JPEG, "image/jpeg"),
    ],
)
def test_an_uploaded_header_file_goes_to_graph_media_then_by_id(  # noqa: PLR0917
    fake_graph: Any,
    conversation: Any,
    agent: Any,
    django_capture_on_commit_callbacks: Any,
    kind: str,
    name: str,
    content: bytes,
    mime: str,
) -> None:
    _synced(fake_graph, _media(kind))
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(
            agent, conversation, file=SimpleUploadedFile(name, content, content_type=mime)
        )
    assert response.status_code == 201, response.content
    (upload,) = fake_graph.uploads
    assert content in upload["content"]
    media: dict[str, Any] = {"id": upload["id"]}
    if kind == "document":
        media["filename"] = name
    assert _components(fake_graph) == [
        {"type": "header", "parameters": [{"type": kind, kind: media}]}
    ]
    message = Message.objects.get(pk=response.json()["id"])
    assert message.media_id == upload["id"]  # a retry sends by it, no second upload


def test_a_location_header(
    fake_graph: Any, conversation: Any, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _synced(fake_graph, LOCATION)
    place = {"latitude": -23.5614, "longitude": -46.6559, "name": "Loja", "address": "Av. Paulista"}
    with django_capture_on_commit_callbacks(execute=True):
        response = _send(agent, conversation, header={"type": "location", **place})
    assert response.status_code == 201, response.content
    assert _components(fake_graph) == [
        {"type": "header", "parameters": [{"type": "location", "location": place}]}
    ]


# --- what does not fit the synced template ----------------------------------------------------


def _pdf() -> SimpleUploadedFile:
    return SimpleUploadedFile("boleto.pdf", PDF, content_type="application/pdf")


def _jpeg() -> SimpleUploadedFile:
    return SimpleUploadedFile("foto.jpg", JPEG, content_type="image/jpeg")


ORDER_OK: dict[str, Any] = {
    "header": {"text": "123"},
    "parameters": ["Maria"],
    "buttons": [{"index": 0, "text": "BR123"}],
}

REFUSALS = [
    # (id, synced, request, file, code, text)
    (
        "header text missing",
        ORDER,
        {**ORDER_OK, "header": None},
        None,
        "template_parameters",
        "needs 1 header parameter(s); 0 given",
    ),
    (
        "header on a template without one",
        PLAIN,
        {"header": {"text": "x"}, "parameters": ["Maria"]},
        None,
        "template_parameters",
        "has no header",
    ),
    (
        "a media kind in a text header",
        ORDER,
        {**ORDER_OK, "header": {"type": "image", "link": "https://cdn.example.com/p.jpg"}},
        None,
        "template_parameters",
        "takes text in its header",
    ),
    (
        "body parameter missing",
        ORDER,
        {**ORDER_OK, "parameters": []},
        None,
        "template_parameters",
        "needs 1 body parameter(s); 0 given",
    ),
    (
        "body parameter too many",
        ORDER,
        {**ORDER_OK, "parameters": ["Maria", "extra"]},
        None,
        "template_parameters",
        "needs 1 body parameter(s); 2 given",
    ),
    (
        "empty body parameter",
        ORDER,
        {**ORDER_OK, "parameters": [" "]},
        None,
        "invalid",
        "parameters.0: This field may not be blank.",
    ),
    (
        "media header missing",
        _media("document"),
        {},
        None,
        "template_header_media",
        "needs a document in its header: give its link or upload the file",
    ),
    (
        "media kind does not match (link)",
        _media("document"),
        {"header": {"type": "image", "link": "https://cdn.example.com/p.jpg"}},
        None,
        "template_header_media",
        "has a document in its header; an image was given",
    ),
    (
        "media kind does not match (file)",
        _media("document"),
        {},
        _jpeg,
        "template_header_media",
        "has a document in its header; an image was given",
    ),
    (
        "a file for a template without a media header",
        PLAIN,
        {"parameters": ["Maria"]},
        _pdf,
        "template_header_media",
        "has no image, video or document header",
    ),
    (
        "a link that is not a web address",
        _media("document"),
        {"header": {"link": "ftp://loja.example.com/b.pdf"}},
        None,
        "template_header_media",
        "must be a web address",
    ),
    (
        "location without coordinates",
        LOCATION,
        {"header": {"type": "location", "name": "Loja"}},
        None,
        "template_parameters",
        "needs a location in its header",
    ),
    (
        "URL button without its link ending",
        ORDER,
        {**ORDER_OK, "buttons": []},
        None,
        "template_button",
        "Button 0 (“Rastrear”) of “t” needs the end of its link",
    ),
    (
        "a button the template does not have",
        ORDER,
        {**ORDER_OK, "buttons": [*ORDER_OK["buttons"], {"index": 7, "text": "x"}]},
        None,
        "template_button",
        "has no button 7",
    ),
    (
        "a button of another kind",
        ORDER,
        {**ORDER_OK, "buttons": [{"index": 0, "type": "quick_reply", "payload": "x"}]},
        None,
        "template_button",
        "Button 0 (“Rastrear”) is a url button, not quick_reply",
    ),
    (
        "a parameter for a phone button",
        ORDER,
        {**ORDER_OK, "buttons": [*ORDER_OK["buttons"], {"index": 2, "text": "x"}]},
        None,
        "template_button",
        "Button 2 (“Ligar”) takes no parameter",
    ),
    (
        "a parameter for a static URL button",
        ORDER,
        {**ORDER_OK, "buttons": [*ORDER_OK["buttons"], {"index": 3, "text": "x"}]},
        None,
        "template_button",
        "Button 3 (“Site”) takes no parameter",
    ),
    (
        "the same button twice",
        ORDER,
        {**ORDER_OK, "buttons": [*ORDER_OK["buttons"], {"index": 0, "text": "y"}]},
        None,
        "template_button",
        "is given twice",
    ),
]


@pytest.mark.parametrize(
    ("synced", "request_template", "file", "code", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSALS],
)
def test_what_does_not_fit_the_synced_template_is_a_400_naming_it(  # noqa: PLR0917
    fake_graph: Any,
    conversation: Any,
    agent: Any,
    synced: list[dict[str, Any]],
    request_template: dict[str, Any],
    file: Any,
    code: str,
    text: str,
) -> None:
    _synced(fake_graph, synced)
    template = {k: v for k, v in request_template.items() if v is not None}
    response = _send(agent, conversation, file=file() if file else None, **template)
    body = assert_error_shape(response, 400, code)
    assert text in body["detail"]
    assert not conversation.messages.exists()
    assert fake_graph.sends == []
    assert fake_graph.uploads == []


def test_api_validates_the_shape_of_header_and_buttons(conversation: Any, agent: Any) -> None:
    response = _send(
        agent,
        conversation,
        header={"type": "sticker", "link": "not a url"},
        buttons=[{"index": -1}],
    )
    body = assert_error_shape(response, 400)
    errors = body["errors"]["template"]
    assert any(e.startswith("header.type:") for e in errors)
    assert any(e.startswith("header.link:") for e in errors)
    assert any(e.startswith("buttons.0.index:") for e in errors)


def test_a_failed_template_with_a_file_is_retried_with_its_file(
    fake_graph: Any,
    conversation: Any,
    agent: Any,
    client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _synced(fake_graph, _media("document"))
    fake_graph.fail_next(131026)
    with django_capture_on_commit_callbacks(execute=True):
        failed = _send(agent, conversation, file=_pdf()).json()
    assert Message.objects.get(pk=failed["id"]).status == "failed"
    client.force_login(agent)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/c/{conversation.pk}/m/{failed['id']}/retry/", HTTP_HX_REQUEST="true")
    assert len(fake_graph.uploads) == 1  # sent again by the media id, not uploaded twice
    assert fake_graph.message_sends[-1]["template"] == fake_graph.message_sends[0]["template"]
    assert conversation.messages.filter(status="sent").count() == 1
