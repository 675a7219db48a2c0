"""The console's contacts pages, an agent's own quick replies and the signature preference, over
plain HTTP (the browser's side is in test_e2e_console.py)."""

import pytest

from accounts.tests.factories import UserFactory
from conversations.models import ConversationStatus, Customer, QuickReply, Tag
from conversations.tests.factories import ConversationFactory, CustomerFactory

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


# --- the list ----------------------------------------------------------------------------------


def test_the_contacts_page_lists_searches_and_filters_what_the_agent_may_see(
    agent_client, support, sales
) -> None:
    vip = Tag.objects.create(name="VIP")
    joana = ConversationFactory(department=support, customer__name="Joana Dárc").customer
    joana.tags.add(vip)
    ConversationFactory(department=support, customer__name="Pedro")
    ConversationFactory(department=sales, customer__name="Segredo de Vendas")

    page = agent_client.get("/contacts/").content.decode()
    assert "Joana Dárc" in page
    assert "Pedro" in page
    assert "Segredo de Vendas" not in page
    assert 'href="/contacts/"' in page  # the navigation's entry

    found = agent_client.get("/contacts/?q=joana darc", **HTMX)
    assert "Joana Dárc" in found.content.decode()
    assert "Pedro" not in found.content.decode()
    assert found["HX-Push-Url"] == "/contacts/?q=joana+darc"
    tagged = agent_client.get(f"/contacts/?tag={vip.pk}", **HTMX).content.decode()
    assert "Joana Dárc" in tagged
    assert "Pedro" not in tagged
    nothing = agent_client.get("/contacts/?q=zzz", **HTMX).content.decode()
    assert "No contact matches this search." in nothing


def test_the_contacts_list_pages_and_costs_the_same_queries_for_any_page(
    agent_client, support, django_assert_num_queries
) -> None:
    for n in range(30):
        ConversationFactory(department=support, customer__name=f"Cliente {n:02d}")
    # user (session cached), the page's rows, their tags, the tag filter's options
    with django_assert_num_queries(4):
        first = agent_client.get("/contacts/").content.decode()
    assert first.count('class="contact-row"') == 25
    assert "/contacts/?page=2" in first
    with django_assert_num_queries(4):
        second = agent_client.get("/contacts/?page=2").content.decode()
    assert second.count('class="contact-row"') == 5


def test_no_contacts_yet(agent_client) -> None:
    assert "No contacts yet." in agent_client.get("/contacts/").content.decode()


# --- one contact ---------------------------------------------------------------------------------


def test_the_contact_page_shows_every_visible_conversation_and_escapes_the_notes(
    agent_client, support, sales, django_assert_num_queries
) -> None:
    customer = CustomerFactory(name="<b>Maria</b>", notes="<script>alert(1)</script>")
    mine = ConversationFactory(customer=customer, department=support)
    closed = ConversationFactory(
        customer=customer, department=support, status=ConversationStatus.CLOSED
    )
    hidden = ConversationFactory(
        customer=customer, department=sales, status=ConversationStatus.CLOSED
    )

    # user (session cached), the contact, its tags, its conversations, their tags, their contact's
    # tags,
    # every tag (the form)
    with django_assert_num_queries(7):
        page = agent_client.get(f"/contacts/{customer.pk}/").content.decode()

    assert f'href="/c/{mine.pk}/"' in page
    assert f'href="/c/{closed.pk}/"' in page
    assert f"/c/{hidden.pk}/" not in page
    assert "<b>Maria</b>" not in page
    assert "&lt;b&gt;Maria&lt;/b&gt;" in page
    assert "<script>alert(1)</script>" not in page


def test_the_contact_page_pages_through_all_its_conversations(
    agent_client, support, django_assert_num_queries
) -> None:
    # given: more than the 50 the page used to stop at
    customer = CustomerFactory(name="Maria")
    first = ConversationFactory(customer=customer, department=support)
    account = first.whatsapp_account
    for _ in range(59):
        ConversationFactory(
            customer=customer,
            department=support,
            whatsapp_account=account,
            status=ConversationStatus.CLOSED,
        )
    ids = list(
        customer.conversations.order_by("-last_message_at", "-id").values_list("pk", flat=True)
    )
    seen: list[int] = []
    # when: every page, the same queries each (the list's htmx swaps included)
    for page in (1, 2, 3):
        with django_assert_num_queries(7):
            html = agent_client.get(f"/contacts/{customer.pk}/?page={page}").content.decode()
        seen += [pk for pk in ids if f'href="/c/{pk}/"' in html]
    # then
    assert sorted(seen) == sorted(ids)
    assert len(seen) == 60
    third = agent_client.get(f"/contacts/{customer.pk}/?page=3").content.decode()
    assert f"/contacts/{customer.pk}/?page=2" in third
    assert "?page=4" not in third
    swapped = agent_client.get(f"/contacts/{customer.pk}/?page=2", **HTMX)
    assert (
        swapped.content.decode().lstrip().startswith('<section class="card contact-conversations"')
    )
    assert swapped["HX-Push-Url"] == f"/contacts/{customer.pk}/?page=2"
    assert f"/contacts/{customer.pk}/?page=3" in swapped.content.decode()


def test_a_contact_out_of_reach_is_a_404_on_every_route(agent_client, sales) -> None:
    customer = ConversationFactory(department=sales).customer
    assert agent_client.get(f"/contacts/{customer.pk}/").status_code == 404
    assert (
        agent_client.post(f"/contacts/{customer.pk}/edit/", {"name": "X"}, **HTMX).status_code
        == 404
    )
    assert agent_client.post(f"/contacts/{customer.pk}/tags/", {}, **HTMX).status_code == 404
    customer.refresh_from_db()
    assert customer.name != "X"


