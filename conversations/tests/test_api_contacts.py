"""``/api/v1/contacts...`` and ``/api/v1/quick-replies...`` (contract §10): visibility through
conversations, search and tag filter, PATCH validation, query counts; personal quick replies never
seen by anyone else; variables filled in; the agent's signature."""

from typing import Any

import pytest

from accounts.tests.factories import UserFactory
from common.events import DomainEvent
from conversations.models import ConversationStatus, Customer, Message, QuickReply, Tag
from conversations.tests.factories import ConversationFactory, CustomerFactory
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def emitted(monkeypatch: Any) -> list[DomainEvent]:
    """The domain events services emit (recorded as they are emitted)."""
    from common import events

    seen: list[DomainEvent] = []
    original = events.emit_many

    def spy(batch: Any) -> None:
        items = list(batch)
        seen.extend(items)
        original(items)

    monkeypatch.setattr(events, "emit_many", spy)
    from conversations.services import contacts

    monkeypatch.setattr(contacts, "emit_many", spy)
    return seen


# --- contacts: visibility ------------------------------------------------------------------------


def test_an_agent_sees_only_contacts_of_conversations_it_may_see(
    agent: Any, other_agent: Any, support: Any, sales: Any, supervisor: Any
) -> None:
    # given: a Suporte customer, a Vendas customer, one customer of both, one with no conversation
    ours = ConversationFactory(department=support).customer
    theirs = ConversationFactory(department=sales).customer
    both = CustomerFactory()
    ConversationFactory(customer=both, department=sales, status=ConversationStatus.CLOSED)
    ConversationFactory(customer=both, department=support)
    lonely = CustomerFactory()
    # a Vendas conversation assigned to the Suporte agent makes its customer visible to them
    assigned = ConversationFactory(
        department=sales, assigned_to=agent, status=ConversationStatus.OPEN
    ).customer

    # then
    assert set(ids(bearer(agent).get("/api/v1/contacts"))) == {ours.pk, both.pk, assigned.pk}
    assert set(ids(bearer(other_agent).get("/api/v1/contacts"))) == {
        theirs.pk,
        both.pk,
        assigned.pk,
    }
    assert set(ids(bearer(supervisor).get("/api/v1/contacts"))) == {
        ours.pk,
        theirs.pk,
        both.pk,
        lonely.pk,
        assigned.pk,
    }


def test_a_contact_out_of_reach_is_a_404_through_every_route(
    agent: Any, other_agent: Any, sales: Any
) -> None:
    customer = ConversationFactory(department=sales).customer
    client = bearer(agent)
    for response in (
        client.get(f"/api/v1/contacts/{customer.pk}"),
        client.patch(f"/api/v1/contacts/{customer.pk}", {"notes": "x"}, format="json"),
        client.get(f"/api/v1/contacts/{customer.pk}/conversations"),
        client.put(f"/api/v1/contacts/{customer.pk}/tags", {"tags": []}, format="json"),
    ):
        body = assert_error_shape(response, 404, "not_found")
        assert customer.phone not in str(body)
    customer.refresh_from_db()
    assert customer.notes == ""
    # the colleague of Vendas sees it
    assert bearer(other_agent).get(f"/api/v1/contacts/{customer.pk}").json()["id"] == customer.pk


def test_a_contacts_conversations_are_only_those_the_agent_may_see(
    agent: Any, support: Any, sales: Any
) -> None:
    customer = CustomerFactory()
    mine = ConversationFactory(customer=customer, department=support)
    ConversationFactory(customer=customer, department=sales, status=ConversationStatus.CLOSED)

    response = bearer(agent).get(f"/api/v1/contacts/{customer.pk}/conversations")

    assert ids(response) == [mine.pk]
    assert response.json()["count"] == 1
    assert response.json()["results"][0]["customer"]["id"] == customer.pk


# --- contacts: search and tags ------------------------------------------------------------------


def test_search_by_name_ignoring_accents_or_by_phone(supervisor: Any, support: Any) -> None:
    joao = ConversationFactory(
        department=support, customer=CustomerFactory(name="João Gonçalves", wa_id="5511900001111")
    ).customer
    maria = ConversationFactory(
        department=support, customer=CustomerFactory(name="Maria", wa_id="5521977772222")
    ).customer
    client = bearer(supervisor)

    assert ids(client.get("/api/v1/contacts", {"search": "joao goncalves"})) == [joao.pk]
    assert ids(client.get("/api/v1/contacts", {"search": "MARIA"})) == [maria.pk]
    assert ids(client.get("/api/v1/contacts", {"search": "97777-2222"})) == [maria.pk]
    assert ids(client.get("/api/v1/contacts", {"search": "ninguém"})) == []


