"""Business hours per department, in the department's time zone, with holidays."""

from datetime import UTC, date, datetime, time

import pytest

from botflows import selectors
from conversations.models import ConversationStatus
from departments.models import BusinessHours, BusinessSchedule, Holiday

pytestmark = pytest.mark.django_db


def _weekdays(schedule, opens: time, closes: time) -> None:
    for weekday in range(5):
        BusinessHours.objects.create(
            schedule=schedule, weekday=weekday, opens_at=opens, closes_at=closes
        )


@pytest.fixture
def sao_paulo(departments):
    schedule = BusinessSchedule.objects.create(
        department=departments["Suporte"], time_zone="America/Sao_Paulo"
    )
    _weekdays(schedule, time(9), time(18))
    Holiday.objects.create(schedule=schedule, date=date(2026, 12, 25), name="Natal")
    return schedule


@pytest.fixture
def tokyo(departments):
    schedule = BusinessSchedule.objects.create(
        department=departments["Vendas"], time_zone="Asia/Tokyo"
    )
    _weekdays(schedule, time(9), time(18))
    return schedule


# Tuesday 24 Nov 2026: São Paulo is UTC-3, Tokyo UTC+9.
@pytest.mark.parametrize(
    ("utc", "sao_paulo_open", "tokyo_open"),
    [
        (datetime(2026, 11, 24, 11, 59, tzinfo=UTC), False, False),  # 08:59 SP, 20:59 Tokyo
        (datetime(2026, 11, 24, 12, 0, tzinfo=UTC), True, False),  # 09:00 SP
        (datetime(2026, 11, 24, 20, 59, tzinfo=UTC), True, False),  # 17:59 SP
        (datetime(2026, 11, 24, 21, 0, tzinfo=UTC), False, False),  # 18:00 SP
        (datetime(2026, 11, 24, 1, 0, tzinfo=UTC), False, True),  # 22:00 Mon SP, 10:00 Tue Tokyo
        (datetime(2026, 11, 28, 1, 0, tzinfo=UTC), False, False),  # Saturday in Tokyo
    ],
)
@pytest.mark.usefixtures("sao_paulo", "tokyo")
def test_open_or_closed_in_each_departments_time_zone(departments, utc, sao_paulo_open, tokyo_open):
    support = selectors.department_availability(department=departments["Suporte"], now=utc)
    sales = selectors.department_availability(department=departments["Vendas"], now=utc)

    assert support.is_open is sao_paulo_open
    assert sales.is_open is tokyo_open


def test_holidays_close_the_whole_day_and_next_opening_skips_them(sao_paulo, departments):
    christmas_noon = datetime(2026, 12, 25, 15, tzinfo=UTC)  # Friday 12:00 in São Paulo

    availability = selectors.department_availability(
        department=departments["Suporte"], now=christmas_noon
    )

    assert availability.is_open is False
    opening = availability.next_opening
    assert (opening.date(), opening.hour) == (date(2026, 12, 28), 9)  # Monday, after the weekend
    assert opening.utcoffset().total_seconds() == -3 * 3600


def test_intervals_past_midnight(departments):
    schedule = BusinessSchedule.objects.create(
        department=departments["Financeiro"], time_zone="UTC"
    )
    BusinessHours.objects.create(schedule=schedule, weekday=0, opens_at=time(22), closes_at=time(6))

    def is_open(moment):
        return selectors.department_availability(
            department=departments["Financeiro"], now=moment
        ).is_open

    assert is_open(datetime(2026, 11, 23, 23, tzinfo=UTC))  # Monday 23:00
    assert is_open(datetime(2026, 11, 24, 5, 59, tzinfo=UTC))  # Tuesday 05:59
    assert not is_open(datetime(2026, 11, 24, 6, tzinfo=UTC))
    assert not is_open(datetime(2026, 11, 23, 21, tzinfo=UTC))


def test_a_department_without_schedule_is_always_open(departments):
    availability = selectors.department_availability(
        department=departments["Vendas"], now=datetime(2026, 11, 29, 3, tzinfo=UTC)
    )
    assert availability.is_open


def test_out_of_hours_the_customer_is_told_and_waits_in_the_queue(sao_paulo, demo_flow, chat):
    night = datetime(2026, 11, 24, 2, tzinfo=UTC)  # 23:00 Monday in São Paulo
    chat.say("oi", now=night)

    replies = chat.say("1", now=night)

    assert chat.conversation.status == ConversationStatus.PENDING
    assert chat.conversation.department.name == "Suporte"
    assert len(replies) == 1
    assert "closed right now" in replies[0].body
    assert "24/11 09:00" in replies[0].body


def test_the_schedules_own_out_of_hours_message(sao_paulo, demo_flow, chat):
    sao_paulo.out_of_hours_message = "Fechados! Abrimos {next_opening}."
    sao_paulo.save()
    saturday = datetime(2026, 11, 28, 15, tzinfo=UTC)
    chat.say("oi", now=saturday)

    replies = chat.say("Suporte", now=saturday)

    assert replies[0].body.endswith("Fechados! Abrimos 30/11 09:00.")


def test_within_hours_the_customer_gets_the_place_in_line(sao_paulo, demo_flow, chat):
    morning = datetime(2026, 11, 24, 13, tzinfo=UTC)  # 10:00 in São Paulo
    chat.say("oi", now=morning)

    replies = chat.say("1", now=morning)

    assert "number 1 in the queue" in replies[0].body
