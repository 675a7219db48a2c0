"""The conversations back office: lists, search, read-only history and actions through services."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from conversations.admin import MESSAGE_INLINE_LIMIT
from conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    ConversationTransfer,
    EventKind,
)
from conversations.tests.factories import ConversationFactory, CustomerFactory, MessageFactory
from departments.tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:conversations_conversation_changelist"


@pytest.fixture(autouse=True)
def _english(settings):  # type: ignore[no-untyped-def]
    settings.LANGUAGE_CODE = "en"
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users


def _client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_browser(admin_user) -> Client:  # type: ignore[no-untyped-def]
    return _client_for(admin_user)


@pytest.fixture
def supervisor_browser(supervisor) -> Client:  # type: ignore[no-untyped-def]
    return _client_for(supervisor)


def _messages(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in response.context["messages"]]


def _events(conversation: Conversation, kind: str):  # type: ignore[no-untyped-def]
    return ConversationEvent.objects.filter(conversation=conversation, kind=kind)


# --- the list ----------------------------------------------------------------------------------


def test_changelist_shows_status_customer_department_assignee_and_unread(
    admin_browser, agent, support
) -> None:
    customer = CustomerFactory(name="Maria Oliveira", phone="+5511990000001")
    ConversationFactory(
        customer=customer, department=support, assigned_to=agent, status="open", unread_count=3
    )

    response = admin_browser.get(reverse(CHANGELIST))

    row = response.content.decode()
    assert "Maria Oliveira · +5511990000001" in row
    assert "Open" in row
    assert "Suporte" in row
    assert agent.name in row
    assert '<td class="field-unread_count">3</td>' in row


@pytest.mark.parametrize("query", ["maria", "+55119900", "boleto vencido"])
def test_search_by_customer_name_phone_or_message_text(admin_browser, query) -> None:
    wanted = ConversationFactory(
        customer=CustomerFactory(name="Maria Oliveira", phone="+5511990000001")
    )
    MessageFactory(conversation=wanted, body="Meu boleto vencido não abre")
    MessageFactory(conversation=wanted, body="o boleto vencido de novo")  # no duplicate rows
    other = ConversationFactory(customer=CustomerFactory(name="Pedro", phone="+5531990000004"))
    MessageFactory(conversation=other, body="Quero um plano novo")

    response = admin_browser.get(reverse(CHANGELIST), {"q": query})

    assert list(response.context["cl"].result_list) == [wanted]


def test_filters_by_status_and_department(admin_browser, support, sales) -> None:
    waiting = ConversationFactory(status="pending", department=support)
    ConversationFactory(status="pending", department=sales)
    ConversationFactory(status="closed", department=support)

    response = admin_browser.get(
        reverse(CHANGELIST), {"status__exact": "pending", "department__id__exact": support.pk}
    )

    assert list(response.context["cl"].result_list) == [waiting]


def test_changelist_query_count_does_not_grow_with_rows(admin_browser, agent, support) -> None:
    def page_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_browser.get(reverse(CHANGELIST)).status_code == 200
        return len(ctx.captured_queries)

    ConversationFactory(department=support, assigned_to=agent, status="open")
    few = page_queries()
    for i in range(15):
        ConversationFactory(
            department=DepartmentFactory(name=f"Dep {i}"),
            assigned_to=UserFactory(),
            status="open",
        )
    many = page_queries()

    assert many == few
    # user (session cached); the filter choices (departments, users, numbers); count; page
    assert few == 6, few


def _history_rows(admin_user: User, n: int) -> None:
    from conversations import services

    for i in range(n):
        department = DepartmentFactory(name=f"Fila {i}")
        conversation = ConversationFactory(department=department, status="pending")
        MessageFactory(conversation=conversation, sender_user=UserFactory())
        services.conversation_transfer(
            conversation=conversation, actor=admin_user, to_user=UserFactory(role="supervisor")
        )


@pytest.mark.parametrize(
    "changelist",
    [
        "admin:conversations_message_changelist",
        "admin:conversations_conversationtransfer_changelist",
        "admin:conversations_conversationevent_changelist",
        "admin:conversations_customer_changelist",
        "admin:accounts_user_changelist",
    ],
)
def test_history_changelists_cost_the_same_for_1_or_6_rows(
    admin_browser, admin_user, changelist
) -> None:
    def page_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_browser.get(reverse(changelist)).status_code == 200
        return len(ctx.captured_queries)

    _history_rows(admin_user, 1)
    one = page_queries()
    _history_rows(admin_user, 5)

    assert page_queries() == one


# --- the conversation page ---------------------------------------------------------------------


def test_change_form_is_read_only_with_messages_transfers_and_events(
    admin_browser, admin_user, agent, support
) -> None:
    from conversations import services

    conversation = ConversationFactory(department=support, status="pending")
    MessageFactory(conversation=conversation, body="Preciso de ajuda com a fatura")
    services.conversation_transfer(
        conversation=conversation, actor=admin_user, to_user=agent, note="cliente VIP"
    )

    response = admin_browser.get(
        reverse("admin:conversations_conversation_change", args=[conversation.pk])
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert "Preciso de ajuda com a fatura" in content
    assert "cliente VIP" in content  # the transfer inline
    assert "Transferred" in content  # the event inline
    assert 'name="_save"' not in content  # state changes only through the actions
    assert 'name="status"' not in content
    for operation in ("take-over", "transfer", "close"):
        assert f"/{conversation.pk}/{operation}/" in content


def test_change_form_query_count_does_not_grow_with_history(
    admin_browser, admin_user, agent, other_agent, sales
) -> None:
    from conversations import services

    conversation = ConversationFactory(department=sales, status="pending")
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])

    def page_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_browser.get(url).status_code == 200
        return len(ctx.captured_queries)

    MessageFactory(conversation=conversation, sender_user=agent)
    services.conversation_transfer(conversation=conversation, actor=admin_user, to_user=agent)
    short = page_queries()
    for target in (other_agent, agent, other_agent):
        MessageFactory(conversation=conversation, sender_user=UserFactory())
        services.conversation_transfer(conversation=conversation, actor=admin_user, to_user=target)
        services.conversation_transfer(
            conversation=conversation, actor=admin_user, to_department=sales
        )

    assert page_queries() == short


def test_conversations_are_never_deleted_from_the_back_office(admin_browser) -> None:
    conversation = ConversationFactory()
    url = reverse("admin:conversations_conversation_delete", args=[conversation.pk])

    assert admin_browser.post(url, {"post": "yes"}).status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    changelist = admin_browser.get(reverse(CHANGELIST)).content.decode()
    assert 'value="delete_selected"' not in changelist


def test_supervisor_reads_internal_notes_on_the_conversation_page(
    supervisor_browser, agent, support
) -> None:
    from conversations.models import ConversationNote

    conversation = ConversationFactory(department=support, assigned_to=agent, status="open")
    ConversationNote.objects.create(
        conversation=conversation, author=agent, body="Cliente pediu retorno à tarde"
    )

    page = supervisor_browser.get(
        reverse("admin:conversations_conversation_change", args=[conversation.pk])
    ).content.decode()

    assert "Cliente pediu retorno à tarde" in page


def test_change_form_shows_only_the_latest_messages(admin_browser) -> None:
    conversation = ConversationFactory()
    MessageFactory.create_batch(MESSAGE_INLINE_LIMIT + 5, conversation=conversation)

    response = admin_browser.get(
        reverse("admin:conversations_conversation_change", args=[conversation.pk])
    )

    formset = next(
        f for f in response.context["inline_admin_formsets"] if f.opts.model.__name__ == "Message"
    )
    assert len(formset.formset.forms) == MESSAGE_INLINE_LIMIT


def test_the_full_history_link_lists_only_that_conversations_messages(admin_browser) -> None:
    conversation = ConversationFactory()
    mine = MessageFactory.create_batch(3, conversation=conversation)
    MessageFactory()  # another conversation's
    page = admin_browser.get(
        reverse("admin:conversations_conversation_change", args=[conversation.pk])
    ).content.decode()
    link = f"?conversation__id__exact={conversation.pk}"
    assert link in page

    response = admin_browser.get(reverse("admin:conversations_message_changelist") + link)

    assert response.status_code == 200
    assert set(response.context["cl"].result_list) == set(mine)


def test_message_page_shows_the_raw_payload_read_only(admin_browser) -> None:
    message = MessageFactory(raw_payload={"from": "5511990000001", "text": {"body": "oi"}})

    response = admin_browser.get(reverse("admin:conversations_message_change", args=[message.pk]))

    content = response.content.decode()
    assert "&quot;from&quot;: &quot;5511990000001&quot;" in content
    assert 'name="_save"' not in content
    assert admin_browser.get(reverse("admin:conversations_message_add")).status_code == 403


# --- actions from the list ---------------------------------------------------------------------


def _act(browser: Client, action: str, conversations: list[Conversation], **data):  # type: ignore[no-untyped-def]
    return browser.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [c.pk for c in conversations], **data},
        follow=True,
    )


def test_close_selected_closes_and_writes_events(admin_browser, admin_user, support) -> None:
    first = ConversationFactory(department=support, status="pending")
    second = ConversationFactory(department=support, status="open")

    response = _act(admin_browser, "close_selected", [first, second])

    assert "2 conversations closed." in _messages(response)
    for conversation in (first, second):
        conversation.refresh_from_db()
        assert conversation.status == ConversationStatus.CLOSED
        assert conversation.closed_at is not None
        assert _events(conversation, EventKind.CLOSED).get().actor == admin_user


def test_a_refused_action_becomes_an_error_message(admin_browser, support) -> None:
    done = ConversationFactory(department=support, status="closed")
    waiting = ConversationFactory(department=support, status="pending")

    response = _act(admin_browser, "close_selected", [done, waiting])

    messages = _messages(response)
    assert f"Conversation {done}: You cannot close this conversation." in messages
    assert "1 conversation closed." in messages
    assert not _events(done, EventKind.CLOSED).exists()


def test_take_over_selected_assigns_to_the_user(supervisor_browser, supervisor, support) -> None:
    conversation = ConversationFactory(department=support, status="pending")

    response = _act(supervisor_browser, "take_over_selected", [conversation])

    assert "1 conversation taken over." in _messages(response)
    conversation.refresh_from_db()
    assert conversation.assigned_to == supervisor
    assert conversation.status == ConversationStatus.OPEN
    assert _events(conversation, EventKind.TAKEN_OVER).get().actor == supervisor


def test_reopen_selected(admin_browser, support) -> None:
    conversation = ConversationFactory(department=support, status="closed")

    response = _act(admin_browser, "reopen_selected", [conversation])

    assert "1 conversation reopened." in _messages(response)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.PENDING


def test_transfer_asks_for_the_target_first(admin_browser, support) -> None:
    conversations = ConversationFactory.create_batch(2, department=support, status="pending")

    response = _act(admin_browser, "transfer_selected", conversations)

    content = response.content.decode()
    assert response.status_code == 200
    assert "Transfer these conversations:" in content
    for conversation in conversations:
        assert str(conversation) in content
        assert f'name="_selected_action" value="{conversation.pk}"' in content
    assert 'name="to_department"' in content
    assert 'name="to_user"' in content
    assert not ConversationTransfer.objects.exists()


def test_transfer_to_a_department_with_a_note(
    supervisor_browser, supervisor, agent, support, sales
) -> None:
    conversations = ConversationFactory.create_batch(
        2, department=support, assigned_to=agent, status="open"
    )

    response = _act(
        supervisor_browser,
        "transfer_selected",
        conversations,
        apply="Yes",
        to_department=sales.pk,
        note="assunto de vendas",
    )

    assert "2 conversations transferred." in _messages(response)
    for conversation in conversations:
        conversation.refresh_from_db()
        assert conversation.department == sales
        assert conversation.assigned_to is None
        assert conversation.status == ConversationStatus.PENDING
        transfer = ConversationTransfer.objects.get(conversation=conversation)
        assert (transfer.actor, transfer.from_user, transfer.to_department) == (
            supervisor,
            agent,
            sales,
        )
        assert transfer.note == "assunto de vendas"
        event = _events(conversation, EventKind.TRANSFERRED).get()
        assert event.after["note"] == "assunto de vendas"


def test_transfer_to_an_agent(admin_browser, other_agent, support) -> None:
    conversation = ConversationFactory(department=support, status="pending")

    _act(admin_browser, "transfer_selected", [conversation], apply="Yes", to_user=other_agent.pk)

    conversation.refresh_from_db()
    assert conversation.assigned_to == other_agent
    assert conversation.status == ConversationStatus.OPEN


def test_transfer_without_a_target_shows_the_form_again(admin_browser, support) -> None:
    conversation = ConversationFactory(department=support, status="pending")

    response = _act(admin_browser, "transfer_selected", [conversation], apply="Yes", note="x")

    assert "Choose an agent or a department to transfer to." in response.content.decode()
    assert not ConversationTransfer.objects.exists()


def test_transfer_refused_by_the_service_is_reported(admin_browser, agent, support, sales) -> None:
    conversation = ConversationFactory(department=support, status="pending")

    response = _act(
        admin_browser,
        "transfer_selected",
        [conversation],
        apply="Yes",
        to_user=agent.pk,
        to_department=sales.pk,
    )

    assert f"Conversation {conversation}: {agent.name} does not work in Vendas." in _messages(
        response
    )
    conversation.refresh_from_db()
    assert conversation.department == support
    assert not ConversationTransfer.objects.exists()


def test_agents_cannot_run_actions(agent, support) -> None:
    conversation = ConversationFactory(department=support, status="pending")

    response = _act(_client_for(agent), "close_selected", [conversation])

    assert response.redirect_chain[-1][0].startswith(reverse("admin:login"))
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.PENDING


# --- the same actions from the conversation's page ---------------------------------------------


def _operation_url(conversation: Conversation, operation: str) -> str:
    return reverse("admin:conversations_conversation_operation", args=[conversation.pk, operation])


def test_take_over_from_the_conversation_page(admin_browser, admin_user, support) -> None:
    conversation = ConversationFactory(department=support, status="pending")
    url = _operation_url(conversation, "take-over")

    confirm = admin_browser.get(url)
    assert confirm.status_code == 200
    assert "Assign this conversation to yourself?" in confirm.content.decode()
    conversation.refresh_from_db()
    assert conversation.assigned_to is None  # nothing happens before the confirmation

    response = admin_browser.post(url, follow=True)

    assert response.redirect_chain[-1][0] == reverse(
        "admin:conversations_conversation_change", args=[conversation.pk]
    )
    assert "1 conversation taken over." in _messages(response)
    conversation.refresh_from_db()
    assert conversation.assigned_to == admin_user


def test_transfer_and_close_from_the_conversation_page(admin_browser, sales, support) -> None:
    conversation = ConversationFactory(department=support, status="pending")

    admin_browser.post(
        _operation_url(conversation, "transfer"), {"to_department": sales.pk, "note": "n"}
    )
    conversation.refresh_from_db()
    assert conversation.department == sales

    admin_browser.post(_operation_url(conversation, "close"))
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert _events(conversation, EventKind.CLOSED).exists()


def test_unknown_operation_is_404(admin_browser) -> None:
    conversation = ConversationFactory()
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    assert admin_browser.post(url.replace("/change/", "/delete-all/")).status_code in (302, 404)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.PENDING
