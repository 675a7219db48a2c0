"""The console (contract §7): what an agent sees and can do in the browser, over plain HTTP."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from conversations.models import (
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageReaction,
    MessageStatus,
    MessageType,
    SenderKind,
)
from conversations.tests.factories import (
    ConversationFactory,
    CustomerFactory,
    MessageFactory,
    search_limit_queries,
)
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.LANGUAGE_CODE = "en"  # assertions read the English texts


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


def test_anonymous_visitor_is_sent_to_the_login_form(client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_inbox_lists_the_queue_and_my_conversations_most_recent_first(
    agent_client, agent, support, sales
) -> None:
    now = timezone.now()
    older = ConversationFactory(
        department=support, customer__name="Older Queue", last_message_at=now - timedelta(hours=2)
    )
    mine = ConversationFactory(
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        customer__name="Mine Open",
        last_message_at=now - timedelta(minutes=5),
    )
    ConversationFactory(department=sales, customer__name="Sales Secret")
    ConversationFactory(
        department=support, status=ConversationStatus.CLOSED, customer__name="Closed One"
    )

    html = agent_client.get("/").content.decode()

    assert "Sales Secret" not in html
    assert "Closed One" not in html
    assert html.index("Mine Open") < html.index("Older Queue")
    assert f'data-conversation-id="{mine.pk}"' in html
    assert f'data-conversation-id="{older.pk}"' in html


def test_tabs_show_counts_and_filter(agent_client, agent, support) -> None:
    ConversationFactory(department=support, customer__name="Waiting")
    ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN, customer__name="Mn"
    )
    ConversationFactory(department=support, status=ConversationStatus.BOT, customer__name="Botty")
    ConversationFactory(department=support, status=ConversationStatus.CLOSED, customer__name="Done")

    html = agent_client.get("/inbox/?tab=queue", **HTMX).content.decode()
    assert "Waiting" in html and "Mn" not in html.split('id="conversation-list"')[1]
    assert '<span class="count" data-count="queue">1</span>' in html
    assert '<span class="count" data-count="mine">1</span>' in html
    assert '<span class="count" data-count="bot">1</span>' in html
    assert '<span class="count" data-count="closed">1</span>' in html
    assert '<span class="count" data-count="all">3</span>' in html

    closed = agent_client.get("/inbox/?tab=closed", **HTMX).content.decode()
    assert "Done" in closed and "Waiting" not in closed.split('id="conversation-list"')[1]


def test_search_by_name_phone_and_message_text(agent_client, support) -> None:
    by_name = ConversationFactory(department=support, customer__name="Joana Prado")
    by_phone = ConversationFactory(
        department=support, customer__name="X", customer__phone="+5511912340000"
    )
    by_text = ConversationFactory(department=support, customer__name="Y")
    MessageFactory(conversation=by_text, body="meu boleto venceu")

    def found(q: str) -> set[int]:
        html = agent_client.get("/inbox/", {"tab": "all", "q": q}, **HTMX).content.decode()
        return {
            c.pk for c in (by_name, by_phone, by_text) if f'data-conversation-id="{c.pk}"' in html
        }

    assert found("joana") == {by_name.pk}
    assert found("91234") == {by_phone.pk}
    assert found("boleto") == {by_text.pk}


def test_several_numbers_each_row_says_which_and_the_inbox_filters_by_it(
    agent_client, support
) -> None:
    # given a desk with two business numbers
    shop = WhatsAppAccountFactory(name="Loja Centro", display_phone_number="+55 11 4000-1000")
    billing = WhatsAppAccountFactory(name="Cobranças", display_phone_number="+55 11 4000-2000")
    at_shop = ConversationFactory(department=support, whatsapp_account=shop)
    at_billing = ConversationFactory(department=support, whatsapp_account=billing)

    # the list shows the number of each row, and the filters offer the numbers
    html = agent_client.get("/").content.decode()
    assert 'id="f-number"' in html
    row_shop = html.split(f'data-conversation-id="{at_shop.pk}"')[1].split("</a>")[0]
    row_billing = html.split(f'data-conversation-id="{at_billing.pk}"')[1].split("</a>")[0]
    assert "Loja Centro" in row_shop and "Cobranças" not in row_shop
    assert "Cobranças" in row_billing

    # filtering keeps only that number's conversations, and the URL keeps the filter
    response = agent_client.get("/inbox/", {"number": billing.pk}, **HTMX)
    listed = response.content.decode()
    assert f'data-conversation-id="{at_billing.pk}"' in listed
    assert f'data-conversation-id="{at_shop.pk}"' not in listed
    assert response["HX-Push-Url"] == f"/?tab=inbox&number={billing.pk}"
    assert f'<option value="{billing.pk}" selected>' in listed

    # the conversation's header says which number it came through
    header = agent_client.get(f"/c/{at_billing.pk}/header/", **HTMX).content.decode()
    assert "via Cobranças" in header and "+55 11 4000-2000" in header


def test_one_number_no_number_clutter(agent_client, support) -> None:
    only = WhatsAppAccountFactory(name="Único")
    WhatsAppAccountFactory(name="Desligado", is_active=False)
    conversation = ConversationFactory(department=support, whatsapp_account=only)
    html = agent_client.get(f"/c/{conversation.pk}/").content.decode()
    assert 'id="f-number"' not in html
    assert "chip-number" not in html and "Único" not in html


def test_empty_inbox_says_what_to_do(agent_client) -> None:
    html = agent_client.get("/").content.decode()
    assert "The queue is empty." in html


def test_unread_badge_and_pagination(agent_client, support) -> None:
    for n in range(30):
        ConversationFactory(
            department=support,
            unread_count=n % 3,
            last_message_at=timezone.now() - timedelta(minutes=n),
            customer__name=f"Cliente {n:02d}",
        )
    first = agent_client.get("/inbox/?tab=queue", **HTMX).content.decode()
    assert "Cliente 00" in first and "Cliente 29" not in first
    assert 'class="badge badge-unread"' in first
    assert "tab=queue&amp;page=2" in first or "tab=queue&page=2" in first
    second = agent_client.get("/inbox/?tab=queue&page=2", **HTMX).content.decode()
    assert "Cliente 29" in second and "Cliente 00" not in second


def test_inbox_query_count_does_not_grow_with_rows(agent_client, support, sales) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert agent_client.get("/inbox/?tab=all", **HTMX).status_code == 200
        return len(ctx.captured_queries)

    ConversationFactory.create_batch(2, department=support)
    few = count()
    for conversation in ConversationFactory.create_batch(20, department=support):
        MessageFactory(conversation=conversation)
    assert count() == few
    # user (session cached), tab counts, page of rows, their tags and their contacts', departments,
    # agents, numbers and tags for the filters
    assert few <= 10


def test_conversation_of_another_department_is_404_everywhere(agent_client, sales) -> None:
    foreign = ConversationFactory(department=sales)
    for url in (f"/c/{foreign.pk}/", f"/c/{foreign.pk}/messages/", f"/c/{foreign.pk}/header/"):
        assert agent_client.get(url).status_code == 404
    for action in ("take-over", "close", "reopen", "transfer", "send", "read"):
        assert agent_client.post(f"/c/{foreign.pk}/{action}/", {"body": "x"}).status_code == 404
    foreign.refresh_from_db()
    assert foreign.assigned_to_id is None
    assert not foreign.messages.exists()


def test_inbound_script_is_shown_as_text(agent_client, support) -> None:
    conversation = ConversationFactory(department=support)
    MessageFactory(conversation=conversation, body="<script>alert('x')</script>")
    html = agent_client.get(f"/c/{conversation.pk}/").content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_every_message_type_renders(agent_client, support, agent) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    target = MessageFactory(conversation=conversation, body="Quero pagar")
    payloads = {
        MessageType.LOCATION: {"location": {"latitude": -23.5, "longitude": -46.6, "name": "Loja"}},
        MessageType.CONTACTS: {
            "contacts": [{"name": {"formatted_name": "Maria"}, "phones": [{"phone": "+5511"}]}]
        },
    }
    for kind in MessageType.values:
        if kind == MessageType.REACTION:
            continue
        MessageFactory(
            conversation=conversation,
            type=kind,
            body=f"body-{kind}",
            raw_payload=payloads.get(kind),
            media_filename="nota.pdf" if kind == MessageType.DOCUMENT else "",
        )
    MessageReaction.objects.create(message=target, sender=SenderKind.CUSTOMER, emoji="👍")
    MessageFactory(
        conversation=conversation,
        direction=Direction.OUT,
        sender=SenderKind.AGENT,
        sender_user=agent,
        status=MessageStatus.FAILED,
        error="Message undeliverable",
        error_code=131026,
        error_data={"code": 131026, "error_data": {"details": "Recipient cannot be reached"}},
        body="falhou",
        wa_message_id=None,
    )
    MessageFactory(
        conversation=conversation,
        direction=Direction.OUT,
        sender=SenderKind.BOT,
        status=MessageStatus.READ,
        body="Olá, sou o bot",
        reply_to=target,
        wa_message_id=None,
    )

    html = agent_client.get(f"/c/{conversation.pk}/").content.decode()

    assert "Loja" in html and "openstreetmap.org/?mlat=-23.5" in html
    assert "Maria" in html
    assert "nota.pdf" in html
    assert "Unsupported message type" in html
    assert 'class="msg-reactions"' in html and "👍" in html
    assert "Message undeliverable" in html and "131026" in html
    assert "Recipient cannot be reached" in html
    assert "body-system" in html and "msg-type-system" in html
    assert "tick-read" in html
    assert agent.name in html
    assert "Bot" in html
    assert 'class="msg-quote"' in html
    assert 'class="day-separator"' in html
    assert "24-hour window" in html


def test_take_over_reply_transfer_close_reopen(agent_client, agent, support) -> None:
    colleague = UserFactory(departments=[support], name="Carla Colega")
    conversation = ConversationFactory(department=support)
    url = f"/c/{conversation.pk}/"

    html = agent_client.post(url + "take-over/", **HTMX).content.decode()
    conversation.refresh_from_db()
    assert conversation.assigned_to_id == agent.pk
    assert 'id="composer-body"' in html

    agent_client.post(url + "send/", {"body": "Bom dia!"}, **HTMX)
    sent = Message.objects.get(conversation=conversation, direction=Direction.OUT)
    assert sent.body == "Bom dia!"
    assert sent.sender_user_id == agent.pk

    agent_client.post(url + "close/", **HTMX)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    agent_client.post(url + "reopen/", **HTMX)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN

    agent_client.post(url + "transfer/", {"to_user": colleague.pk, "note": "cliente VIP"}, **HTMX)
    conversation.refresh_from_db()
    assert conversation.assigned_to_id == colleague.pk
    assert conversation.transfers.get().note == "cliente VIP"


def test_service_errors_are_shown_clearly(agent_client, support) -> None:
    colleague = UserFactory(departments=[support])
    conversation = ConversationFactory(
        department=support, assigned_to=colleague, status=ConversationStatus.OPEN
    )
    html = agent_client.post(f"/c/{conversation.pk}/close/", **HTMX).content.decode()
    assert "You cannot close this conversation." in html
    html = agent_client.post(f"/c/{conversation.pk}/send/", {"body": "oi"}, **HTMX).content
    assert "Only the agent assigned to this conversation can reply." in html.decode()
    html = agent_client.post(f"/c/{conversation.pk}/transfer/", {}, **HTMX).content.decode()
    assert "Choose an agent or a department to transfer to." in html
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN


def test_transfer_to_another_department_leaves_the_agents_view(agent_client, agent, support, sales):
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    html = agent_client.post(
        f"/c/{conversation.pk}/transfer/", {"to_department": sales.pk}, **HTMX
    ).content.decode()
    assert "The conversation was handed over." in html
    assert agent_client.get(f"/c/{conversation.pk}/").status_code == 404


def test_closed_window_replaces_the_composer(agent_client, agent, support) -> None:
    conversation = ConversationFactory(
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        last_inbound_at=timezone.now() - timedelta(hours=30),
    )
    html = agent_client.get(f"/c/{conversation.pk}/").content.decode()
    assert "The 24-hour window has closed" in html
    assert 'id="composer-body"' not in html


def test_forms_require_csrf(agent, support) -> None:
    conversation = ConversationFactory(department=support)
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    assert client.post(f"/c/{conversation.pk}/take-over/").status_code == 403
    page = client.get(f"/c/{conversation.pk}/")
    token = page.cookies["csrftoken"].value
    response = client.post(f"/c/{conversation.pk}/take-over/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert Conversation.objects.get(pk=conversation.pk).assigned_to_id == agent.pk


def test_mark_read_clears_the_unread_badge(agent_client, support) -> None:
    conversation = ConversationFactory(department=support, unread_count=2)
    MessageFactory(conversation=conversation)
    assert agent_client.post(f"/c/{conversation.pk}/read/").status_code == 204
    conversation.refresh_from_db()
    assert conversation.unread_count == 0


def test_customer_panel_lists_past_conversations(agent_client, support) -> None:
    customer = CustomerFactory(name="Paula", notes="prefere e-mail")
    past = ConversationFactory(
        customer=customer, department=support, status=ConversationStatus.CLOSED
    )
    current = ConversationFactory(customer=customer, department=support)
    html = agent_client.get(f"/c/{current.pk}/").content.decode()
    assert f"#{past.pk}" in html
    assert "prefere e-mail" in html


def test_board_shows_conversations_no_department_has_yet(client, supervisor, support) -> None:
    ConversationFactory(department=None, status=ConversationStatus.BOT)
    ConversationFactory(department=None, status=ConversationStatus.BOT)
    ConversationFactory(department=None, status=ConversationStatus.PENDING)
    ConversationFactory(department=support, status=ConversationStatus.BOT)
    client.force_login(supervisor)

    html = client.get("/board/").content.decode()

    row = html[html.index('id="board-no-department"') :].split("</tr>", 1)[0]
    assert "No department yet" in row
    assert "<td><strong>1</strong></td><td>2</td><td>0</td>" in row


def test_board_is_for_supervisors(agent_client, client, supervisor, agent, support) -> None:
    assert agent_client.get("/board/").status_code == 403
    ConversationFactory(department=support)
    client.force_login(supervisor)
    html = client.get("/board/").content.decode()
    assert "Suporte" in html
    assert agent.name in html


def test_template_picker_when_the_window_has_closed(
    client, agent, support, fake_graph, django_capture_on_commit_callbacks
) -> None:
    from whatsapp.models import MessageTemplate

    client.force_login(agent)
    conversation = ConversationFactory(
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        whatsapp_account=fake_graph.account,
        last_inbound_at=timezone.now() - timedelta(days=2),
    )
    template = MessageTemplate.objects.create(
        account=fake_graph.account,
        name="retomar_atendimento",
        language="pt_BR",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Olá {{1}}, podemos continuar seu atendimento?"}],
    )
    MessageTemplate.objects.create(
        account=fake_graph.account, name="rascunho", language="pt_BR", status="PENDING"
    )

    html = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "retomar_atendimento" in html
    assert "rascunho" not in html

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/c/{conversation.pk}/template/",
            {"template": template.pk, "parameters": "Joana"},
            **HTMX,
        )
    sent = Message.objects.get(conversation=conversation, type=MessageType.TEMPLATE)
    assert sent.body == "Olá Joana, podemos continuar seu atendimento?"
    graph = fake_graph.message_sends[-1]
    assert graph["type"] == "template"
    assert graph["template"]["name"] == "retomar_atendimento"
    assert graph["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Joana"}]


def test_a_failed_message_can_be_sent_again(
    client, agent, support, fake_graph, django_capture_on_commit_callbacks
) -> None:
    client.force_login(agent)
    conversation = ConversationFactory(
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        whatsapp_account=fake_graph.account,
    )
    failed = MessageFactory(
        conversation=conversation,
        direction=Direction.OUT,
        sender=SenderKind.AGENT,
        sender_user=agent,
        status=MessageStatus.FAILED,
        error="Something went wrong",
        body="Seu pedido saiu para entrega",
        wa_message_id=None,
    )
    html = client.get(f"/c/{conversation.pk}/").content.decode()
    assert f"/c/{conversation.pk}/m/{failed.pk}/retry/" in html

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/c/{conversation.pk}/m/{failed.pk}/retry/", **HTMX)

    again = Message.objects.filter(conversation=conversation).exclude(pk=failed.pk).get()
    assert again.body == "Seu pedido saiu para entrega"
    assert fake_graph.message_sends[-1]["text"]["body"] == "Seu pedido saiu para entrega"
    # nobody else's failed message can be retried through this conversation
    other = MessageFactory(direction=Direction.OUT, status=MessageStatus.FAILED, wa_message_id=None)
    assert client.post(f"/c/{conversation.pk}/m/{other.pk}/retry/").status_code == 404


def test_internal_notes_are_for_the_team_only(
    client, supervisor, agent, fake_graph, django_capture_on_commit_callbacks
) -> None:
    from conversations.models import ConversationNote

    conversation = ConversationFactory(
        department=agent.departments.get(),
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        whatsapp_account=fake_graph.account,
    )
    client.force_login(supervisor)  # anyone who may see it can leave a note

    with django_capture_on_commit_callbacks(execute=True):
        html = client.post(
            f"/c/{conversation.pk}/note/", {"body": "Cliente <b>VIP</b>, cuidado"}, **HTMX
        ).content.decode()

    note = ConversationNote.objects.get(conversation=conversation)
    assert note.author_id == supervisor.pk
    assert "Internal note" in html and "Cliente &lt;b&gt;VIP&lt;/b&gt;, cuidado" in html
    assert not conversation.messages.exists()
    assert fake_graph.message_sends == []  # never sent to the customer
    empty = client.post(f"/c/{conversation.pk}/note/", {"body": "  "}, **HTMX).content.decode()
    assert "A note needs some text." in empty


def test_notes_on_invisible_conversations_are_refused(agent_client, sales) -> None:
    foreign = ConversationFactory(department=sales)
    assert agent_client.post(f"/c/{foreign.pk}/note/", {"body": "x"}).status_code == 404
    assert not foreign.notes.exists()


@pytest.fixture
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.mark.usefixtures("_media_in_tmp")
def test_agent_sends_an_attachment(
    client, agent, fake_graph, django_capture_on_commit_callbacks
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(agent)
    conversation = ConversationFactory(
        department=agent.departments.get(),
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        whatsapp_account=fake_graph.account,
    )
    upload = SimpleUploadedFile("boleto.pdf", b"%PDF-1.4 fake", content_type="application/pdf")

    with django_capture_on_commit_callbacks(execute=True):
        html = client.post(
            f"/c/{conversation.pk}/send/", {"body": "Segue o boleto", "attachment": upload}, **HTMX
        ).content.decode()

    sent = Message.objects.get(conversation=conversation)
    assert sent.type == MessageType.DOCUMENT
    assert sent.media_filename == "boleto.pdf"
    assert "boleto.pdf" in html
    assert fake_graph.uploads and b"%PDF-1.4 fake" in fake_graph.uploads[0]["content"]
    assert fake_graph.message_sends[-1]["document"]["caption"] == "Segue o boleto"


def test_bot_context_and_ai_draft_are_offered_in_the_conversation(
    agent_client, agent, support, settings
) -> None:
    from botflows.models import BotSession

    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    BotSession.objects.create(
        conversation=conversation,
        collected={"pedido": "4821"},
        summary="Cliente quer saber do pedido 4821 atrasado.",
    )
    url = f"/c/{conversation.pk}/"

    settings.OPENAI_API_KEY = ""
    page = agent_client.get(url).content.decode()
    assert f"/bot/c/{conversation.pk}/context/" in page  # loaded into the customer panel
    assert "Suggest a reply (AI)" not in page  # no AI configured: no draft button

    settings.OPENAI_API_KEY = "sk-test"
    page = agent_client.get(url).content.decode()
    assert f"/bot/c/{conversation.pk}/draft/" in page

    context = agent_client.get(f"/bot/c/{conversation.pk}/context/", **HTMX).content.decode()
    assert "Cliente quer saber do pedido 4821 atrasado." in context
    assert "4821" in context


def test_quick_replies_of_the_department_are_offered_in_the_composer(
    agent_client, agent, support, sales
) -> None:
    from conversations.models import QuickReply

    QuickReply.objects.create(
        shortcut="ola", title="Saudação", body="Olá! <b>Como</b> posso ajudar?"
    )
    QuickReply.objects.create(
        shortcut="prazo", title="Prazo de entrega", body="Entregamos em 3 dias.", department=support
    )
    QuickReply.objects.create(
        shortcut="preco", title="Tabela de preços", body="Segue a tabela.", department=sales
    )
    QuickReply.objects.create(shortcut="velho", title="Desativada", body="x", is_active=False)
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )

    page = agent_client.get(f"/c/{conversation.pk}/").content.decode()

    assert "/ola · Saudação" in page
    assert "/prazo · Prazo de entrega" in page
    assert "Tabela de preços" not in page  # another department's
    assert "Desativada" not in page
    assert "&lt;b&gt;Como&lt;/b&gt;" in page  # inserted as text, never as markup


def test_no_quick_replies_for_someone_who_cannot_reply(client, supervisor, support) -> None:
    from conversations.models import QuickReply

    QuickReply.objects.create(shortcut="ola", title="Saudação", body="Olá!")
    conversation = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    client.force_login(supervisor)
    assert "Saudação" not in client.get(f"/c/{conversation.pk}/").content.decode()


# --- query counts: each screen costs the same whatever the number of rows -----------------------


def _conversations_with_messages(count: int, department, **extra) -> None:  # type: ignore[no-untyped-def]
    for conversation in ConversationFactory.create_batch(count, department=department, **extra):
        MessageFactory.create_batch(2, conversation=conversation, body="Cliente pergunta")


def _grow_timeline(conversation: Conversation, agent, messages: int) -> None:  # type: ignore[no-untyped-def]
    """Customer messages with a reaction each, agent replies quoting them, notes, past visits."""
    from conversations.models import ConversationNote

    while conversation.messages.count() < messages:
        asked = MessageFactory(conversation=conversation)
        MessageReaction.objects.create(message=asked, sender=SenderKind.AGENT, emoji="👍")
        MessageFactory(
            conversation=conversation,
            direction=Direction.OUT,
            sender=SenderKind.AGENT,
            sender_user=agent,
            status=MessageStatus.DELIVERED,
            reply_to=asked,
        )
        ConversationNote.objects.create(conversation=conversation, author=agent, body="Nota")
        ConversationFactory(
            department=conversation.department,
            customer=conversation.customer,
            status=ConversationStatus.CLOSED,
        )


def test_console_page_query_count_is_fixed(
    agent_client, support, django_assert_num_queries
) -> None:
    # user (session cached), page of rows, their tags and their contacts', tab counts, departments,
    # agents, numbers and tags for the filters
    _conversations_with_messages(3, support)
    with django_assert_num_queries(9):
        assert agent_client.get("/").content.decode().count("data-conversation-id=") == 3
    _conversations_with_messages(9, support)
    with django_assert_num_queries(9):
        assert agent_client.get("/").content.decode().count("data-conversation-id=") == 12


def test_inbox_search_query_count_is_fixed(
    agent_client, support, django_assert_num_queries
) -> None:
    def search() -> int:
        # as the page (the search is part of the rows' query), and on PostgreSQL the search's
        # time limit: SAVEPOINT, set_config('statement_timeout'), RELEASE
        with django_assert_num_queries(9 + search_limit_queries()):
            html = agent_client.get("/inbox/", {"tab": "all", "q": "pergunta"}, **HTMX)
        return html.content.decode().count("data-conversation-id=")

    _conversations_with_messages(3, support)
    assert search() == 3
    _conversations_with_messages(9, support)
    assert search() == 12


@pytest.mark.parametrize(
    "url", ["/c/{pk}/", "/c/{pk}/messages/"], ids=["conversation pane", "message list"]
)
def test_conversation_timeline_query_count_is_fixed(
    agent_client, agent, support, django_assert_num_queries, url
) -> None:
    # user (session cached), conversation; messages (sender and quoted message joined), their
    # reactions,
    # events (actor joined), notes (author joined); quick replies, past conversations, transfer
    # agents and departments; the desk's numbers; its tags, its contact's, the tags to choose from
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )

    def shown() -> int:
        with django_assert_num_queries(14 if url == "/c/{pk}/" else 11):
            html = agent_client.get(url.format(pk=conversation.pk), **HTMX).content.decode()
        assert html.count('class="note"') == html.count("msg-reactions")
        return html.count('class="msg ')

    _grow_timeline(conversation, agent, 3)
    assert shown() == 4
    _grow_timeline(conversation, agent, 12)
    assert shown() == 12


def test_the_header_carries_the_state_the_console_catches_up_with(
    agent_client, agent, support, django_assert_num_queries
) -> None:
    # static/js/console.js fetches the header after every (re)connection and compares these with
    # the pane's: status, assignee, department, priority and tags, as the pane was rendered. Its
    # queries: user (session cached), conversation with its tags and its contact's; the agent's
    # departments; transfer agents and departments; the desk's numbers; the tags to choose from
    # (no timeline, whatever its length)
    from conversations.models import Priority, Tag

    vip, late = Tag.objects.create(name="vip"), Tag.objects.create(name="atrasado")
    conversation = ConversationFactory(
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        priority=Priority.HIGH,
    )
    conversation.tags.set([vip, late])
    state = (
        f'data-status="open" data-assigned="{agent.pk}" data-department="{support.pk}"',
        f'data-organised="{Priority.HIGH}|{late.pk},{vip.pk}"',  # tags by name
    )
    pane = agent_client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    assert all(part in pane for part in state)
    for size in (3, 12):
        _grow_timeline(conversation, agent, size)
        with django_assert_num_queries(9):
            html = agent_client.get(f"/c/{conversation.pk}/header/", **HTMX).content.decode()
        assert html.lstrip().startswith('<header id="conversation-header"')
        assert all(part in html for part in state)


def test_queue_conversation_pane_query_count_is_fixed(
    agent_client, agent, support, django_assert_num_queries
) -> None:
    # user (session cached), conversation; messages, reactions, events, notes; the agent's
    # departments
    # (once, for every right); past conversations, transfer agents and departments (no composer);
    # the desk's numbers, its tags, its contact's, the tags to choose from
    conversation = ConversationFactory(department=support)
    for size in (3, 12):
        _grow_timeline(conversation, agent, size)
        with django_assert_num_queries(14):
            html = agent_client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
        assert "Take over" in html and 'id="composer"' not in html


def test_conversation_page_query_count_is_fixed(
    agent_client, agent, support, django_assert_num_queries
) -> None:
    # the pane's fifteen and the inbox's seven beside it (session, user, the numbers and the tags
    # to choose from are shared)
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    _grow_timeline(conversation, agent, 3)
    _conversations_with_messages(3, support)
    with django_assert_num_queries(20):
        agent_client.get(f"/c/{conversation.pk}/")
    _grow_timeline(conversation, agent, 12)
    _conversations_with_messages(9, support)
    with django_assert_num_queries(20):
        agent_client.get(f"/c/{conversation.pk}/")


def test_board_query_count_is_fixed(
    client, supervisor, support, sales, django_assert_num_queries
) -> None:
    client.force_login(supervisor)

    def rows() -> int:
        # user (session cached), agents with their load, departments, conversations with no
        # department
        with django_assert_num_queries(4):
            html = client.get("/board/").content.decode()
        return html.count("data-presence-user=")

    for department in (support, sales):
        colleague = UserFactory(role="agent", departments=[department])
        ConversationFactory(department=department, assigned_to=colleague, status="open")
        ConversationFactory(department=department)
    assert rows() == 3  # two agents and the supervisor
    for department in (support, sales):
        for colleague in UserFactory.create_batch(5, role="agent", departments=[department]):
            ConversationFactory(department=department, assigned_to=colleague, status="open")
            ConversationFactory(department=department, status=ConversationStatus.BOT)
    assert rows() == 13


# --- replying with a quote, reacting (issue 14) ---------------------------------------------------


@pytest.fixture
def on_whatsapp(fake_graph, agent, support):
    """Ana's open conversation on the fake Graph API's number, a customer message in it."""
    conversation = ConversationFactory(
        whatsapp_account=fake_graph.account,
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        customer__wa_id="5511987650002",
        last_inbound_at=timezone.now() - timedelta(hours=1),
    )
    asked = MessageFactory(
        conversation=conversation, body="Qual o prazo de entrega?", wa_message_id="wamid.ASKED"
    )
    return conversation, asked


def test_agent_replies_quoting_a_message_and_whatsapp_gets_the_context(
    agent_client, fake_graph, on_whatsapp, django_capture_on_commit_callbacks
) -> None:
    conversation, asked = on_whatsapp
    pane = agent_client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    assert f'data-reply-to="{asked.pk}"' in pane and 'id="emoji-picker"' in pane

    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            f"/c/{conversation.pk}/send/",
            {"body": "Chega amanhã 👍", "reply_to": str(asked.pk)},
            **HTMX,
        )

    reply = Message.objects.get(conversation=conversation, direction=Direction.OUT)
    assert reply.reply_to_id == asked.pk and reply.body == "Chega amanhã 👍"
    assert fake_graph.message_sends[-1]["context"] == {"message_id": "wamid.ASKED"}
    # the timeline shows the quote above the reply
    html = response.content.decode()
    shown = html.split(f'id="message-{reply.pk}"')[1].split("</article>")[0]
    assert 'class="msg-quote"' in shown and "Qual o prazo de entrega?" in shown


def test_a_reply_cannot_quote_another_conversations_message(
    agent_client, on_whatsapp, support
) -> None:
    conversation, _asked = on_whatsapp
    elsewhere = MessageFactory(conversation=ConversationFactory(department=support))
    html = agent_client.post(
        f"/c/{conversation.pk}/send/", {"body": "Oi", "reply_to": str(elsewhere.pk)}, **HTMX
    ).content.decode()
    assert "The quoted message is not part of this conversation." in html
    assert not Message.objects.filter(conversation=conversation, direction=Direction.OUT).exists()


def test_agent_reacts_to_a_customer_message_and_takes_it_back(
    agent_client, fake_graph, on_whatsapp, django_capture_on_commit_callbacks
) -> None:
    conversation, asked = on_whatsapp
    url = f"/c/{conversation.pk}/m/{asked.pk}/react/"

    with django_capture_on_commit_callbacks(execute=True):
        html = agent_client.post(url, {"emoji": "❤️"}, **HTMX).content.decode()

    assert MessageReaction.objects.get(message=asked, sender=SenderKind.AGENT).emoji == "❤️"
    assert fake_graph.message_sends[-1]["reaction"] == {"message_id": "wamid.ASKED", "emoji": "❤️"}
    shown = html.split(f'id="message-{asked.pk}"')[1].split("</article>")[0]
    assert '<span class="reaction" title="Agent">❤️</span>' in shown
    assert "Remove ❤️" in shown

    with django_capture_on_commit_callbacks(execute=True):
        html = agent_client.post(url, {"emoji": ""}, **HTMX).content.decode()

    assert not MessageReaction.objects.filter(message=asked).exists()
    assert fake_graph.message_sends[-1]["reaction"] == {"message_id": "wamid.ASKED", "emoji": ""}
    shown = html.split(f'id="message-{asked.pk}"')[1].split("</article>")[0]
    assert "msg-reactions" not in shown


def test_only_the_assignee_reacts_and_replies_and_only_inside_the_window(
    agent_client, fake_graph, on_whatsapp, support
) -> None:
    conversation, asked = on_whatsapp
    url = f"/c/{conversation.pk}/m/{asked.pk}/react/"
    # a colleague of the same department sees the conversation, but neither replies nor reacts
    colleague = UserFactory(departments=[support])
    client = Client()
    client.force_login(colleague)
    pane = client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    assert "data-reply-to" not in pane and "react-picker" not in pane
    html = client.post(url, {"emoji": "👍"}, **HTMX).content.decode()
    assert "Only the agent assigned to this conversation can reply." in html
    assert not MessageReaction.objects.exists()

    # the desk's own messages and unknown ones get no reaction
    own = MessageFactory(conversation=conversation, direction=Direction.OUT, sender="agent")
    assert (
        agent_client.post(f"/c/{conversation.pk}/m/{own.pk}/react/", {"emoji": "👍"}).status_code
        == 404
    )
    assert (
        agent_client.post(url, {"emoji": "ok"}, **HTMX)
        .content.decode()
        .count("A reaction is one emoji.")
        == 1
    )

    # past the 24-hour window WhatsApp refuses reactions as any free-form message
    Conversation.objects.filter(pk=conversation.pk).update(
        last_inbound_at=timezone.now() - timedelta(hours=25)
    )
    pane = agent_client.get(f"/c/{conversation.pk}/", **HTMX).content.decode()
    assert "react-picker" not in pane and "data-reply-to" not in pane
    html = agent_client.post(url, {"emoji": "👍"}, **HTMX).content.decode()
    assert "More than 24 hours have passed" in html
    assert not MessageReaction.objects.exists()
    assert fake_graph.message_sends == []
