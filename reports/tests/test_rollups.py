"""The daily roll-ups (:mod:`reports.rollups`): the stats read from them are the stats read from
the rows, for every filter, after every step the live handler records (the scenario's hand-over,
take-over, transfer, closing, reopening; messages that only count; CSAT answers), and after the
rebuild, which gives the live roll-ups again however often it runs."""

import io
import itertools
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Q

from accounts.tests.factories import UserFactory
from conversations import services
from conversations.events import CsatReceived
from conversations.models import Conversation
from conversations.serializers import conversation_payload
from conversations.tests.factories import CustomerFactory
from reports import rollups
from reports.models import DailyAgentRollup, DailyRollup
from reports.selectors import ReportFilters, report_stats
from reports.services import segments_record
from whatsapp.tests.factories import WhatsAppAccountFactory

from .scenario import ZONE, Desk, at, live_the_scenario, open_mondays

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not rollups.enabled(), reason="the daily roll-ups are PostgreSQL's"),
]

MONDAY = date(2026, 11, 23)


def whole_days(first: date, days: int) -> tuple[datetime, datetime]:
    return (
        datetime.combine(first, time.min, tzinfo=ZONE),
        datetime.combine(first + timedelta(days=days), time.min, tzinfo=ZONE),
    )


def every_filter(
    *, departments: list[Any], agents: list[Any], ranges: list[tuple[datetime, datetime]]
) -> list[ReportFilters]:
    return [
        ReportFilters(
            date_from=start,
            date_to=end,
            business_hours=business_hours,
            bucket=bucket,
            department_id=department.pk if department else None,
            agent_id=agent.pk if agent else None,
        )
        for (start, end), business_hours, bucket, department, agent in itertools.product(
            ranges, (False, True), ("day", "hour"), [None, *departments], [None, *agents]
        )
    ]


def assert_rollups_give_the_rows(filters: list[ReportFilters]) -> None:
    for f in filters:
        assert report_stats(filters=f) == report_stats(filters=f, read_rollups=False), f


def csat_answered(conversation: Conversation, score: int) -> None:
    """A CSAT answer, as the CSAT service emits it (``csat.received``) to the handler."""
    conversation.refresh_from_db()
    segments_record(
        events=[
            CsatReceived(
                conversation=conversation_payload(conversation),
                csat={"score": score, "comment": "ok"},
            )
        ]
    )


def test_whole_days_are_read_from_the_rollups(lived: Conversation) -> None:
    """What the other tests compare are two readings: lose the roll-ups and they part."""
    (day,) = every_filter(departments=[], agents=[], ranges=[whole_days(MONDAY, 1)])[:1]
    assert report_stats(filters=day)["total"] == 1
    DailyRollup.objects.all().delete()
    DailyAgentRollup.objects.all().delete()
    assert report_stats(filters=day)["total"] == 0
    assert report_stats(filters=day)["by_agent"] == []
    assert report_stats(filters=day, read_rollups=False)["total"] == 1
    # a range that is not whole days reads the rows
    hours = ReportFilters(date_from=at(8, 0), date_to=at(20, 0))
    assert report_stats(filters=hours)["total"] == 1


def test_the_live_handler_keeps_them_at_every_step(
    support: Any, sales: Any, agent: Any, agent_b: Any
) -> None:
    open_mondays(support)
    filters = [
        f
        for f in every_filter(
            departments=[support], agents=[agent, agent_b], ranges=[whole_days(MONDAY, 1)]
        )
        if f.bucket == "day" or f.business_hours  # the hours' series reads the rows anyway
    ]
    steps = []

    def check() -> None:
        assert_rollups_give_the_rows(filters)
        steps.append(1)

    # the scenario (bot, queue, A, transfer to B, close, reopen, close), checked after each step
    lived = live_the_scenario(
        customer=CustomerFactory(),
        department=support,
        agent_a=agent,
        agent_b=agent_b,
        after_each=check,
    )
    assert len(steps) == 13
    assert report_stats(filters=filters[0])["total"] == 1
    # a CSAT answer, then a changed mind (the newest answer counts)
    csat_answered(lived, 4)
    check()
    csat_answered(lived, 2)
    check()
    assert report_stats(filters=filters[0])["csat"]["distribution"]["2"] == 1
    # the same story with the agents swapped, in the same cells
    live_the_scenario(
        customer=CustomerFactory(),
        department=support,
        agent_a=agent_b,
        agent_b=agent,
        after_each=check,
    )
    assert report_stats(filters=filters[0])["total"] == 2


