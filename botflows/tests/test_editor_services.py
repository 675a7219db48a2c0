"""The flow editor's services: every edit changes the draft rows only, is audited and checked."""

import pytest

from accounts.models import AuditAction, AuditLogEntry
from botflows import services
from botflows.models import FlowNode, MenuOption, NodeKind, OptionAction, Validation
from botflows.tests.conftest import Chat
from common.exceptions import NotPermitted, ServiceError

pytestmark = pytest.mark.django_db


def _menu(flow) -> FlowNode:
    return flow.nodes.get(key="menu")


def _titles(menu: FlowNode) -> list[tuple[int, str]]:
    return list(menu.options.order_by("number").values_list("number", "title"))


# --- nodes -------------------------------------------------------------------------------------


def test_admin_adds_a_node_at_the_end_and_it_is_audited(admin_user, demo_flow):
    node = services.flow_node_create(
        actor=admin_user,
        flow=demo_flow,
        key="order",
        kind=NodeKind.COLLECT,
        text="What is your order number?",
        field_name="order",
        validation=Validation.NUMBER,
    )

    assert node.position == 2 and node.flow == demo_flow
    entry = AuditLogEntry.objects.get(target_type="botflows.flownode", target_id=str(node.pk))
    assert entry.action == AuditAction.CONFIG_CHANGED and entry.actor == admin_user
    assert entry.after["created"]["key"] == "order"
    assert demo_flow.versions.count() == 1  # nothing published


def test_the_first_node_of_an_empty_flow_becomes_its_start(admin_user):
    from botflows.models import Flow

    flow = Flow.objects.create(name="Vendas")

    node = services.flow_node_create(actor=admin_user, flow=flow, key="hi", kind=NodeKind.END)

    flow.refresh_from_db()
    assert flow.start_node == node


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"key": "menu", "kind": NodeKind.MESSAGE}, "key_taken"),
        ({"key": "ask", "kind": NodeKind.COLLECT}, "missing_field"),
        (
            {
                "key": "ask",
                "kind": NodeKind.COLLECT,
                "field_name": "cpf",
                "validation": Validation.REGEX,
                "pattern": "([0-9]",
            },
            "invalid_pattern",
        ),
        ({"key": "x", "kind": "teleport"}, "invalid_kind"),
    ],
)
def test_invalid_nodes_are_refused_with_a_reason(admin_user, demo_flow, fields, code):
    with pytest.raises(ServiceError) as error:
        services.flow_node_create(actor=admin_user, flow=demo_flow, **fields)

    assert error.value.code == code and error.value.message
    assert demo_flow.nodes.count() == 2


def test_next_node_must_be_of_the_same_flow_and_not_itself(admin_user, demo_flow):
    from botflows.models import Flow

    other = Flow.objects.create(name="Other")
    elsewhere = FlowNode.objects.create(flow=other, key="x", kind=NodeKind.END)
    greeting = demo_flow.nodes.get(key="greeting")
    fields = {
        "key": "greeting",
        "kind": NodeKind.MESSAGE,
        "text": "Oi",
        "department": None,
        "field_name": "",
        "validation": Validation.TEXT,
        "pattern": "",
        "error_text": "",
        "menu_button": "",
    }

    for target in (elsewhere, greeting):
        with pytest.raises(ServiceError) as error:
            services.flow_node_update(actor=admin_user, node=greeting, next_node=target, **fields)
        assert error.value.code == "invalid_next_node"


def test_admin_edits_a_node_and_the_change_is_audited(admin_user, demo_flow):
    greeting = demo_flow.nodes.get(key="greeting")

    services.flow_node_update(
        actor=admin_user,
        node=greeting,
        key="hello",
        kind=NodeKind.MESSAGE,
        text="Oi! Tudo bem?",
        next_node=_menu(demo_flow),
        department=None,
        field_name="",
        validation=Validation.TEXT,
        pattern="",
        error_text="",
        menu_button="",
    )

    greeting.refresh_from_db()
    assert (greeting.key, greeting.text) == ("hello", "Oi! Tudo bem?")
    entry = AuditLogEntry.objects.get(target_type="botflows.flownode", target_id=str(greeting.pk))
    assert entry.before["text"] == "Hello! Welcome to our customer service."
    assert entry.after["text"] == "Oi! Tudo bem?"


def test_a_menu_with_options_keeps_its_kind(admin_user, demo_flow):
    menu = _menu(demo_flow)
    with pytest.raises(ServiceError) as error:
        services.flow_node_update(
            actor=admin_user,
            node=menu,
            key="menu",
            kind=NodeKind.END,
            text="",
            next_node=None,
            department=None,
            field_name="",
            validation=Validation.TEXT,
            pattern="",
            error_text="",
            menu_button="",
        )
    assert error.value.code == "has_options"


