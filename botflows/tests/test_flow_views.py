"""Managing flows from the console: /bot/ creates them, the editor changes and deletes them —
admins only, errors on their fields, htmx partials, and a fixed number of queries."""

import pytest
from django.urls import reverse

from botflows import services
from botflows.models import Flow, FlowNode, MenuOption, NodeKind, OptionAction
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory
from whatsapp.tests.factories import WhatsAppAccountFactory

from .conftest import Chat

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
SETTINGS = reverse("botflows:settings")


def _flow_post(**fields) -> dict:
    return {"name": "", "whatsapp_account": "", "is_active": "on", **fields}


def _editor(flow: Flow) -> str:
    return reverse("botflows:flow_editor", args=[flow.pk])


def test_an_empty_bot_page_explains_and_offers_the_new_flow_form(client, admin_user):
    client.force_login(admin_user)

    html = client.get(SETTINGS).content.decode()

    assert "No flows yet: until there is one" in html
    assert 'id="flow-create"' in html and "Create flow" in html


def test_admin_creates_a_flow_and_lands_in_its_editor(client, admin_user):
    number = WhatsAppAccountFactory(name="Loja")
    client.force_login(admin_user)

    response = client.post(
        reverse("botflows:flow_create"),
        _flow_post(name="Loja", whatsapp_account=number.pk, is_default="on"),
        follow=True,
    )

    flow = Flow.objects.get(name="Loja")
    assert response.redirect_chain == [(_editor(flow), 302)]
    assert "Flow Loja created: add its first node." in response.content.decode()
    assert flow.whatsapp_account == number and flow.is_default and flow.is_active


def test_with_htmx_a_created_flow_redirects_the_whole_page(client, admin_user):
    client.force_login(admin_user)

    response = client.post(reverse("botflows:flow_create"), _flow_post(name="Loja"), headers=HTMX)

    flow = Flow.objects.get(name="Loja")
    assert response.status_code == 200
    assert response["HX-Redirect"] == _editor(flow)


def test_the_new_flow_form_shows_field_errors(client, admin_user):
    taken = WhatsAppAccountFactory(name="Loja")
    Flow.objects.create(name="Loja", whatsapp_account=taken)
    client.force_login(admin_user)
    url = reverse("botflows:flow_create")

    missing = client.post(url, _flow_post(), headers=HTMX).content.decode()
    blank = client.post(url, _flow_post(name="   "), headers=HTMX).content.decode()
    number = client.post(
        url, _flow_post(name="Outra", whatsapp_account=taken.pk), headers=HTMX
    ).content.decode()

    assert "<html" not in missing and 'id="flow-create"' in missing  # the partial only
    assert "This field is required." in missing
    assert "This field is required." in blank
    # a number that already has a flow is not offered, and a stale choice is an error on it
    assert '<div class="field has-error">\n  <label for="flow-new-whatsapp_account">' in number
    assert "Select a valid choice." in number
    assert Flow.objects.count() == 1


def test_a_number_taken_meanwhile_is_explained_on_its_field(client, admin_user, monkeypatch):
    number = WhatsAppAccountFactory(name="Loja")
    client.force_login(admin_user)
    real_create = services.flow_create

    def create_after_another_admin(**kwargs):  # the other admin's flow lands first
        Flow.objects.create(name="Primeiro", whatsapp_account=number)
        return real_create(**kwargs)

    monkeypatch.setattr(services, "flow_create", create_after_another_admin)

    html = client.post(
        reverse("botflows:flow_create"),
        _flow_post(name="Segundo", whatsapp_account=number.pk),
        headers=HTMX,
    ).content.decode()

    assert "already has a flow: Primeiro." in html
    assert '<div class="field has-error">\n  <label for="flow-new-whatsapp_account">' in html
    assert not Flow.objects.filter(name="Segundo").exists()


def test_the_editor_shows_the_flow_settings_and_a_confirmed_delete(client, admin_user, demo_flow):
    client.force_login(admin_user)

    html = client.get(_editor(demo_flow)).content.decode()

    assert "Flow settings" in html and 'id="flow-' in html
    assert f'action="{reverse("botflows:flow_settings", args=[demo_flow.pk])}"' in html
    assert 'hx-confirm="Delete the flow Main menu with its nodes?"' in html


def test_admin_changes_the_flow_settings_with_htmx(client, admin_user, demo_flow):
    number = WhatsAppAccountFactory(name="Loja")
    client.force_login(admin_user)

    html = client.post(
        reverse("botflows:flow_settings", args=[demo_flow.pk]),
        _flow_post(name="Atendimento", whatsapp_account=number.pk, is_default="on"),
        headers=HTMX,
    ).content.decode()

    assert "<html" not in html and 'id="flow-editor"' in html
    assert "Flow Atendimento saved." in html
    demo_flow.refresh_from_db()
    assert demo_flow.name == "Atendimento" and demo_flow.whatsapp_account == number


