"""``GET /api/v1/conversations/stats``: every figure of the scenario (wall clock and business
hours), per department and per agent (each credited with its own segments only), filters,
roles and a query count that does not grow with the data."""

from typing import Any

import pytest

from conversations import services
from conversations.models import Conversation, Tag
from conversations.tests.factories import CustomerFactory
from reports import rollups
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer
from whatsapp.tests.factories import WhatsAppAccountFactory

from .scenario import Desk, at

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

DAY = "from=2026-11-23&to=2026-11-23"
NO_CSAT = {"average": None, "responses": 0, "distribution": dict.fromkeys("12345", 0)}


def stats(user: Any, query: str = DAY) -> dict[str, Any]:
    response = bearer(user).get(f"/api/v1/conversations/stats?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_scenario_figures_on_the_wall_clock(
    lived: Conversation, supervisor: Any, agent: Any, agent_b: Any, support: Any
) -> None:
    body = stats(supervisor)

    conversation_figures = {
        "total": 1,
        "by_status": {"bot": 0, "pending": 0, "open": 0, "closed": 1},
        "bot_seconds_avg": 120.0,
        "queue_wait_seconds_avg": 240.0,
        "first_response_seconds_avg": 540.0,  # creation 17:50 -> A's answer 17:59
        "handling_seconds_avg": 2040.0,  # A 540 + B 900 + B 600
        "resolution_seconds_avg": 3600.0,  # creation 17:50 -> last closing 18:50
        "messages_avg": 7.0,  # 3 in, 4 out
        "transfers": 1,  # A -> B; the bot's hand-over is no transfer
        "csat": NO_CSAT,
    }
    assert body["business_hours"] is False
    assert {k: body[k] for k in conversation_figures} == conversation_figures
    assert body["by_department"] == [
        {"department": {"id": support.pk, "name": "Suporte"}, **conversation_figures}
    ]
    by_agent = {row["agent"]["id"]: row for row in body["by_agent"]}
    assert [row["agent"]["name"] for row in body["by_agent"]] == ["Ana Agente", "Bia Suporte"]
    assert by_agent[agent.pk] == {
        "agent": {"id": agent.pk, "name": "Ana Agente"},
        "total": 1,
        "segments": 1,
        "by_status": {"bot": 0, "pending": 0, "open": 0, "closed": 1},
        "first_response_seconds_avg": 180.0,  # took it 17:56, answered 17:59
        "handling_seconds_avg": 540.0,  # 17:56 -> 18:05 only, not B's time
        "handling_seconds_total": 540.0,
        "messages_in": 1,
        "messages_out": 1,
        "transfers": 1,
        "csat": NO_CSAT,
    }
    assert by_agent[agent_b.pk] == {
        "agent": {"id": agent_b.pk, "name": "Bia Suporte"},
        "total": 1,
        "segments": 2,
        "by_status": {"bot": 0, "pending": 0, "open": 0, "closed": 1},
        "first_response_seconds_avg": 270.0,  # (300 + 240) / 2
        "handling_seconds_avg": 750.0,  # (900 + 600) / 2
        "handling_seconds_total": 1500.0,
        "messages_in": 1,
        "messages_out": 2,
        "transfers": 0,
        "csat": NO_CSAT,
    }
    assert body["series"] == [
        {
            "bucket": "2026-11-23T00:00:00-03:00",
            "conversations": 1,
            "first_response_seconds_avg": 540.0,
            "csat_average": None,
        }
    ]


