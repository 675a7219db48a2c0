"""The flow engine, driven the way WhatsApp intake drives it: an inbound message, then the task."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from botflows import engine, services
from botflows.models import (
    BotSession,
    BotTurn,
    Flow,
    FlowNode,
    MenuOption,
    NodeKind,
    OptionAction,
    Validation,
)
from conversations.models import ConversationEvent, ConversationStatus, EventKind
from conversations.services import message_record_inbound
from conversations.tests.factories import ConversationFactory

from .conftest import Chat

pytestmark = pytest.mark.django_db


def _button(reply_id: str, title: str) -> dict:
    return {
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}},
    }


# --- The demo menu (contract §3) ---------------------------------------------------------------


def test_first_message_gets_the_greeting_menu_as_reply_buttons(demo_flow, chat):
    replies = chat.say("Olá")

    assert len(replies) == 2
    assert replies[0].body == "Hello! Welcome to our customer service."
    menu = replies[1]
    assert menu.type == "interactive"
    assert menu.sender == "bot"
    assert menu.status == "queued"
    assert "1. Suporte" in menu.body and "2. Vendas" in menu.body and "3. Financeiro" in menu.body
    interactive = menu.raw_payload["interactive"]
    assert interactive["type"] == "button"
    buttons = interactive["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Suporte", "Vendas", "Financeiro"]
    assert all(len(b["reply"]["title"]) <= 20 for b in buttons)
    assert chat.conversation.status == ConversationStatus.BOT


@pytest.mark.parametrize(
    ("answer", "raw", "department"),
    [
        ("2", None, "Vendas"),
        (" 3. ", None, "Financeiro"),
        ("Suporte", _button("menu:1", "Suporte"), "Suporte"),
        ("", _button("menu:3", "Financeiro"), "Financeiro"),
        (
            "",
            {
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "menu:2", "title": "Vendas"},
                },
            },
            "Vendas",
        ),
        ("FINANCEIRO", None, "Financeiro"),
        ("suporté", None, "Suporte"),
        ("quero falar com vendas por favor", None, "Vendas"),
    ],
)
def test_menu_choice_by_number_id_or_words_routes_to_the_department(
    demo_flow, chat, answer, raw, department
):
    chat.say("oi")

    replies = chat.say(answer, raw=raw, type="interactive" if raw else "text")

    conversation = chat.conversation
    assert conversation.status == ConversationStatus.PENDING
    assert conversation.department.name == department
    assert conversation.assigned_to is None
    assert len(replies) == 1
    assert department in replies[0].body
    assert "number 1 in the queue" in replies[0].body
    event = ConversationEvent.objects.filter(conversation=conversation, kind=EventKind.QUEUED).get()
    assert event.actor is None
    assert event.after["department"] == conversation.department_id


def test_place_in_queue_counts_who_waits_before(demo_flow, departments):
    first, second = Chat(ConversationFactory(status="bot")), Chat(ConversationFactory(status="bot"))
    for customer in (first, second):
        customer.say("oi")

    first.say("1")
    reply = second.say("1")

    assert "number 2 in the queue" in reply[0].body


def test_invalid_answer_gets_a_friendly_retry_then_the_human_queue(demo_flow, chat):
    chat.say("oi")

    retry = chat.say("7")
    assert len(retry) == 1
    assert retry[0].body.startswith("Sorry, I did not understand.")
    assert retry[0].type == "interactive"  # the menu comes again
    assert chat.conversation.status == ConversationStatus.BOT

    chat.say("banana")
    handed = chat.say("xyz")

    assert chat.conversation.status == ConversationStatus.PENDING
    assert chat.conversation.department is None
    assert "agents" in handed[0].body


@pytest.mark.parametrize("words", ["quero um ATENDENTE", "Humano!", "posso falar com alguém?"])
def test_handoff_keywords_reach_a_human_at_any_point(demo_flow, chat, words):
    chat.say("oi")

    replies = chat.say(words)

    assert chat.conversation.status == ConversationStatus.PENDING
    assert len(replies) == 1
    assert "in the queue" in replies[0].body


def test_handoff_keywords_are_configurable(demo_flow, chat, admin_user):
    services.bot_config_set(key="handoff_keywords", value=["gerente"], actor=admin_user)
    chat.say("oi")

    chat.say("atendente")  # no longer a keyword: just an invalid answer
    assert chat.conversation.status == ConversationStatus.BOT
    chat.say("quero o GERENTE")
    assert chat.conversation.status == ConversationStatus.PENDING


def test_the_same_message_is_answered_once(demo_flow, chat):
    from botflows.tasks import bot_handle_message

    chat.say("oi")
    message = chat.last_inbound

    bot_handle_message.delay(message.pk)
    engine.bot_handle_inbound(message_id=message.pk)

    assert chat.outbound().count() == 2  # greeting and menu, once
    assert BotTurn.objects.filter(inbound_message=message).count() == 1


def test_an_older_message_arriving_late_is_not_answered(demo_flow, chat):
    from conversations.services import message_record_inbound

    late, _ = message_record_inbound(conversation=chat.conversation, body="1", wa_message_id="w1")
    chat.say("oi")  # handled first
    engine.bot_handle_inbound(message_id=late.pk)

    assert chat.outbound().count() == 2
    assert BotTurn.objects.get(inbound_message=late).outcome == "stale"
    assert chat.conversation.status == ConversationStatus.BOT


def test_conversations_not_with_the_bot_are_left_to_agents(demo_flow, chat):
    chat.conversation.status = ConversationStatus.OPEN
    chat.conversation.save()

    assert chat.say("oi") == []
    assert not BotSession.objects.exists()


def test_without_any_flow_the_customer_still_reaches_a_human(db, chat):
    replies = chat.say("oi")

    assert chat.conversation.status == ConversationStatus.PENDING
    assert len(replies) == 1


# --- Every node kind ---------------------------------------------------------------------------


@pytest.fixture
def order_flow(departments):
    """message → collect name → collect e-mail → menu (1 order number, 2 Vendas, 3 human) …"""
    flow = Flow.objects.create(name="Pedidos", is_default=True)
    node = lambda key, kind, **kw: FlowNode.objects.create(flow=flow, key=key, kind=kind, **kw)  # noqa: E731
    end = node("bye", NodeKind.END, text="Thanks, bye!")
    order = node(
        "order",
        NodeKind.COLLECT,
        text="Your order number?",
        field_name="order",
        validation=Validation.NUMBER,
        next_node=end,
    )
    menu = node("menu", NodeKind.MENU, text="What now?")
    MenuOption.objects.create(
        node=menu, number=1, title="Order status", action=OptionAction.NODE, target_node=order
    )
    MenuOption.objects.create(
        node=menu,
        number=2,
        title="Vendas",
        action=OptionAction.DEPARTMENT,
        department=departments["Vendas"],
    )
    MenuOption.objects.create(
        node=menu, number=3, title="Someone", keywords="pessoa real", action=OptionAction.HUMAN
    )
    email = node(
        "email",
        NodeKind.COLLECT,
        text="Your e-mail?",
        field_name="email",
        validation=Validation.EMAIL,
        next_node=menu,
    )
    name = node(
        "name",
        NodeKind.COLLECT,
        text="Your name?",
        field_name="name",
        validation=Validation.NAME,
        next_node=email,
    )
    hello = node("hello", NodeKind.MESSAGE, text="Hi! I am the bot.", next_node=name)
    flow.start_node = hello
    flow.save()
    services.flow_publish(flow=flow, actor=None)
    return flow


def test_message_nodes_chain_into_the_first_question(order_flow, chat):
    replies = chat.say("oi")

    assert [r.body for r in replies] == ["Hi! I am the bot.", "Your name?"]
    assert all(r.type == "text" for r in replies)


def test_collected_values_are_validated_and_stored_then_the_flow_ends(order_flow, chat):
    chat.say("oi")
    assert [r.body for r in chat.say("Maria  da Silva")] == ["Your e-mail?"]

    retry = chat.say("maria at example")
    assert "e-mail address" in retry[0].body
    assert chat.say("Maria@Example.com")[0].type == "interactive"
    assert "order number" in chat.say("1")[0].body
    assert chat.say("abc")[0].body == "Please type numbers only."
    bye = chat.say("# 123-45")

    assert [r.body for r in bye] == ["Thanks, bye!"]
    session = BotSession.objects.get(conversation=chat.conversation)
    assert session.collected == {
        "name": "Maria da Silva",
        "email": "maria@example.com",
        "order": "12345",
    }
    assert chat.conversation.status == ConversationStatus.CLOSED
    assert session.state == "ended"


def test_menu_option_to_a_human_node(order_flow, chat):
    for text in ("oi", "Ana Souza", "ana@example.com"):
        chat.say(text)

    chat.say("quero uma pessoa real")

    assert chat.conversation.status == ConversationStatus.PENDING
    assert chat.conversation.department is None


def test_human_node_with_department_and_text(departments, chat):
    flow = Flow.objects.create(name="Direto", is_default=True)
    flow.start_node = FlowNode.objects.create(
        flow=flow,
        key="direct",
        kind=NodeKind.HUMAN,
        text="Passing you to {department}.",
        department=departments["Financeiro"],
    )
    flow.save()
    services.flow_publish(flow=flow, actor=None)

    replies = chat.say("oi")

    assert replies[0].body.startswith("Passing you to Financeiro.")
    assert chat.conversation.department == departments["Financeiro"]


def test_a_flow_per_whatsapp_number(demo_flow, departments, conversation):
    own = Flow.objects.create(name="Loja", whatsapp_account=conversation.whatsapp_account)
    own.start_node = FlowNode.objects.create(
        flow=own, key="hi", kind=NodeKind.MESSAGE, text="Welcome to the shop"
    )
    own.save()
    services.flow_publish(flow=own, actor=None)

    assert [m.body for m in Chat(conversation).say("oi")] == ["Welcome to the shop"]
    other = Chat(ConversationFactory(status="bot"))
    assert other.say("oi")[-1].type == "interactive"  # the default flow


@pytest.mark.parametrize(
    ("validation", "text", "value"),
    [
        (Validation.TEXT, "  anything ", "anything"),
        (Validation.NAME, "José D'Ávila", "José D'Ávila"),
        (Validation.NAME, "12345", None),
        (Validation.EMAIL, "a@b", None),
        (Validation.NUMBER, "12 34", "1234"),
        (Validation.PHONE, "(11) 98765-4321", "+5511987654321"),
        (Validation.PHONE, "123", None),
    ],
)
def test_validations(validation, text, value):
    assert engine.validate_value(node={"validation": validation}, text=text) == value


def test_regex_validation():
    node = {"validation": Validation.REGEX, "pattern": r"[A-Z]{2}\d{4}"}
    assert engine.validate_value(node=node, text="AB1234") == "AB1234"
    assert engine.validate_value(node=node, text="ab1234") is None


# --- Rendering ---------------------------------------------------------------------------------


def _menu(count: int, title: str = "Option") -> dict:
    return {
        "kind": "menu",
        "text": "Pick one",
        "menu_button": "",
        "options": [
            {"number": n, "title": f"{title} {n}", "description": "", "keywords": [], "target": "x"}
            for n in range(1, count + 1)
        ],
    }


def test_four_options_go_out_as_a_list():
    body, kind, interactive = engine.render_menu(node_key="m", node=_menu(4))

    assert kind == "interactive"
    assert interactive["type"] == "list"
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == ["m:1", "m:2", "m:3", "m:4"]
    assert len(interactive["action"]["button"]) <= 20
    assert "4. Option 4" in body


def test_menus_beyond_meta_limits_go_out_as_numbered_text():
    body, kind, interactive = engine.render_menu(node_key="m", node=_menu(11))
    assert (kind, interactive) == ("text", None)
    assert body.endswith("11. Option 11")

    _body, kind, interactive = engine.render_menu(
        node_key="m", node=_menu(2, "A very long title, yes")
    )
    assert kind == "interactive" and interactive["type"] == "list"  # > 20 chars: no buttons

    _body, kind, _i = engine.render_menu(node_key="m", node=_menu(2, "Far too long for any row"))
    assert kind == "text"


# --- Versioning --------------------------------------------------------------------------------


def test_publishing_does_not_change_conversations_in_progress(demo_flow, departments, chat):
    chat.say("oi")  # at the menu of version 1
    option = MenuOption.objects.get(node__flow=demo_flow, number=2)
    option.department = departments["Financeiro"]
    option.save()
    version = services.flow_publish(flow=demo_flow, actor=None)
    assert version.number == 2

    chat.say("2")
    assert chat.conversation.department.name == "Vendas"  # version 1

    newcomer = Chat(ConversationFactory(status="bot"))
    newcomer.say("oi")
    newcomer.say("2")
    assert newcomer.conversation.department.name == "Financeiro"  # version 2


def test_demo_flow_is_idempotent(departments):
    first = services.flow_ensure_demo()
    second = services.flow_ensure_demo()

    assert first == second
    assert Flow.objects.count() == 1
    assert first.versions.count() == 1
    assert MenuOption.objects.filter(node__flow=first).count() == 3


def test_demo_flow_uses_the_seeded_greeting_and_menu(departments, chat, admin_user):
    services.bot_config_set(key="greeting", value="Olá! Bem-vindo.", actor=admin_user)
    menu = {
        "text": "Como podemos ajudar?",
        "button": "Ver opções",
        "options": [
            {"id": "1", "label": "Suporte", "department": "Suporte"},
            {"id": "2", "label": "Vendas", "department": "Vendas"},
            {"id": "3", "label": "Financeiro", "department": "Financeiro"},
        ],
    }
    services.bot_config_set(key="menu", value=menu, actor=admin_user)
    services.flow_ensure_demo()

    greeting, menu_message = chat.say("oi")

    assert greeting.body == "Olá! Bem-vindo."
    assert menu_message.body == "Como podemos ajudar?\n\n1. Suporte\n2. Vendas\n3. Financeiro"


def test_publishing_refuses_broken_flows(departments):
    from common.exceptions import ServiceError

    flow = Flow.objects.create(name="Broken")
    with pytest.raises(ServiceError):
        services.flow_publish(flow=flow, actor=None)
    menu = FlowNode.objects.create(flow=flow, key="m", kind=NodeKind.MENU, text="?")
    with pytest.raises(ServiceError):
        services.flow_publish(flow=flow, actor=None)
    MenuOption.objects.create(node=menu, number=1, title="Go", action=OptionAction.NODE)
    with pytest.raises(ServiceError):
        services.flow_publish(flow=flow, actor=None)
    MenuOption.objects.filter(node=menu).update(action=OptionAction.HUMAN)
    elsewhere = FlowNode.objects.create(
        flow=Flow.objects.create(name="Other"), key="x", kind=NodeKind.END
    )
    FlowNode.objects.create(flow=flow, key="hi", kind=NodeKind.MESSAGE, next_node=elsewhere)
    with pytest.raises(ServiceError) as error:
        services.flow_publish(flow=flow, actor=None)
    assert error.value.code == "invalid_target"
    FlowNode.objects.filter(key="hi").update(next_node=menu)
    assert services.flow_publish(flow=flow, actor=None).number == 1


def test_handoff_department_setting_routes_unnamed_hand_overs(demo_flow, chat, admin_user):
    services.bot_config_set(key="handoff_department", value="financeiro", actor=admin_user)
    chat.say("oi")

    chat.say("quero um atendente")

    assert chat.conversation.department.name == "Financeiro"


def test_now_can_be_passed(demo_flow, chat):
    replies = chat.say("oi", now=datetime(2026, 11, 24, 12, tzinfo=UTC))
    assert len(replies) == 2


def test_the_bot_speaks_the_desk_language(demo_flow, chat):
    from django.utils import translation

    chat.say("oi")
    with translation.override("pt-br"):
        replies = chat.say("2")

    assert "Vendas" in replies[0].body
    assert "na fila" in replies[0].body


def test_an_answer_to_a_menu_sent_before_the_bot_session_existed(demo_flow, conversation):
    """seed_demo writes the greeting and menu itself; the customer's "1" must still route."""
    from conversations.services import message_create_outbound

    message_create_outbound(conversation=conversation, actor=None, body="1 - Suporte ...")
    chat = Chat(conversation)

    replies = chat.say("1")

    assert chat.conversation.status == ConversationStatus.PENDING
    assert chat.conversation.department.name == "Suporte"
    assert len(replies) == 1


