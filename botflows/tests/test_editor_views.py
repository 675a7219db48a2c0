"""The console's flow editor at /bot/flows/<id>/: admins only, forms with field errors, htmx
partials, a fixed number of queries, and versions that conversations in progress keep."""

import pytest
from django.urls import reverse

from botflows.models import BotSession, Flow, FlowNode, MenuOption, NodeKind, OptionAction
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory

from .conftest import Chat

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _editor(flow: Flow) -> str:
    return reverse("botflows:flow_editor", args=[flow.pk])


def _node_post(**fields) -> dict:
    return {
        "key": "",
        "kind": NodeKind.MESSAGE,
        "text": "",
        "next_node": "",
        "department": "",
        "field_name": "",
        "validation": "text",
        "pattern": "",
        "error_text": "",
        "menu_button": "",
        **fields,
    }


def _option_post(**fields) -> dict:
    return {
        "title": "",
        "description": "",
        "keywords": "",
        "action": OptionAction.AI,
        "target_node": "",
        "department": "",
        **fields,
    }


def test_admin_sees_the_flow_with_nodes_options_and_forms(client, admin_user, demo_flow):
    client.force_login(admin_user)

    html = client.get(_editor(demo_flow)).content.decode()

    assert "Main menu" in html and "version 1 live" in html
    assert "Hello! Welcome to our customer service." in html
    assert "Suporte" in html and "Department queue: Financeiro" in html
    assert "Add a node" in html and "Publish" in html
    assert 'hx-confirm="Delete node greeting and its options?"' in html
    assert 'hx-confirm="Delete the option “Vendas”?"' in html


def test_settings_page_links_to_the_editor(client, admin_user, demo_flow):
    client.force_login(admin_user)

    html = client.get(reverse("botflows:settings")).content.decode()

    assert f'href="{_editor(demo_flow)}"' in html


def test_a_flow_without_nodes_says_so(client, admin_user):
    flow = Flow.objects.create(name="Vendas")
    client.force_login(admin_user)

    html = client.get(_editor(flow)).content.decode()

    assert "This flow has no nodes yet." in html


def test_an_empty_menu_says_so(client, admin_user):
    flow = Flow.objects.create(name="Vendas")
    FlowNode.objects.create(flow=flow, key="menu", kind=NodeKind.MENU)
    client.force_login(admin_user)

    html = client.get(_editor(flow)).content.decode()

    assert "This menu has no options yet" in html


def test_an_unknown_flow_is_404(client, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("botflows:flow_editor", args=[999])).status_code == 404


def test_agents_and_supervisors_get_403_everywhere(client, agent, supervisor, demo_flow):
    menu = demo_flow.nodes.get(key="menu")
    option = menu.options.first()
    urls = [
        ("get", _editor(demo_flow)),
        ("get", reverse("botflows:node_edit", args=[demo_flow.pk, menu.pk])),
        ("post", reverse("botflows:node_create", args=[demo_flow.pk])),
        ("post", reverse("botflows:node_edit", args=[demo_flow.pk, menu.pk])),
        ("post", reverse("botflows:node_delete", args=[demo_flow.pk, menu.pk])),
        ("post", reverse("botflows:node_set_start", args=[demo_flow.pk, menu.pk])),
        ("post", reverse("botflows:option_create", args=[demo_flow.pk, menu.pk])),
        ("post", reverse("botflows:option_edit", args=[demo_flow.pk, option.pk])),
        ("post", reverse("botflows:option_delete", args=[demo_flow.pk, option.pk])),
        ("post", reverse("botflows:option_move", args=[demo_flow.pk, option.pk])),
    ]
    for user in (agent, supervisor):
        client.force_login(user)
        for method, url in urls:
            data = _node_post(key="x") if method == "post" else None
            assert getattr(client, method)(url, data).status_code == 403, (user, url)
    assert demo_flow.nodes.count() == 2 and menu.options.count() == 3