def test_filter_by_tag(supervisor: Any, support: Any) -> None:
    vip = Tag.objects.create(name="VIP", color="#dc2626")
    tagged = ConversationFactory(department=support).customer
    tagged.tags.add(vip)
    ConversationFactory(department=support)

    response = bearer(supervisor).get("/api/v1/contacts", {"tag": vip.pk})

    assert ids(response) == [tagged.pk]
    assert response.json()["results"][0]["tags"] == [
        {"id": vip.pk, "name": "VIP", "color": "#dc2626"}
    ]
    assert_error_shape(bearer(supervisor).get("/api/v1/contacts", {"tag": "abc"}), 400)


def test_the_contacts_list_and_a_contacts_conversations_cost_a_fixed_number_of_queries(
    agent: Any, support: Any, django_assert_num_queries: Any
) -> None:
    vip = Tag.objects.create(name="VIP")
    client = bearer(agent)
    customer = CustomerFactory()
    for size in (1, 8):
        for _ in range(size):
            other = ConversationFactory(department=support).customer
            other.tags.add(vip)
            conversation = ConversationFactory(customer=customer, department=support)
            conversation.tags.add(vip)
            ConversationFactory(
                customer=customer, department=support, status=ConversationStatus.CLOSED
            )
        # auth user, count, page, the contacts' tags
        with django_assert_num_queries(4):
            assert client.get("/api/v1/contacts").status_code == 200
        # auth user, the contact, count, page, conversations' tags, their contact's tags
        with django_assert_num_queries(6):
            response = client.get(f"/api/v1/contacts/{customer.pk}/conversations")
        assert response.status_code == 200


def test_a_contacts_conversations_are_paginated_like_every_list(agent: Any, support: Any) -> None:
    customer = CustomerFactory()
    account = ConversationFactory(customer=customer, department=support).whatsapp_account
    for _ in range(59):
        ConversationFactory(
            customer=customer,
            department=support,
            whatsapp_account=account,
            status=ConversationStatus.CLOSED,
        )
    client = bearer(agent)
    url = f"/api/v1/contacts/{customer.pk}/conversations"
    first = client.get(url).json()
    assert first["count"] == 60
    assert len(first["results"]) == 25
    assert first["previous"] is None
    assert "page=2" in first["next"]
    last = client.get(url, {"page": 3}).json()
    assert len(last["results"]) == 10
    assert last["next"] is None
    everything = client.get(url, {"page_size": 100}).json()
    assert len({c["id"] for c in everything["results"]}) == 60


# --- contacts: PATCH ---------------------------------------------------------------------------


def test_an_agent_edits_the_name_and_notes_and_the_profile_name_no_longer_replaces_it(
    agent: Any, support: Any, emitted: list[DomainEvent]
) -> None:
    from conversations.services.customers import CustomerIdentity, customer_upsert

    conversation = ConversationFactory(department=support)
    customer = conversation.customer

    response = bearer(agent).patch(
        f"/api/v1/contacts/{customer.pk}",
        {"name": "  Maria  Souza ", "notes": "Prefere <b>tarde</b>"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Maria Souza"
    assert response.json()["notes"] == "Prefere <b>tarde</b>"
    updated = [e for e in emitted if e.type == "conversation.updated"]
    assert len(updated) == 1
    assert updated[0].conversation_id == conversation.pk  # type: ignore[attr-defined]
    assert set(updated[0].changes) == {"customer.name", "customer.notes"}  # type: ignore[attr-defined]
    assert updated[0].conversation["customer"]["name"] == "Maria Souza"  # type: ignore[attr-defined]
    # the customer writes again with its WhatsApp profile name: the desk's name stays
    customer_upsert(
        identity=CustomerIdentity(wa_ids=(customer.wa_id,), phone=customer.phone, name="mah")
    )
    customer.refresh_from_db()
    assert customer.name == "Maria Souza"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": None}, "name"),
        ({"notes": "x" * 5001}, "notes"),
        ({"notes": ["not", "text"]}, "notes"),
        ({}, "name"),
    ],
)
def test_bad_contact_input_is_a_400_naming_the_field(
    agent: Any, support: Any, payload: dict[str, Any], field: str
) -> None:
    customer = ConversationFactory(department=support).customer
    before = Customer.objects.get(pk=customer.pk)

    response = bearer(agent).patch(f"/api/v1/contacts/{customer.pk}", payload, format="json")

    body = assert_error_shape(response, 400)
    assert field in body["errors"]
    customer.refresh_from_db()
    assert (customer.name, customer.notes) == (before.name, before.notes)