def test_a_message_answered_too_late_for_whatsapp_is_recorded_not_crashed(demo_flow):
    """Meta redelivers for days: past the 24-hour window the bot cannot answer any more."""
    from datetime import timedelta

    from django.utils import timezone

    from conversations.services import message_record_inbound

    conversation = ConversationFactory(
        status="bot", last_inbound_at=timezone.now() - timedelta(days=3)
    )
    old, _ = message_record_inbound(
        conversation=conversation,
        body="oi",
        wa_message_id="wamid.old",
        wa_timestamp=timezone.now() - timedelta(days=2),
    )

    turn = engine.bot_handle_inbound(message_id=old.pk)

    assert turn.outcome == "failed:window_closed"
    assert not conversation.messages.filter(direction="out").exists()
    assert engine.bot_handle_inbound(message_id=old.pk) is None  # and not retried forever


# --- The cost of a turn (issue 15 §8) ------------------------------------------------------------


def test_a_new_customers_first_turn_costs_a_fixed_number_of_queries(demo_flow, chat):
    """Greeting and menu are written together: one INSERT of both replies and one UPDATE of the
    conversation, under the turn's one lock; the count is pinned."""
    inbound, _ = message_record_inbound(
        conversation=chat.conversation, type="text", body="Olá", wa_message_id="wamid.cost.1"
    )
    with CaptureQueriesContext(connection) as queries:
        turn = engine.bot_handle_inbound(message_id=inbound.pk)

    assert turn is not None and turn.outcome == "menu"
    assert [r.type for r in chat.outbound().order_by("pk")] == ["text", "interactive"]
    sql = [q["sql"] for q in queries.captured_queries]
    assert len([q for q in sql if q.startswith('INSERT INTO "conversations_message"')]) == 1
    locks = [
        q for q in sql if q.startswith('SELECT "conversations_conversation"') and "FOR UPDATE" in q
    ]
    assert len(locks) == (1 if connection.vendor == "postgresql" else 0)  # SQLite: no row locks
    assert len(sql) == 20