def test_deleting_nodes_never_leaves_a_dangling_step(admin_user, demo_flow):
    menu = _menu(demo_flow)
    greeting = demo_flow.nodes.get(key="greeting")

    # the greeting is the start node; the menu is where the greeting goes on to
    with pytest.raises(ServiceError) as error:
        services.flow_node_delete(actor=admin_user, node=greeting)
    assert error.value.code == "is_start"
    with pytest.raises(ServiceError) as error:
        services.flow_node_delete(actor=admin_user, node=menu)
    assert error.value.code == "in_use" and "greeting" in error.value.message

    # once the menu starts the flow, the greeting can go, and then the menu's options with it
    services.flow_set_start(actor=admin_user, flow=demo_flow, node=menu)
    services.flow_node_delete(actor=admin_user, node=greeting)
    assert list(demo_flow.nodes.values_list("key", flat=True)) == ["menu"]
    services.flow_node_delete(actor=admin_user, node=menu)
    assert not MenuOption.objects.exists()
    assert AuditLogEntry.objects.filter(before__has_key="deleted").count() == 2


def test_the_start_node_must_belong_to_the_flow(admin_user, demo_flow):
    from botflows.models import Flow

    other = FlowNode.objects.create(
        flow=Flow.objects.create(name="Other"), key="x", kind=NodeKind.END
    )
    with pytest.raises(ServiceError):
        services.flow_set_start(actor=admin_user, flow=demo_flow, node=other)


# --- options -----------------------------------------------------------------------------------


def test_admin_adds_edits_moves_and_deletes_options(admin_user, demo_flow, departments):
    menu = _menu(demo_flow)
    greeting = demo_flow.nodes.get(key="greeting")

    option = services.menu_option_create(
        actor=admin_user,
        node=menu,
        title="Start over",
        action=OptionAction.NODE,
        target_node=greeting,
        keywords=" inicio ,, menu ",
        department=departments["Vendas"],  # ignored: the option goes to a node
    )
    assert option.number == 4 and option.keywords == "inicio, menu"
    assert option.department is None

    services.menu_option_update(
        actor=admin_user,
        option=option,
        title="Talk to a person",
        action=OptionAction.HUMAN,
        description="",
        keywords="",
        target_node=greeting,  # ignored: the option goes to a human
        department=None,
    )
    option.refresh_from_db()
    assert option.target_node is None and option.action == OptionAction.HUMAN

    services.menu_option_move(actor=admin_user, option=option, offset=-1)
    assert _titles(menu) == [
        (1, "Suporte"),
        (2, "Vendas"),
        (3, "Talk to a person"),
        (4, "Financeiro"),
    ]
    first = menu.options.get(number=1)
    services.menu_option_move(actor=admin_user, option=first, offset=-1)  # already first
    assert _titles(menu)[0] == (1, "Suporte")

    services.menu_option_delete(actor=admin_user, option=menu.options.get(title="Vendas"))
    assert _titles(menu) == [(1, "Suporte"), (2, "Talk to a person"), (3, "Financeiro")]
    # create, edit, one move (the no-op move is not logged), delete
    assert AuditLogEntry.objects.filter(target_type="botflows.menuoption").count() == 4


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"title": "Ir", "action": OptionAction.NODE}, "invalid_target"),
        ({"title": "Fila", "action": OptionAction.DEPARTMENT}, "missing_department"),
        ({"title": "  ", "action": OptionAction.AI}, "missing_title"),
        ({"title": "?", "action": "teleport"}, "invalid_action"),
    ],
)
def test_invalid_options_are_refused_with_a_reason(admin_user, demo_flow, fields, code):
    with pytest.raises(ServiceError) as error:
        services.menu_option_create(actor=admin_user, node=_menu(demo_flow), **fields)
    assert error.value.code == code
    assert _menu(demo_flow).options.count() == 3


def test_only_menus_have_options(admin_user, demo_flow):
    with pytest.raises(ServiceError) as error:
        services.menu_option_create(
            actor=admin_user,
            node=demo_flow.nodes.get(key="greeting"),
            title="Oops",
            action=OptionAction.AI,
        )
    assert error.value.code == "not_a_menu"


def test_only_admins_edit_flows(agent, supervisor, demo_flow):
    menu = _menu(demo_flow)
    option = menu.options.first()
    for actor in (agent, supervisor, None):
        with pytest.raises(NotPermitted):
            services.flow_node_create(actor=actor, flow=demo_flow, key="x", kind=NodeKind.END)
        with pytest.raises(NotPermitted):
            services.flow_node_delete(actor=actor, node=menu)
        with pytest.raises(NotPermitted):
            services.flow_set_start(actor=actor, flow=demo_flow, node=menu)
        with pytest.raises(NotPermitted):
            services.menu_option_create(actor=actor, node=menu, title="x", action=OptionAction.AI)
        with pytest.raises(NotPermitted):
            services.menu_option_delete(actor=actor, option=option)
        with pytest.raises(NotPermitted):
            services.menu_option_move(actor=actor, option=option, offset=1)
    assert demo_flow.nodes.count() == 2 and menu.options.count() == 3
    assert not AuditLogEntry.objects.exists()


# --- what customers see ------------------------------------------------------------------------


def test_edits_reach_customers_only_once_published(admin_user, demo_flow, conversation):
    services.menu_option_create(
        actor=admin_user, node=_menu(demo_flow), title="Falar com a IA", action=OptionAction.AI
    )

    replies = Chat(conversation).say("Oi")
    assert "4. Falar com a IA" not in replies[-1].body

    services.flow_publish(flow=demo_flow, actor=admin_user)
    from conversations.tests.factories import ConversationFactory

    fresh = Chat(ConversationFactory(status="bot")).say("Oi")
    assert "4. Falar com a IA" in fresh[-1].body