def test_a_name_of_spaces_is_refused_by_the_service(agent: Any, support: Any) -> None:
    customer = ConversationFactory(department=support).customer
    response = bearer(agent).patch(
        f"/api/v1/contacts/{customer.pk}", {"name": "   "}, format="json"
    )
    assert_error_shape(response, 400)


# --- quick replies -------------------------------------------------------------------------------


def test_personal_quick_replies_are_never_visible_to_anyone_else(  # noqa: PLR0917 - fixtures
    agent: Any, other_agent: Any, admin_user: Any, supervisor: Any, support: Any, sales: Any
) -> None:
    # given: Ana's own reply, a general one, one of each department
    created = bearer(agent).post(
        "/api/v1/quick-replies",
        {"shortcut": "meu", "title": "Minha saudação", "body": "Oi {{nome}}"},
        format="json",
    )
    assert created.status_code == 201, created.content
    mine = created.json()
    assert mine["scope"] == "personal"
    general = QuickReply.objects.create(shortcut="ola", title="Olá", body="Olá!")
    of_support = QuickReply.objects.create(
        shortcut="prazo", title="Prazo", body="3 dias", department=support
    )
    of_sales = QuickReply.objects.create(
        shortcut="preco", title="Preço", body="R$", department=sales
    )

    # then: the list of each person
    assert set(ids(bearer(agent).get("/api/v1/quick-replies"))) == {
        mine["id"],
        general.pk,
        of_support.pk,
    }
    assert set(ids(bearer(other_agent).get("/api/v1/quick-replies"))) == {general.pk, of_sales.pk}
    for boss in (admin_user, supervisor):
        assert mine["id"] not in ids(bearer(boss).get("/api/v1/quick-replies"))
    # and the composer of a Suporte conversation the other agent is given
    conversation = ConversationFactory(
        department=support, assigned_to=other_agent, status=ConversationStatus.OPEN
    )
    offered = ids(bearer(other_agent).get(f"/api/v1/quick-replies?conversation={conversation.pk}"))
    assert set(offered) == {general.pk, of_support.pk}
    # nobody else changes or deletes it: 404 as if it did not exist
    for someone in (other_agent, admin_user, supervisor):
        client = bearer(someone)
        assert_error_shape(
            client.patch(f"/api/v1/quick-replies/{mine['id']}", {"title": "x"}, format="json"),
            404,
            "not_found",
        )
        assert_error_shape(client.delete(f"/api/v1/quick-replies/{mine['id']}"), 404, "not_found")
    assert QuickReply.objects.get(pk=mine["id"]).title == "Minha saudação"