def test_the_scenario_figures_in_business_hours(
    lived: Conversation, supervisor: Any, agent: Any, agent_b: Any
) -> None:
    """Suporte closes at 18:00: what happened after it counts for nothing."""
    body = stats(supervisor, f"{DAY}&business_hours=true")

    assert body["business_hours"] is True
    assert body["bot_seconds_avg"] == 120.0  # the bot has no department: always open
    assert body["queue_wait_seconds_avg"] == 240.0  # 17:52 -> 17:56
    assert body["first_response_seconds_avg"] == 540.0  # 17:50 -> 17:59
    assert body["handling_seconds_avg"] == 240.0  # A's 17:56 -> 18:00
    assert body["resolution_seconds_avg"] == 600.0  # 17:50 -> 18:00
    assert body["messages_avg"] == 7.0
    assert body["transfers"] == 1
    (department,) = body["by_department"]
    assert department["handling_seconds_avg"] == 240.0
    assert department["resolution_seconds_avg"] == 600.0
    by_agent = {row["agent"]["id"]: row for row in body["by_agent"]}
    assert by_agent[agent.pk]["first_response_seconds_avg"] == 180.0
    assert by_agent[agent.pk]["handling_seconds_avg"] == 240.0
    assert by_agent[agent_b.pk]["first_response_seconds_avg"] == 0.0
    assert by_agent[agent_b.pk]["handling_seconds_avg"] == 0.0
    assert by_agent[agent_b.pk]["handling_seconds_total"] == 0.0


def test_filters_department_agent_tag_window_and_bucket(
    lived: Conversation, supervisor: Any, agent: Any, agent_b: Any, sales: Any
) -> None:
    assert stats(supervisor, f"{DAY}&department={sales.pk}")["total"] == 0
    assert stats(supervisor, f"{DAY}&department={lived.department_id}")["total"] == 1
    only_a = stats(supervisor, f"{DAY}&agent={agent.pk}")
    assert only_a["total"] == 1
    assert [row["agent"]["id"] for row in only_a["by_agent"]] == [agent.pk]
    assert only_a["by_agent"][0]["handling_seconds_avg"] == 540.0
    assert stats(supervisor, f"{DAY}&agent={supervisor.pk}")["total"] == 0
    vip = Tag.objects.create(name="VIP")
    assert stats(supervisor, f"{DAY}&tag={vip.pk}")["total"] == 0
    lived.tags.add(vip)
    assert stats(supervisor, f"{DAY}&tag={vip.pk}")["total"] == 1
    assert stats(supervisor, "from=2026-11-24&to=2026-11-30")["total"] == 0
    hourly = stats(supervisor, f"{DAY}&bucket=hour")["series"]
    assert [row["bucket"] for row in hourly] == ["2026-11-23T17:00:00-03:00"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("tag=red", "tag"),
        ("department=sales", "department"),
        ("agent=0", "agent"),
        ("business_hours=maybe", "business_hours"),
        ("bucket=week", "bucket"),
        ("from=yesterday", "from"),
        ("from=2026-02-01&to=2026-01-01", "from"),
    ],
)
def test_bad_filters_are_a_400(supervisor: Any, query: str, field: str) -> None:
    body = assert_error_shape(bearer(supervisor).get(f"/api/v1/conversations/stats?{query}"), 400)
    assert list(body["errors"]) == [field]


def test_counts_by_status_and_department_of_a_mixed_desk(
    supervisor: Any, agent: Any, support: Any, sales: Any
) -> None:
    """The §4 fields of the old stats, from conversations lived through the services."""
    desk = Desk()
    account = WhatsAppAccountFactory()

    def opened(minute: int) -> Conversation:
        def step() -> Conversation:
            c, _ = services.conversation_open_for_customer(
                customer=CustomerFactory(), whatsapp_account_id=account.pk
            )
            services.message_record_inbound(conversation=c, body="oi")
            return c

        return desk.run(at(10, minute), step)

    opened(0)  # still with the bot: counted, with no agent
    waiting = opened(1)
    desk.run(
        at(10, 2),
        lambda: services.conversation_route_to_department(conversation=waiting, department=sales),
    )
    handled = opened(3)
    desk.run(
        at(10, 4),
        lambda: services.conversation_route_to_department(conversation=handled, department=support),
    )
    desk.run(at(10, 5), lambda: services.conversation_take_over(conversation=handled, actor=agent))
    desk.run(
        at(10, 6),
        lambda: services.message_create_outbound(conversation=handled, actor=agent, body="Oi"),
    )

    body = stats(supervisor)

    assert body["total"] == 3
    assert body["by_status"] == {"bot": 1, "pending": 1, "open": 1, "closed": 0}
    assert body["first_response_seconds_avg"] == 180.0  # only the answered one
    assert body["bot_seconds_avg"] == 60.0  # (60 + 60) / 2: the bot still has the first
    assert body["queue_wait_seconds_avg"] == 60.0  # only the one taken: Vendas' still waits
    assert body["handling_seconds_avg"] is None  # A's segment goes on
    assert body["resolution_seconds_avg"] is None
    by_department = {
        (row["department"] or {}).get("name"): row["by_status"] for row in body["by_department"]
    }
    assert by_department == {
        None: {"bot": 1, "pending": 0, "open": 0, "closed": 0},
        "Suporte": {"bot": 0, "pending": 0, "open": 1, "closed": 0},
        "Vendas": {"bot": 0, "pending": 1, "open": 0, "closed": 0},
    }
    (row,) = body["by_agent"]
    assert (row["agent"]["id"], row["total"], row["by_status"]["open"]) == (agent.pk, 1, 1)
    assert row["first_response_seconds_avg"] == 60.0