def test_making_another_flow_default_from_its_editor(client, admin_user, demo_flow):
    other = Flow.objects.create(name="Natal")
    client.force_login(admin_user)

    html = client.post(
        reverse("botflows:flow_settings", args=[other.pk]),
        _flow_post(name="Natal", is_default="on"),
        headers=HTMX,
    ).content.decode()

    assert "Flow Natal saved." in html

    assert list(Flow.objects.filter(is_default=True)) == [other]


def test_un_defaulting_the_default_flow_is_explained_on_its_field(client, admin_user, demo_flow):
    Flow.objects.create(name="Loja")
    client.force_login(admin_user)

    html = client.post(
        reverse("botflows:flow_settings", args=[demo_flow.pk]),
        _flow_post(name="Main menu"),
        headers=HTMX,
    ).content.decode()

    assert "make another flow the default instead" in html
    assert '<div class="field has-error">\n  <label for="flow-' in html
    assert "open" in html.split('id="flow-settings"')[1][:10]
    demo_flow.refresh_from_db()
    assert demo_flow.is_default


def test_admin_deletes_a_flow_and_goes_back_to_the_bot_page(client, admin_user, demo_flow):
    flow = Flow.objects.create(name="Loja")
    client.force_login(admin_user)

    htmx = client.post(reverse("botflows:flow_delete", args=[flow.pk]), headers=HTMX)

    assert htmx["HX-Redirect"] == SETTINGS
    assert not Flow.objects.filter(pk=flow.pk).exists()
    assert "Flow Loja deleted." in client.get(SETTINGS).content.decode()


def test_deleting_a_flow_in_use_is_refused_with_the_reason(client, admin_user, demo_flow):
    Chat(ConversationFactory(status=ConversationStatus.BOT)).say("Oi")
    client.force_login(admin_user)

    html = client.post(
        reverse("botflows:flow_delete", args=[demo_flow.pk]), headers=HTMX
    ).content.decode()

    assert 'id="flow-editor"' in html
    assert "1 conversation in progress still runs on Main menu" in html
    assert Flow.objects.filter(pk=demo_flow.pk).exists()


def test_agents_and_supervisors_get_403_on_the_flow_routes(client, agent, supervisor, demo_flow):
    urls = [
        reverse("botflows:flow_create"),
        reverse("botflows:flow_settings", args=[demo_flow.pk]),
        reverse("botflows:flow_delete", args=[demo_flow.pk]),
    ]
    for user in (agent, supervisor):
        client.force_login(user)
        for url in urls:
            response = client.post(url, _flow_post(name="x", is_default="on"))
            assert response.status_code == 403, (user, url)
    assert list(Flow.objects.values_list("name", "is_default")) == [("Main menu", True)]


def test_flow_routes_of_an_unknown_flow_are_404(client, admin_user):
    client.force_login(admin_user)
    for name in ("flow_settings", "flow_delete"):
        url = reverse(f"botflows:{name}", args=[999])
        assert client.post(url, _flow_post(name="x")).status_code == 404


def _more_flows(count: int, *, start: int = 0) -> None:
    for index in range(start, start + count):
        flow = Flow.objects.create(name=f"Flow {index}", whatsapp_account=WhatsAppAccountFactory())
        menu = FlowNode.objects.create(flow=flow, key="menu", kind=NodeKind.MENU)
        MenuOption.objects.create(node=menu, number=1, title="Fim", action=OptionAction.HUMAN)
        MenuOption.objects.create(
            node=menu, number=2, title="De novo", action=OptionAction.NODE, target_node=menu
        )
        WhatsAppAccountFactory()  # a free number for the new-flow form


def test_the_bot_page_costs_the_same_queries_for_2_or_12_flows(
    client, admin_user, demo_flow, django_assert_num_queries
):
    client.force_login(admin_user)
    _more_flows(1)
    # session, user, flows, nodes, options, target nodes, option departments, versions,
    # settings, the departments a hand-over may name, and the new-flow form's free numbers
    with django_assert_num_queries(10):
        assert client.get(SETTINGS).status_code == 200

    _more_flows(10, start=1)

    with django_assert_num_queries(10):
        html = client.get(SETTINGS).content.decode()
    assert "Flow 10" in html


def test_the_flow_forms_speak_portuguese(client, admin_user, demo_flow):
    client.force_login(admin_user)
    client.cookies["django_language"] = "pt-br"

    page = client.get(SETTINGS).content.decode()
    editor = client.get(_editor(demo_flow)).content.decode()

    assert "Novo fluxo" in page and "Criar fluxo" in page
    assert "Configurações do fluxo" in editor and "Excluir fluxo" in editor