def test_admin_adds_a_node_with_htmx_and_gets_the_fresh_editor(client, admin_user, demo_flow):
    client.force_login(admin_user)
    menu = demo_flow.nodes.get(key="menu")

    response = client.post(
        reverse("botflows:node_create", args=[demo_flow.pk]),
        _node_post(key="bye", kind=NodeKind.END, text="Até logo!", next_node=menu.pk),
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="flow-editor"' in html  # the partial only
    assert "Node bye added." in html and "Até logo!" in html
    assert demo_flow.nodes.filter(key="bye", kind=NodeKind.END).exists()


def test_without_htmx_a_saved_form_redirects_to_the_editor(client, admin_user, demo_flow):
    client.force_login(admin_user)

    response = client.post(
        reverse("botflows:node_create", args=[demo_flow.pk]),
        _node_post(key="bye", kind=NodeKind.END),
        follow=True,
    )

    assert response.redirect_chain == [(_editor(demo_flow), 302)]
    assert "Node bye added." in response.content.decode()


def test_node_form_shows_field_errors(client, admin_user, demo_flow):
    client.force_login(admin_user)
    url = reverse("botflows:node_create", args=[demo_flow.pk])

    missing = client.post(url, _node_post(kind=NodeKind.MESSAGE), headers=HTMX).content.decode()
    taken = client.post(url, _node_post(key="menu"), headers=HTMX).content.decode()
    collect = client.post(
        url, _node_post(key="cpf", kind=NodeKind.COLLECT), headers=HTMX
    ).content.decode()

    assert 'id="node-new-key"' in missing and "This field is required." in missing
    assert "This flow already has a node called menu." in taken
    # the error sits under its field
    assert '<div class="field has-error">\n  <label for="node-new-key">' in taken.replace("\r", "")
    assert "Name the field this node collects." in collect
    assert demo_flow.nodes.count() == 2


def test_admin_edits_a_node(client, admin_user, demo_flow):
    client.force_login(admin_user)
    greeting = demo_flow.nodes.get(key="greeting")
    url = reverse("botflows:node_edit", args=[demo_flow.pk, greeting.pk])

    form = client.get(url, headers=HTMX).content.decode()
    assert "Edit node greeting" in form and "Save node" in form

    html = client.post(
        url,
        _node_post(key="greeting", text="Oi, tudo bem?", next_node=greeting.next_node_id),
        headers=HTMX,
    ).content.decode()

    assert "Node greeting saved." in html and "Oi, tudo bem?" in html
    greeting.refresh_from_db()
    assert greeting.text == "Oi, tudo bem?"


def test_deleting_a_node_in_use_is_explained(client, admin_user, demo_flow):
    client.force_login(admin_user)
    menu = demo_flow.nodes.get(key="menu")

    html = client.post(
        reverse("botflows:node_delete", args=[demo_flow.pk, menu.pk]), headers=HTMX
    ).content.decode()

    assert "menu is still used by greeting: change those first." in html
    assert FlowNode.objects.filter(pk=menu.pk).exists()


def test_admin_sets_the_start_node_and_deletes_the_old_one(client, admin_user, demo_flow):
    client.force_login(admin_user)
    menu = demo_flow.nodes.get(key="menu")
    greeting = demo_flow.nodes.get(key="greeting")

    html = client.post(
        reverse("botflows:node_set_start", args=[demo_flow.pk, menu.pk]), headers=HTMX
    ).content.decode()
    assert "Conversations now start at menu." in html
    html = client.post(
        reverse("botflows:node_delete", args=[demo_flow.pk, greeting.pk]), headers=HTMX
    ).content.decode()

    assert "Node greeting deleted." in html
    demo_flow.refresh_from_db()
    assert demo_flow.start_node == menu


def test_admin_adds_edits_moves_and_deletes_an_option(client, admin_user, demo_flow, departments):
    client.force_login(admin_user)
    menu = demo_flow.nodes.get(key="menu")
    create = reverse("botflows:option_create", args=[demo_flow.pk, menu.pk])

    form = client.get(create, headers=HTMX).content.decode()
    assert "New option of menu" in form
    html = client.post(
        create, _option_post(title="Ouvidoria", action=OptionAction.HUMAN), headers=HTMX
    ).content.decode()
    assert "Option 4 added to menu." in html
    option = menu.options.get(number=4)

    edit = reverse("botflows:option_edit", args=[demo_flow.pk, option.pk])
    html = client.post(
        edit,
        _option_post(
            title="Cobrança",
            action=OptionAction.DEPARTMENT,
            department=departments["Financeiro"].pk,
        ),
        headers=HTMX,
    ).content.decode()
    assert "Option 4 saved." in html and "Department queue: Financeiro" in html

    move = reverse("botflows:option_move", args=[demo_flow.pk, option.pk])
    html = client.post(move, {"direction": "up"}, headers=HTMX).content.decode()
    assert "“Cobrança” is now option 3." in html
    assert list(menu.options.values_list("title", flat=True)) == [
        "Suporte",
        "Vendas",
        "Cobrança",
        "Financeiro",
    ]

    delete = reverse("botflows:option_delete", args=[demo_flow.pk, option.pk])
    html = client.post(delete, headers=HTMX).content.decode()
    assert "Option “Cobrança” deleted." in html
    assert list(menu.options.values_list("number", "title")) == [
        (1, "Suporte"),
        (2, "Vendas"),
        (3, "Financeiro"),
    ]


def test_option_form_shows_field_errors(client, admin_user, demo_flow):
    client.force_login(admin_user)
    menu = demo_flow.nodes.get(key="menu")
    url = reverse("botflows:option_create", args=[demo_flow.pk, menu.pk])

    no_target = client.post(
        url, _option_post(title="Ir", action=OptionAction.NODE), headers=HTMX
    ).content.decode()
    no_queue = client.post(
        url, _option_post(title="Fila", action=OptionAction.DEPARTMENT), headers=HTMX
    ).content.decode()
    too_long = client.post(url, _option_post(title="x" * 25), headers=HTMX).content.decode()

    assert "Choose the node of this flow the option leads to." in no_target
    assert "Choose the department whose queue the option leads to." in no_queue
    assert "Ensure this value has at most 24 characters" in too_long
    assert menu.options.count() == 3


def test_options_of_another_flow_are_404(client, admin_user, demo_flow):
    other = Flow.objects.create(name="Other")
    client.force_login(admin_user)
    option = MenuOption.objects.first()

    url = reverse("botflows:option_delete", args=[other.pk, option.pk])

    assert client.post(url).status_code == 404
    assert MenuOption.objects.filter(pk=option.pk).exists()


def _grow(flow: Flow, count: int, *, start: int = 0) -> None:
    """More menus, each with an option back to the main menu and one to a queue."""
    menu = flow.nodes.get(key="menu")
    for index in range(start, start + count):
        node = FlowNode.objects.create(
            flow=flow, key=f"m{index}", kind=NodeKind.MENU, position=10 + index, next_node=menu
        )
        MenuOption.objects.create(
            node=node, number=1, title="Back", action=OptionAction.NODE, target_node=menu
        )
        MenuOption.objects.create(
            node=node,
            number=2,
            title="Queue",
            action=OptionAction.DEPARTMENT,
            department=menu.options.first().department,
        )


def test_the_editor_costs_the_same_queries_for_3_or_13_nodes(
    client, admin_user, demo_flow, django_assert_num_queries
):
    client.force_login(admin_user)
    url = _editor(demo_flow)
    _grow(demo_flow, 1)
    # session, user, flow, nodes, options, target nodes, departments, versions, the new-node
    # form's three choice lists (next, fallback, department) and the flow settings form's numbers
    with django_assert_num_queries(11):
        assert client.get(url).status_code == 200

    _grow(demo_flow, 10, start=1)

    with django_assert_num_queries(11):
        html = client.get(url).content.decode()
    assert "m9" in html


# --- versions: what conversations in progress keep ---------------------------------------------


def test_a_conversation_in_progress_keeps_its_version_after_console_edits(
    client, admin_user, demo_flow, departments
):
    # given: a customer who already has the menu of version 1
    ongoing = Chat(ConversationFactory(status=ConversationStatus.BOT))
    ongoing.say("Oi")
    v1 = BotSession.objects.get(conversation=ongoing.conversation).flow_version

    # when: an admin renames option 2 and sends it to Financeiro in the console, and publishes
    client.force_login(admin_user)
    option = demo_flow.nodes.get(key="menu").options.get(number=2)
    client.post(
        reverse("botflows:option_edit", args=[demo_flow.pk, option.pk]),
        _option_post(
            title="Boletos",
            action=OptionAction.DEPARTMENT,
            department=departments["Financeiro"].pk,
        ),
    )
    page = client.post(
        reverse("botflows:flow_publish", args=[demo_flow.pk]),
        {"return_to": "editor"},
        follow=True,
    )
    assert "version 2 is live" in page.content.decode()
    assert page.redirect_chain[-1][0] == _editor(demo_flow)

    # then: the customer in progress still gets version 1's option 2 (Vendas)
    ongoing.say("2")
    assert ongoing.conversation.department == departments["Vendas"]
    assert BotSession.objects.get(conversation=ongoing.conversation).flow_version == v1
    v1.refresh_from_db()
    assert v1.definition["nodes"]["menu"]["options"][1]["title"] == "Vendas"

    # and a new customer gets version 2
    fresh = Chat(ConversationFactory(status=ConversationStatus.BOT))
    menu = fresh.say("Oi")[-1]
    assert "2. Boletos" in menu.body
    fresh.say("2")
    assert fresh.conversation.department == departments["Financeiro"]


def test_the_editor_speaks_portuguese(client, admin_user, demo_flow):
    client.force_login(admin_user)
    client.cookies["django_language"] = "pt-br"

    html = client.get(_editor(demo_flow)).content.decode()

    assert "Adicionar um nó" in html and "Adicionar opção" in html
    assert "As alterações aqui são um rascunho" in html