def test_agents_manage_only_their_own_and_admins_the_shared_ones(
    agent: Any, admin_user: Any, support: Any
) -> None:
    general = QuickReply.objects.create(shortcut="ola", title="Olá", body="Olá!")
    client = bearer(agent)
    # an agent may not make, change or delete a shared one
    shared = client.post(
        "/api/v1/quick-replies",
        {"shortcut": "x", "title": "X", "body": "x", "personal": False},
        format="json",
    )
    assert_error_shape(shared, 403, "permission_denied")
    assert_error_shape(
        client.patch(f"/api/v1/quick-replies/{general.pk}", {"body": "hack"}, format="json"), 403
    )
    assert_error_shape(client.delete(f"/api/v1/quick-replies/{general.pk}"), 403)
    # its own: edit then delete
    mine = client.post(
        "/api/v1/quick-replies", {"shortcut": "ola", "title": "Olá", "body": "Oi"}, format="json"
    ).json()  # the same shortcut as a shared one is fine
    patched = client.patch(f"/api/v1/quick-replies/{mine['id']}", {"body": "Oi!"}, format="json")
    assert patched.json()["body"] == "Oi!"
    twin = client.post(
        "/api/v1/quick-replies", {"shortcut": "ola", "title": "2", "body": "2"}, format="json"
    )
    assert_error_shape(twin, 400, "quick_reply_shortcut_taken")
    assert client.delete(f"/api/v1/quick-replies/{mine['id']}").status_code == 204
    assert not QuickReply.objects.filter(pk=mine["id"]).exists()
    # an admin makes a department's one and changes the general one
    admin = bearer(admin_user)
    made = admin.post(
        "/api/v1/quick-replies",
        {
            "shortcut": "prazo",
            "title": "Prazo",
            "body": "3 dias",
            "personal": False,
            "department": support.pk,
        },
        format="json",
    )
    assert made.status_code == 201, made.content
    assert made.json()["scope"] == "department"
    assert (
        admin.patch(f"/api/v1/quick-replies/{general.pk}", {"body": "Olá!!"}, format="json").json()[
            "body"
        ]
        == "Olá!!"
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "T", "body": "b"}, "shortcut"),
        ({"shortcut": "a", "body": "b"}, "title"),
        ({"shortcut": "a", "title": "T"}, "body"),
        ({"shortcut": "a" * 41, "title": "T", "body": "b"}, "shortcut"),
    ],
)
def test_bad_quick_reply_input_is_a_400_naming_the_field(
    agent: Any, payload: dict[str, Any], field: str
) -> None:
    body = assert_error_shape(
        bearer(agent).post("/api/v1/quick-replies", payload, format="json"), 400
    )
    assert field in body["errors"]


def test_variables_are_filled_in_for_the_conversation(agent: Any, support: Any) -> None:
    conversation = ConversationFactory(
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        customer=CustomerFactory(name="{{agente}} <Maria>"),
    )
    QuickReply.objects.create(
        shortcut="ola",
        title="Olá",
        body="Olá {{nome}}, sou {{ agente }}. Protocolo {{protocolo}}. {{outra}}",
    )

    response = bearer(agent).get(f"/api/v1/quick-replies?conversation={conversation.pk}")

    (reply,) = response.json()["results"]
    # one pass: the customer's own "{{agente}}" is left as they wrote it; unknown names stay
    assert reply["text"] == (
        f"Olá {{{{agente}}}} <Maria>, sou Ana Agente. Protocolo {conversation.pk}. {{{{outra}}}}"
    )
    assert reply["body"].startswith("Olá {{nome}}")
    # a conversation out of reach is a 404
    hidden = ConversationFactory()
    assert_error_shape(
        bearer(agent).get(f"/api/v1/quick-replies?conversation={hidden.pk}"), 404, "not_found"
    )


# --- the agent's signature ---------------------------------------------------------------------


def test_a_signing_agent_s_texts_start_with_their_name_and_nothing_else_is_signed(
    support: Any,
) -> None:
    from conversations import services

    ana = UserFactory(name="Ana", departments=[support], signature_enabled=True)
    conversation = ConversationFactory(
        department=support, assigned_to=ana, status=ConversationStatus.OPEN
    )
    client = bearer(ana)

    signed = client.post(
        "/api/v1/messages", {"conversation": conversation.pk, "body": "Olá!"}, format="json"
    )

    assert signed.json()["body"] == "*Ana:*\nOlá!"
    # sent again (a retry): signed once
    again = services.message_create_outbound(
        conversation=conversation, actor=ana, body=signed.json()["body"]
    )
    assert again.body == "*Ana:*\nOlá!"
    # the bot is never signed
    bot = services.message_create_outbound(conversation=conversation, actor=None, body="Menu")
    assert bot.body == "Menu"
    # nor a template
    from whatsapp.models import MessageTemplate

    MessageTemplate.objects.create(
        account=conversation.whatsapp_account,
        name="pedido",
        language="pt_BR",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Seu pedido saiu"}],
    )
    template = client.post(
        "/api/v1/messages",
        {"conversation": conversation.pk, "template": {"name": "pedido", "language": "pt_BR"}},
        format="json",
    )
    assert template.status_code == 201, template.content
    assert not template.json()["body"].startswith("*Ana:*")
    # turned off: plain text again
    ana.signature_enabled = False
    ana.save()
    plain = client.post(
        "/api/v1/messages", {"conversation": conversation.pk, "body": "Tchau"}, format="json"
    )
    assert plain.json()["body"] == "Tchau"
    assert Message.objects.filter(body__startswith="*Ana:*").count() == 2