def a_mixed_desk(support: Any, sales: Any, agent: Any, agent_b: Any) -> list[Any]:
    """Two lived scenarios, CSAT answers, and conversations left with the bot, waiting in
    Vendas' queue, open with an agent who has written (counted messages in its segment), and
    one on the next day transferred to a department; returns the agents."""
    open_mondays(support)
    first = live_the_scenario(
        customer=CustomerFactory(), department=support, agent_a=agent, agent_b=agent_b
    )
    second = live_the_scenario(
        customer=CustomerFactory(), department=support, agent_a=agent_b, agent_b=agent
    )
    csat_answered(first, 5)
    csat_answered(second, 3)
    seller = UserFactory(role="agent", name="Vera Vendas", departments=[sales])
    desk, account = Desk(), WhatsAppAccountFactory()

    def opened() -> Conversation:
        c, _ = services.conversation_open_for_customer(
            customer=CustomerFactory(), whatsapp_account_id=account.pk
        )
        services.message_record_inbound(conversation=c, body="oi")
        return c

    desk.run(at(9, 0), opened)  # with the bot
    waiting = desk.run(at(9, 10), opened)
    desk.run(
        at(9, 11),
        lambda: services.conversation_route_to_department(conversation=waiting, department=sales),
    )
    handled = desk.run(at(11, 0), opened)
    desk.run(
        at(11, 1),
        lambda: services.conversation_route_to_department(conversation=handled, department=sales),
    )
    desk.run(at(11, 3), lambda: services.conversation_take_over(conversation=handled, actor=seller))
    desk.run(
        at(11, 4),
        lambda: services.message_create_outbound(conversation=handled, actor=seller, body="Oi"),
    )
    for minute in (5, 6, 7):
        desk.run(
            at(11, minute),
            lambda: services.message_record_inbound(conversation=handled, body="mais"),
        )
    tuesday = (2026, 11, 24)
    moved = desk.run(at(10, 0, day=tuesday), opened)
    desk.run(
        at(10, 1, day=tuesday),
        lambda: services.conversation_route_to_department(conversation=moved, department=support),
    )
    desk.run(
        at(10, 2, day=tuesday),
        lambda: services.conversation_take_over(conversation=moved, actor=agent),
    )
    desk.run(
        at(10, 9, day=tuesday),
        lambda: services.conversation_transfer(
            conversation=moved, actor=agent, to_department=sales
        ),
    )
    return [agent, agent_b, seller]


def test_every_filter_gives_the_rows(support: Any, sales: Any, agent: Any, agent_b: Any) -> None:
    agents = a_mixed_desk(support, sales, agent, agent_b)
    filters = every_filter(
        departments=[support, sales],
        agents=agents,
        ranges=[
            whole_days(MONDAY, 1),
            whole_days(MONDAY, 2),
            whole_days(MONDAY - timedelta(7), 30),
        ],
    )
    assert_rollups_give_the_rows(filters)
    start, end = whole_days(MONDAY - timedelta(7), 30)
    week = report_stats(filters=ReportFilters(date_from=start, date_to=end))
    assert week["total"] == 6
    assert week["by_status"] == {"bot": 1, "pending": 2, "open": 1, "closed": 2}
    assert week["csat"]["responses"] == 2
    assert len(week["by_agent"]) == 3


def cells() -> tuple[list[Any], list[Any]]:
    """The non-empty cells' figures (a change of status leaves its old cell with zeros)."""
    skip = {"id", "created_at", "updated_at"}

    def rows(model: Any, non_empty: Q) -> list[Any]:
        names = [f.name for f in model._meta.concrete_fields if f.name not in skip]
        return list(model.objects.filter(non_empty).order_by(*names[:4]).values_list(*names))

    return (
        rows(DailyRollup, Q(total__gt=0)),
        rows(DailyAgentRollup, Q(segments__gt=0) | Q(csat_responses__gt=0)),
    )


def test_the_rebuild_gives_the_live_rollups_however_often_it_runs(
    support: Any, sales: Any, agent: Any, agent_b: Any
) -> None:
    a_mixed_desk(support, sales, agent, agent_b)
    live = cells()
    assert live[0] and live[1]
    call_command("reports_rebuild", stdout=io.StringIO())
    assert cells() == live
    call_command("reports_rebuild", "--chunk-size", "2", stdout=io.StringIO())
    assert cells() == live
    # lost, then rebuilt; and one conversation alone
    DailyRollup.objects.all().delete()
    DailyAgentRollup.objects.all().delete()
    call_command("reports_rebuild", stdout=io.StringIO())
    assert cells() == live
    some = Conversation.objects.order_by("pk").first()
    assert some is not None
    call_command("reports_rebuild", "--conversation", str(some.pk), stdout=io.StringIO())
    assert cells() == live


def test_a_conversation_deleted_leaves_its_cells_until_the_rebuild(
    support: Any, sales: Any, agent: Any, agent_b: Any
) -> None:
    """A deletion (cascading to the reports' rows) is no domain event: the full rebuild empties
    the cells it left."""
    agents = a_mixed_desk(support, sales, agent, agent_b)
    Conversation.objects.filter(department=sales).delete()
    week = every_filter(departments=[sales], agents=agents, ranges=[whole_days(MONDAY, 7)])
    call_command("reports_rebuild", stdout=io.StringIO())
    assert_rollups_give_the_rows(week)
