"""``/reports/`` and its live counters fragment: who may see them, the figures of the scenario,
filters kept in the URL (and in the CSV link), bad filters, the empty state, the query count."""

import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import presence
from accounts.tests.factories import UserFactory
from conversations import services
from conversations.models import Conversation
from conversations.tests.factories import CustomerFactory
from reports import rollups
from reports.models import Goal, GoalMetric
from whatsapp.tests.factories import WhatsAppAccountFactory

from .scenario import live_the_scenario

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    settings.LANGUAGE_CODE = "en"  # assertions read the English texts (one test: pt-BR)


DAY = "from=2026-11-23&to=2026-11-23"
PAGE = f"/reports/?{DAY}"


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def figure(html: str, name: str) -> str:
    """The value shown in one headline figure."""
    match = re.search(
        rf'data-figure="{name}">.*?<strong class="figure-value">(.*?)</strong>', html, re.S
    )
    assert match, f"no figure {name}"
    return match.group(1).strip()


def queue_a_customer(*, department: Any, wa_id: str) -> Conversation:
    """What the intake and the bot do: a conversation handed over to a department's queue."""
    customer = CustomerFactory(wa_id=wa_id, phone=f"+{wa_id}")
    account = WhatsAppAccountFactory()
    conversation, _ = services.conversation_open_for_customer(
        customer=customer, whatsapp_account_id=account.pk
    )
    services.conversation_route_to_department(conversation=conversation, department=department)
    services.message_record_inbound(conversation=conversation, body="Oi?")
    return conversation


@pytest.mark.parametrize("path", ["/reports/", "/reports/counters/"])
def test_supervisors_and_admins_only(
    path: str, admin_user: Any, supervisor: Any, agent: Any
) -> None:
    assert logged_in(admin_user).get(path).status_code == 200
    assert logged_in(supervisor).get(path).status_code == 200
    assert logged_in(agent).get(path).status_code == 403
    anonymous = Client().get(path)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/")


def test_the_top_bar_links_the_page_for_supervisors_only(supervisor: Any, agent: Any) -> None:
    assert 'href="/reports/"' in logged_in(supervisor).get("/").content.decode()
    assert 'href="/reports/"' not in logged_in(agent).get("/").content.decode()


def test_the_scenario_on_the_page(lived: Conversation, supervisor: Any) -> None:
    html = logged_in(supervisor).get(PAGE).content.decode()

    assert "11/23/2026 to 11/23/2026" in html
    assert figure(html, "total") == "1"
    assert figure(html, "first-response") == "9 min 00 s"  # 540 s
    assert figure(html, "handling") == "34 min 00 s"  # A 540 s + B 900 s + B 600 s
    assert figure(html, "csat") == "—"
    agents = html[html.index('id="by-agent"') : html.index('id="by-department"')]
    ana = agents[agents.index("Ana Agente") :]
    assert re.search(r"Ana Agente</th>\s*<td>1</td>\s*<td>3 min 00 s</td>\s*<td>9 min 00 s", ana)
    bia = agents[agents.index("Bia Suporte") :]
    assert re.search(r"Bia Suporte</th>\s*<td>1</td>\s*<td>4 min 30 s</td>\s*<td>12 min 30 s", bia)
    departments = html[html.index('id="by-department"') :]
    assert "Suporte" in departments
    # The charts: one bar for the day, a point for its first response.
    assert html.count('<rect class="bar"') == 1
    assert "11/23: 1 conversation" in html
    assert "11/23: first response 9 min 00 s" in html


def test_the_page_in_portuguese(lived: Conversation, supervisor: Any) -> None:
    client = logged_in(supervisor)
    client.cookies["django_language"] = "pt-br"
    html = client.get(PAGE).content.decode()
    assert "Relatórios" in html
    assert "Aguardando agora" in html
    assert "23/11: 1 conversa" in html
    assert "Baixar CSV" in html


def test_filters_are_kept_in_the_form_and_the_csv_link(
    lived: Conversation, supervisor: Any, support: Any
) -> None:
    client = logged_in(supervisor)
    html = client.get(f"{PAGE}&department={support.pk}&bucket=hour&business_hours=on").content
    page = html.decode()
    assert 'name="from" value="2026-11-23"' in page
    assert 'name="to" value="2026-11-23"' in page
    assert re.search(rf'<option value="{support.pk}" selected>Suporte</option>', page)
    assert re.search(r'<option value="hour" selected>', page)
    assert re.search(r'name="business_hours"[^>]*checked', page)
    link = re.search(r'id="csv-download" href="([^"]+)"', page)
    assert link
    url = link.group(1).replace("&amp;", "&")
    assert url.startswith("/api/v1/reports/conversations.csv?")
    assert f"department={support.pk}" in url
    assert "business_hours=true" in url
    # The link downloads with the browser's session: the scenario's conversation.
    response = client.get(url)
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert [row[0] for row in rows[1:]] == [str(lived.pk)]


def test_hours_buckets_draw_one_bar_per_hour_with_conversations(
    lived: Conversation, supervisor: Any
) -> None:
    html = logged_in(supervisor).get(f"{PAGE}&bucket=hour").content.decode()
    assert html.count('<rect class="bar"') == 1
    assert "11/23 17:00: 1 conversation" in html


