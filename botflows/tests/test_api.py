"""``/api/v1/bot/config`` and ``/api/v1/bot/flows``: administrators only (contract §4)."""

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from botflows.models import BotConfiguration

pytestmark = pytest.mark.django_db


def bearer(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _error(response, status):
    assert response.status_code == status, response.content[:500]
    body = response.json()
    assert body["detail"] and isinstance(body["code"], str)
    return body


@pytest.mark.parametrize(
    "endpoint",
    [
        ("get", "/api/v1/bot/config", None),
        ("get", "/api/v1/bot/flows", None),
        ("put", "/api/v1/bot/config/max_invalid_attempts", {"value": 2}),
    ],
)
@pytest.mark.usefixtures("demo_flow")
def test_only_admins_touch_the_bot(endpoint, agent, supervisor, admin_user):
    method, path, data = endpoint

    def call(user, url=path):
        return getattr(bearer(user), method)(url, data, format="json")

    _error(call(None), 401)
    _error(call(agent), 403)
    _error(call(supervisor), 403)
    assert call(admin_user).status_code == 200
    assert call(admin_user, f"{path}/").status_code == 200


def test_config_lists_defaults_and_stored_values(admin_user, django_assert_max_num_queries):
    BotConfiguration.objects.create(key="greeting", value="Olá!", description="Greeting")

    with django_assert_max_num_queries(6):
        response = bearer(admin_user).get("/api/v1/bot/config", {"page_size": 100})

    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    rows = {row["key"]: row for row in body["results"]}
    assert rows["greeting"]["value"] == "Olá!" and rows["greeting"]["is_default"] is False
    assert rows["max_invalid_attempts"] == {
        **rows["max_invalid_attempts"],
        "value": 3,
        "default": 3,
        "is_default": True,
    }
    assert "atendente" in rows["handoff_keywords"]["value"]


def test_put_stores_a_setting_the_bot_uses(admin_user, demo_flow, chat):
    response = bearer(admin_user).put(
        "/api/v1/bot/config/handoff_keywords", {"value": ["socorro"]}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["value"] == ["socorro"]
    assert BotConfiguration.objects.get(key="handoff_keywords").updated_by == admin_user
    chat.say("oi")
    chat.say("SOCORRO!")
    assert chat.conversation.status == "pending"


def test_put_creates_free_keys_and_keeps_the_description(admin_user):
    response = bearer(admin_user).put(
        "/api/v1/bot/config/campaign",
        {"value": {"on": True}, "description": "Black Friday"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["description"] == "Black Friday"


@pytest.mark.parametrize(
    ("key", "data"),
    [
        ("max_invalid_attempts", {"value": "three"}),
        ("ai_min_confidence", {"value": 3}),
        ("handoff_keywords", {"value": "atendente"}),
        ("ai_enabled", {"value": "yes"}),
        ("handoff_department", {"value": "Jurídico"}),
        ("greeting", {}),
    ],
)
def test_put_refuses_invalid_values(admin_user, key, data):
    _error(bearer(admin_user).put(f"/api/v1/bot/config/{key}", data, format="json"), 400)
    assert not BotConfiguration.objects.filter(key=key).exists()


def test_flows_list_nodes_options_and_version(admin_user, demo_flow, django_assert_num_queries):
    client = bearer(admin_user)

    with django_assert_num_queries(7):
        response = client.get("/api/v1/bot/flows")

    body = response.json()
    assert body["count"] == 1
    flow = body["results"][0]
    assert flow["is_default"] is True
    assert flow["published_version"]["number"] == 1
    assert flow["start_node"] == "greeting"
    nodes = {node["key"]: node for node in flow["nodes"]}
    assert nodes["greeting"]["next_node"] == "menu"
    options = nodes["menu"]["options"]
    assert [(o["number"], o["title"], o["department"]["name"]) for o in options] == [
        (1, "Suporte", "Suporte"),
        (2, "Vendas", "Vendas"),
        (3, "Financeiro", "Financeiro"),
    ]


def test_flows_list_costs_the_same_for_more_flows(admin_user, demo_flow, django_assert_num_queries):
    from botflows import services
    from botflows.models import Flow, FlowNode, MenuOption

    for n in range(3):
        flow = Flow.objects.create(name=f"Extra {n}")
        menu = FlowNode.objects.create(flow=flow, key="m", kind="menu", text="?")
        for number in (1, 2):
            MenuOption.objects.create(node=menu, number=number, title=f"O{number}", action="human")
        services.flow_publish(flow=flow, actor=None)

    client = bearer(admin_user)
    with django_assert_num_queries(7):
        response = client.get("/api/v1/bot/flows")

    assert response.json()["count"] == 4