@pytest.mark.parametrize(
    ("role", "expected"),
    [("admin", 200), ("supervisor", 200), ("agent", 403), ("anonymous", 401)],
)
@pytest.mark.parametrize(
    "path", ["/api/v1/conversations/stats", "/api/v1/reports/conversations.csv"]
)
def test_supervisors_and_admins_only(
    role: str, expected: int, path: str, request: pytest.FixtureRequest
) -> None:
    user = (
        None
        if role == "anonymous"
        else request.getfixturevalue(f"{role}_user" if role == "admin" else role)
    )
    response = bearer(user).get(path)
    if expected == 200:
        assert response.status_code == 200
    else:
        assert_error_shape(response, expected)


def _desk_of(count: int, *, agent: Any, support: Any, minute: int) -> None:
    desk, account = Desk(), WhatsAppAccountFactory()
    # one agent takes every conversation: room for all of them (capacity binds take-overs)
    agent.max_conversations = max(agent.max_conversations, count)
    agent.save(update_fields=["max_conversations"])
    for n in range(count):

        def step(n: int = n) -> None:
            c, _ = services.conversation_open_for_customer(
                customer=CustomerFactory(), whatsapp_account_id=account.pk
            )
            services.message_record_inbound(conversation=c, body="oi")
            services.conversation_route_to_department(conversation=c, department=support)
            services.conversation_take_over(conversation=c, actor=agent)
            services.message_create_outbound(conversation=c, actor=agent, body="Oi")
            if n % 2:
                services.conversation_close(conversation=c, actor=agent)

        desk.run(at(9, minute, n), step)


@pytest.mark.parametrize(
    ("query", "queries"),
    [
        # whole days: auth user, then the daily roll-ups per department (adding up to the
        # overall), per agent with its CSAT, the series
        (DAY, 4),
        (f"{DAY}&business_hours=true&bucket=hour", 4),  # the hours' series reads the rows
        (f"{DAY}&agent={{agent}}", 4),  # per department and the series read the rows
        # not whole days (or a tag): the rows per department, per agent, agents' CSAT, series
        ("from=2026-11-23T08:00:00-03:00&to=2026-11-23T20:00:00-03:00", 5),
    ],
)
def test_query_count_is_the_same_for_3_and_30_conversations(  # noqa: PLR0917 - pytest fixtures
    query: str,
    queries: int,
    supervisor: Any,
    agent: Any,
    support: Any,
    django_assert_num_queries: Any,
) -> None:
    client = bearer(supervisor)

    if not rollups.enabled():
        queries = 5  # SQLite (the demo) keeps no daily roll-ups: the rows, always

    def fetch() -> int:
        with django_assert_num_queries(queries):
            response = client.get(f"/api/v1/conversations/stats?{query.format(agent=agent.pk)}")
        return int(response.json()["total"])

    _desk_of(3, agent=agent, support=support, minute=0)
    assert fetch() == 3
    _desk_of(27, agent=agent, support=support, minute=1)
    assert fetch() == 30