def test_an_agent_edits_name_and_notes_and_tags_of_a_contact(agent_client, support) -> None:
    vip = Tag.objects.create(name="VIP")
    customer = ConversationFactory(department=support).customer

    saved = agent_client.post(
        f"/contacts/{customer.pk}/edit/", {"name": "Maria Souza", "notes": "Liga à tarde"}, **HTMX
    ).content.decode()
    assert "Saved." in saved
    assert 'value="Maria Souza"' in saved
    refused = agent_client.post(
        f"/contacts/{customer.pk}/edit/", {"name": "  ", "notes": "kept"}, **HTMX
    ).content.decode()
    assert "A contact needs a name." in refused
    customer.refresh_from_db()
    assert (customer.name, customer.notes) == ("Maria Souza", "Liga à tarde")

    tags = agent_client.post(f"/contacts/{customer.pk}/tags/", {"tags": [vip.pk]}, **HTMX)
    assert "Saved." in tags.content.decode()
    assert list(customer.tags.all()) == [vip]
    agent_client.post(f"/contacts/{customer.pk}/tags/", {}, **HTMX)
    assert not customer.tags.exists()


def test_the_conversation_header_links_to_the_contact_page(agent_client, support) -> None:
    conversation = ConversationFactory(department=support)
    page = agent_client.get(f"/c/{conversation.pk}/").content.decode()
    assert f'href="/contacts/{conversation.customer_id}/"' in page


# --- quick replies in the composer and the agent's own ------------------------------------------


def test_the_composer_offers_the_agents_own_replies_with_variables_filled_in(
    agent_client, agent, support, other_agent
) -> None:
    QuickReply.objects.create(
        shortcut="ola",
        title="Olá",
        body="Olá {{nome}}, sou {{agente}} (#{{protocolo}})",
        owner=agent,
    )
    QuickReply.objects.create(shortcut="dele", title="Do colega", body="x", owner=other_agent)
    conversation = ConversationFactory(
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        customer__name="Jo <Ana>",
    )

    page = agent_client.get(f"/c/{conversation.pk}/").content.decode()

    assert 'role="listbox"' in page
    assert f'data-text="Olá Jo &lt;Ana&gt;, sou Ana Agente (#{conversation.pk})"' in page
    assert "Do colega" not in page


def test_an_agent_manages_their_own_quick_replies(agent_client, agent, other_agent) -> None:
    theirs = QuickReply.objects.create(shortcut="x", title="Do colega", body="x", owner=other_agent)
    shared = QuickReply.objects.create(shortcut="geral", title="Geral", body="g")

    page = agent_client.get("/quick-replies/").content.decode()
    assert "You have no quick replies of your own yet." in page
    assert "Do colega" not in page
    created = agent_client.post(
        "/quick-replies/", {"shortcut": "oi", "title": "Oi", "body": "Oi {{nome}}"}, **HTMX
    ).content.decode()
    assert "Quick reply saved." in created
    reply = QuickReply.objects.get(owner=agent)
    assert (reply.shortcut, reply.body, reply.department_id) == ("oi", "Oi {{nome}}", None)
    bad = agent_client.post("/quick-replies/", {"shortcut": "a b", "title": "", "body": ""}, **HTMX)
    assert "A shortcut is up to 40 letters" in bad.content.decode()

    agent_client.post(
        f"/quick-replies/{reply.pk}/", {"shortcut": "oi", "title": "Olá", "body": "Olá!"}, **HTMX
    )
    reply.refresh_from_db()
    assert reply.title == "Olá"
    # someone else's, or a shared one: not here
    assert agent_client.post(f"/quick-replies/{theirs.pk}/delete/", **HTMX).status_code == 404
    assert agent_client.post(f"/quick-replies/{shared.pk}/delete/", **HTMX).status_code == 404
    deleted = agent_client.post(f"/quick-replies/{reply.pk}/delete/", **HTMX).content.decode()
    assert "Quick reply deleted." in deleted
    assert set(QuickReply.objects.values_list("pk", flat=True)) == {theirs.pk, shared.pk}


def test_the_back_office_lists_only_shared_quick_replies(client, admin_user, agent) -> None:
    QuickReply.objects.create(shortcut="meu", title="Pessoal da Ana", body="x", owner=agent)
    QuickReply.objects.create(shortcut="geral", title="Compartilhada", body="g")
    client.force_login(admin_user)
    page = client.get("/admin/conversations/quickreply/").content.decode()
    assert "Compartilhada" in page
    assert "Pessoal da Ana" not in page


# --- the signature preference --------------------------------------------------------------------


def test_the_agent_turns_the_signature_on_in_the_user_menu(client, support) -> None:
    ana = UserFactory(name="Ana", departments=[support])
    client.force_login(ana)
    assert 'name="signature"' in client.get("/").content.decode()

    client.post("/notifications/", {"signature": "on"}, **HTMX)
    ana.refresh_from_db()
    assert ana.signature_enabled

    conversation = ConversationFactory(
        department=support, assigned_to=ana, status=ConversationStatus.OPEN
    )
    client.post(f"/c/{conversation.pk}/send/", {"body": "Olá"}, **HTMX)
    assert conversation.messages.get().body == "*Ana:*\nOlá"

    client.post("/notifications/", {}, **HTMX)
    ana.refresh_from_db()
    assert not ana.signature_enabled
    assert Customer.objects.count() == 1