def test_bad_filters_get_a_message_and_the_defaults(supervisor: Any, support: Any) -> None:
    response = logged_in(supervisor).get(
        "/reports/?from=banana&to=2026-13-40&department=99999&bucket=week&agent=x"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="filter-errors"' in html
    assert "Enter a valid date." in html
    assert "Select a valid choice." in html
    assert 'name="to" value="2026-13-40"' in html  # what was typed stays, to be corrected
    assert figure(html, "total") == "0"
    # The figures (and the CSV link) are the default's: the last seven days, all departments.
    today = timezone.localdate()
    week_ago = today - timedelta(days=6)
    assert f"conversations.csv?from={week_ago.isoformat()}&amp;to={today.isoformat()}&amp;" in html
    assert "department=" not in html[html.index('id="csv-download"') :].split(">")[0]


def test_an_end_before_the_start_is_refused(lived: Conversation, supervisor: Any) -> None:
    html = logged_in(supervisor).get("/reports/?from=2026-11-24&to=2026-11-23").content.decode()
    assert "The end date must not be before the start date." in html
    assert figure(html, "total") == "0"  # the default range: the scenario's day is not in it


def test_the_empty_state(supervisor: Any) -> None:
    html = logged_in(supervisor).get("/reports/").content.decode()
    assert 'id="reports-empty"' in html
    assert html.count("No data in this period.") == 3
    assert figure(html, "first-response") == "—"
    assert "No agent handled a conversation in this period." in html
    assert "No goals yet." in html


def test_live_counters(supervisor: Any, support: Any, sales: Any, agent: Any) -> None:
    client = logged_in(supervisor)
    html = client.get("/reports/counters/").content.decode()
    assert figure(html, "waiting") == "0"
    assert figure(html, "oldest-wait") == "—"
    assert figure(html, "today") == "0"

    queue_a_customer(department=support, wa_id="5511900000001")
    queue_a_customer(department=sales, wa_id="5511900000002")
    presence.presence_connect(user_id=agent.pk)
    try:
        html = client.get("/reports/counters/").content.decode()
        assert figure(html, "waiting") == "2"
        assert figure(html, "oldest-wait").endswith(" s")  # seconds ago
        assert figure(html, "today") == "2"
        assert figure(html, "online") == "1"
        # A department narrows them: Suporte's queue and members.
        html = client.get(f"/reports/counters/?department={sales.pk}").content.decode()
        assert figure(html, "waiting") == "1"
        assert figure(html, "online") == "0"  # Ana works Suporte
    finally:
        presence.presence_disconnect(user_id=agent.pk)


def test_goals_and_their_progress(
    lived: Conversation, supervisor: Any, agent: Any, support: Any
) -> None:
    fast = Goal.objects.create(agent=agent, metric=GoalMetric.FIRST_RESPONSE, target=120)
    volume = Goal.objects.create(
        department=support, metric=GoalMetric.CONVERSATIONS_PER_DAY, target=4
    )
    csat = Goal.objects.create(department=support, metric=GoalMetric.CSAT, target=4.5)
    Goal.objects.create(agent=agent, metric=GoalMetric.HANDLING, target=60, is_active=False)

    html = logged_in(supervisor).get(PAGE).content.decode()
    goals = html[html.index('id="goals"') : html.index('id="by-agent"')]
    assert goals.count("data-goal=") == 3  # the inactive one is not shown

    def row(goal: Goal) -> str:
        start = goals.index(f'data-goal="{goal.pk}"')
        return goals[start : goals.index("</tr>", start)]

    # Ana answered in 180 s for a ceiling of 120 s: not met, 120/180 of the bar.
    assert "at most 2 min 00 s" in row(fast)
    assert "3 min 00 s" in row(fast)
    assert 'value="67"' in row(fast)
    assert "Not met" in row(fast)
    # Suporte: 1 conversation in the day for a floor of 4.
    assert 'value="25"' in row(volume)
    assert "Not met" in row(volume)
    assert "No data" in row(csat)  # no CSAT answer yet


def test_the_page_costs_the_same_whatever_the_data(
    supervisor: Any, agent: Any, agent_b: Any, support: Any, django_assert_num_queries: Any
) -> None:
    client = logged_in(supervisor)
    url = f"{PAGE}&department={support.pk}&agent={agent.pk}"

    def lived_once(wa_id: str) -> None:
        customer = CustomerFactory(wa_id=wa_id, phone=f"+{wa_id}")
        live_the_scenario(customer=customer, department=support, agent_a=agent, agent_b=agent_b)
        Goal.objects.create(agent=agent_b, metric=GoalMetric.HANDLING, target=600)
        Goal.objects.create(department=support, metric=GoalMetric.CSAT, target=4)

    lived_once("5511900000010")
    # session, user; form: department, agent (checked, then listed); counters (2); stats (4:
    # whole days, so the agents' rows and their CSAT are one query of the daily roll-ups);
    # goals (1); on SQLite (no daily roll-ups) the stats are 5
    queries = 11 if rollups.enabled() else 12
    with django_assert_num_queries(queries):
        first = client.get(url)
    assert first.status_code == 200
    for n in range(3):
        lived_once(f"551190000002{n}")
    other = UserFactory(role="agent", departments=[support])
    Goal.objects.create(agent=other, metric=GoalMetric.FIRST_RESPONSE, target=60)
    with django_assert_num_queries(queries):
        again = client.get(url)
    assert figure(again.content.decode(), "total") == "4"
