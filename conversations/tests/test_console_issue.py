"""The console issue (phone layout, system lines, shareable URLs, transfers, search, reads,
notifications, attachments, previews): what the server answers. The browser's side is in
``test_e2e_phone.py``."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from accounts.tests.factories import UserFactory
from common.exceptions import ServiceError
from conversations import services
from conversations.models import (
    ConversationEvent,
    ConversationStatus,
    Direction,
    EventKind,
    Message,
    MessageType,
)
from conversations.tests.factories import ConversationFactory, MessageFactory
from conversations.uploads import upload_validate

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


# --- 1. a back link to the list ------------------------------------------------------------------


def test_the_conversation_has_a_back_link_to_the_list_it_came_from(agent_client, support) -> None:
    conversation = ConversationFactory(department=support)
    html = agent_client.get(f"/c/{conversation.pk}/?tab=all&q=ana", **HTMX).content.decode()
    assert 'class="back-link" href="/?tab=all&amp;q=ana"' in html


# --- 2. system lines in the timeline -------------------------------------------------------------


def test_the_timeline_shows_what_happened_as_system_lines(client, agent, support) -> None:
    carla = UserFactory(departments=[support], name="Carla Costa")
    conversation = ConversationFactory(department=support)
    MessageFactory(conversation=conversation, body="Oi")
    conversation = services.conversation_take_over(conversation=conversation, actor=agent)
    services.conversation_mark_read(conversation=conversation, actor=agent)
    services.conversation_transfer(
        conversation=conversation, actor=agent, to_user=carla, note="Cliente quer segunda via"
    )
    ConversationEvent.objects.create(
        conversation=conversation,
        kind=EventKind.CSAT_RECEIVED,
        after={"score": 4, "comment": "Rápido"},
    )
    client.force_login(carla)

    html = client.get(f"/c/{conversation.pk}/messages/", **HTMX).content.decode()

    assert "Ana Agente took over the conversation" in html
    assert "Ana Agente transferred the conversation to Carla Costa" in html
    assert "Note for the next agent:</strong> Cliente quer segunda via" in html
    assert "The customer rated the service 4/5" in html and "Rápido" in html
    assert 'data-event-kind="read"' not in html and 'data-event-kind="first_response"' not in html
    with translation.override("pt-br"):
        client.cookies["django_language"] = "pt-br"
        html = client.get(f"/c/{conversation.pk}/messages/", **HTMX).content.decode()
    assert "Observação para o próximo agente" in html
    assert "Ana Agente transferiu a conversa para Carla Costa" in html


def test_a_transfer_to_a_department_names_it(agent_client, agent, support, sales) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    services.conversation_transfer(conversation=conversation, actor=agent, to_department=sales)
    colleague = UserFactory(departments=[sales])
    agent_client.force_login(colleague)
    html = agent_client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    assert "Ana Agente transferred the conversation to Vendas" in html


def test_closing_and_reopening_are_system_lines(agent_client, agent, support) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    conversation = services.conversation_close(conversation=conversation, actor=agent)
    services.conversation_reopen(conversation=conversation, actor=agent)
    html = agent_client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    assert "Ana Agente closed the conversation" in html
    assert "Ana Agente reopened the conversation" in html


# --- 3. the first unread message is marked ---------------------------------------------------


def test_the_first_unread_message_is_marked(agent_client, support) -> None:
    conversation = ConversationFactory(department=support)
    MessageFactory(conversation=conversation, body="lida")
    Message.objects.update(read_at="2026-01-01T00:00:00Z")
    unread = MessageFactory(conversation=conversation, body="nova")
    html = agent_client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    marker = html.index('id="first-unread"')
    assert html.index("lida") < marker < html.index(f'id="message-{unread.pk}"')


# --- 4. the address bar gets the page's URL, which honours it ---------------------------------


def test_search_and_filters_push_the_page_url(agent_client, support) -> None:
    response = agent_client.get("/inbox/", {"tab": "all", "q": "ana", "status": "open"}, **HTMX)
    assert response["HX-Push-Url"] == "/?tab=all&q=ana&status=open"
    # the socket's refreshes leave the address bar alone
    refresh = agent_client.get("/inbox/", {"tab": "all"}, HTTP_X_INBOX_REFRESH="1", **HTMX)
    assert "HX-Push-Url" not in refresh


def test_the_page_url_renders_the_full_page_with_its_query(agent_client, support) -> None:
    ConversationFactory(department=support, customer__name="Ana Cliente")
    ConversationFactory(department=support, customer__name="Outro")
    html = agent_client.get("/", {"tab": "all", "q": "Ana"}).content.decode()
    assert "<html" in html and 'id="conversation-pane"' in html
    assert "Ana Cliente" in html and "Outro" not in html
    assert 'value="Ana"' in html
    # tabs and pager push the page's URL, never the fragment's
    assert 'hx-push-url="/inbox/' not in html and 'hx-push-url="true"' not in html


def test_an_opened_conversation_has_a_shareable_url(agent_client, support) -> None:
    conversation = ConversationFactory(department=support, customer__name="Paula")
    html = agent_client.get("/").content.decode()
    assert f'hx-push-url="/c/{conversation.pk}/?' in html
    page = agent_client.get(f"/c/{conversation.pk}/?tab=inbox").content.decode()
    assert "<html" in html and 'id="inbox"' in page and 'id="message-list"' in page


# --- 5. after a transfer away ------------------------------------------------------------------


def test_a_conversation_out_of_reach_is_a_friendly_fragment_for_htmx(
    agent_client, agent, support, sales
) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    response = agent_client.post(
        f"/c/{conversation.pk}/transfer/", {"to_department": sales.pk}, **HTMX
    )
    assert "inbox:refresh" in response["HX-Trigger"]  # the list refreshes at once

    for url in ("", "messages/", "header/"):
        response = agent_client.get(f"/c/{conversation.pk}/{url}", **HTMX)
        assert response.status_code == 200
        html = response.content.decode()
        assert "This conversation is no longer available to you." in html
        assert response["HX-Retarget"] == "#conversation-pane"
        assert "inbox:refresh" in response["HX-Trigger"]
    # a plain request keeps the security rule: a 404, whether it exists or not
    assert agent_client.get(f"/c/{conversation.pk}/").status_code == 404
    assert agent_client.get("/c/999999/").status_code == 404
    assert agent_client.post(f"/c/{conversation.pk}/take-over/").status_code == 404


def test_a_transfer_to_a_colleague_refreshes_the_list(agent_client, agent, support) -> None:
    carla = UserFactory(departments=[support])
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    response = agent_client.post(f"/c/{conversation.pk}/transfer/", {"to_user": carla.pk}, **HTMX)
    assert "inbox:refresh" in response["HX-Trigger"]


# --- 6. accents and the "All" tab -----------------------------------------------------------


@pytest.mark.parametrize("q", ["Joao", "joão", "JOAO", "joao silva"])
def test_search_ignores_accents_and_case(agent_client, support, q) -> None:
    ConversationFactory(department=support, customer__name="João Silva")
    ConversationFactory(department=support, customer__name="Maria")
    html = agent_client.get("/inbox/", {"tab": "all", "q": q}, **HTMX).content.decode()
    assert "João Silva" in html and "Maria" not in html


def test_search_of_message_text_ignores_accents(agent_client, support) -> None:
    conversation = ConversationFactory(department=support, customer__name="Paula")
    MessageFactory(conversation=conversation, body="Preciso da segunda via, não chegou")
    html = agent_client.get("/inbox/", {"tab": "all", "q": "NAO CHEGOU"}, **HTMX).content.decode()
    assert "Paula" in html


def test_the_all_tab_says_it_shows_open_conversations(agent_client, support) -> None:
    ConversationFactory(department=support, status=ConversationStatus.CLOSED, customer__name="Ida")
    html = agent_client.get("/?tab=all").content.decode()
    assert "All open" in html and "Ida" not in html
    with translation.override("pt-br"):
        agent_client.cookies["django_language"] = "pt-br"
        html = agent_client.get("/?tab=all").content.decode()
    assert "Todas abertas" in html


# --- 7. supervisors looking on ---------------------------------------------------------------


def test_a_supervisor_viewing_leaves_the_agents_unread_count(
    client, supervisor, agent, support
) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN, unread_count=3
    )
    MessageFactory(conversation=conversation)
    client.force_login(supervisor)
    html = client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    assert "data-marks-read" not in html
    assert client.post(f"/c/{conversation.pk}/read/").status_code == 204
    conversation.refresh_from_db()
    assert conversation.unread_count == 3
    assert Message.objects.filter(conversation=conversation, read_at__isnull=True).exists()

    client.force_login(agent)
    assert "data-marks-read" in client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    client.post(f"/c/{conversation.pk}/read/")
    conversation.refresh_from_db()
    assert conversation.unread_count == 0


def test_a_supervisor_confirms_before_taking_over_an_agents_live_conversation(
    client, supervisor, agent, support
) -> None:
    live = ConversationFactory(department=support, assigned_to=agent, status="open")
    waiting = ConversationFactory(department=support)
    client.force_login(supervisor)
    html = client.get(f"/c/{live.pk}/", **HTMX).content.decode()
    assert 'hx-confirm="Ana Agente is handling this conversation. Take it over anyway?"' in html
    assert "Take it over anyway" not in client.get(f"/c/{waiting.pk}/", **HTMX).content.decode()
    with translation.override("pt-br"):
        client.cookies["django_language"] = "pt-br"
        html = client.get(f"/c/{live.pk}/", **HTMX).content.decode()
    assert "Ana Agente está atendendo esta conversa. Assumir mesmo assim?" in html


# --- 8. notification settings ----------------------------------------------------------------


def test_notification_settings_are_kept_on_the_user(agent_client, agent, support) -> None:
    ConversationFactory(department=support, unread_count=2)
    html = agent_client.get("/").content.decode()
    assert 'id="notify-settings"' in html and 'data-unread="1"' in html
    response = agent_client.post("/notifications/", {"sound": "on"}, **HTMX)
    assert response.status_code == 200 and "Saved." in response.content.decode()
    agent.refresh_from_db()
    assert agent.notify_sound is True and agent.notify_desktop is False
    agent_client.post("/notifications/", {"desktop": "on"}, **HTMX)
    agent.refresh_from_db()
    assert agent.notify_sound is False and agent.notify_desktop is True


# --- 9. composer and attachments -------------------------------------------------------------


def test_the_reply_box_is_focused_after_taking_over(agent_client, support) -> None:
    conversation = ConversationFactory(department=support)
    html = agent_client.post(f"/c/{conversation.pk}/take-over/", **HTMX).content.decode()
    assert "autofocus" in html[html.index('id="composer-body"') :].split(">", 1)[0]


@pytest.mark.parametrize(
    ("name", "mime", "size", "kind"),
    [
        ("foto.jpg", "image/jpeg", 5 * 1024 * 1024, MessageType.IMAGE),
        ("foto.png", "image/png", 1000, MessageType.IMAGE),
        ("audio.ogg", "audio/ogg", 16 * 1024 * 1024, MessageType.AUDIO),
        ("audio.mp3", "audio/mpeg", 1000, MessageType.AUDIO),
        ("video.mp4", "video/mp4", 1000, MessageType.VIDEO),
        ("boleto.pdf", "application/pdf", 100 * 1024 * 1024, MessageType.DOCUMENT),
        ("planilha.xlsx", "application/octet-stream", 1000, MessageType.DOCUMENT),
        ("notas.txt", "text/plain", 1000, MessageType.DOCUMENT),
    ],
)
def test_whatsapp_types_and_sizes_are_accepted(name, mime, size, kind) -> None:
    assert upload_validate(filename=name, content_type=mime, size=size).type == kind


@pytest.mark.parametrize(
    ("name", "mime", "size", "error"),
    [
        ("virus.exe", "application/pdf", 1000, "does not accept this kind of file"),
        ("virus.exe", "application/x-msdownload", 1000, "does not accept this kind of file"),
        ("anim.gif", "image/gif", 1000, "does not accept this kind of file"),
        ("foto.jpg", "image/jpeg", 5 * 1024 * 1024 + 1, "up to 5.0\xa0MB"),
        ("video.mp4", "video/mp4", 16 * 1024 * 1024 + 1, "up to 16.0\xa0MB"),
    ],
)
def test_files_whatsapp_refuses_are_refused(name, mime, size, error) -> None:
    with pytest.raises(ServiceError, match=error):
        upload_validate(filename=name, content_type=mime, size=size)


def test_the_console_refuses_an_exe_with_a_clear_error(client, agent, support) -> None:
    client.force_login(agent)
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    upload = SimpleUploadedFile("setup.exe", b"MZ\x90\x00", content_type="application/pdf")
    html = client.post(
        f"/c/{conversation.pk}/send/", {"body": "", "attachment": upload}, **HTMX
    ).content.decode()
    assert "WhatsApp does not accept this kind of file (setup.exe)" in html
    assert not Message.objects.filter(conversation=conversation, direction=Direction.OUT).exists()
    assert 'data-bad-type="' in html and "data-remove-attachment" in html


def test_the_api_refuses_an_exe(client, agent, support) -> None:
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(agent)
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    upload = SimpleUploadedFile("setup.exe", b"MZ\x90\x00", content_type="application/pdf")
    response = api.post(
        "/api/v1/messages", {"conversation": conversation.pk, "file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert "does not accept this kind of file" in str(response.json())
    assert not Message.objects.filter(conversation=conversation).exists()


# --- 10. the list preview of media ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "en", "pt"),
    [
        (MessageType.DOCUMENT, "📎 Document", "📎 Documento"),
        (MessageType.IMAGE, "📷 Photo", "📷 Foto"),
        (MessageType.AUDIO, "🎤 Audio", "🎤 Áudio"),
        (MessageType.VIDEO, "🎥 Video", "🎥 Vídeo"),
        (MessageType.LOCATION, "📍 Location", "📍 Localização"),
    ],
)
def test_the_list_preview_names_the_media_type(agent_client, support, kind, en, pt) -> None:
    conversation = ConversationFactory(department=support)
    MessageFactory(conversation=conversation, type=kind, body="")
    html = agent_client.get("/").content.decode()
    assert en in html and f"[{kind}]" not in html
    agent_client.cookies["django_language"] = "pt-br"
    assert pt in agent_client.get("/").content.decode()
