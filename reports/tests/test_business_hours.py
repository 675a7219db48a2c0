"""Open seconds of an interval under a department's schedule (the bot's own rules)."""

from datetime import date, time, timedelta

import pytest

from departments.models import BusinessHours, BusinessSchedule, Holiday, Weekday
from departments.tests.factories import DepartmentFactory
from reports.business_hours import open_seconds, schedules_for

from .scenario import at

pytestmark = pytest.mark.django_db

HOUR = 3600.0


def schedule(
    *intervals: tuple[int, time, time], holidays: tuple[date, ...] = ()
) -> BusinessSchedule:
    s = BusinessSchedule.objects.create(
        department=DepartmentFactory(), time_zone="America/Sao_Paulo"
    )
    for weekday, opens, closes in intervals:
        BusinessHours.objects.create(schedule=s, weekday=weekday, opens_at=opens, closes_at=closes)
    for day in holidays:
        Holiday.objects.create(schedule=s, date=day)
    return schedules_for([s.department_id])[s.department_id]


def test_no_schedule_is_always_open() -> None:
    assert open_seconds(schedule=None, start=at(17, 0), end=at(19, 0)) == 2 * HOUR
    assert open_seconds(schedule=None, start=at(19, 0), end=at(17, 0)) == 0.0


def test_only_the_open_hours_count_across_days() -> None:
    weekdays = schedule((Weekday.MONDAY, time(8), time(18)), (Weekday.TUESDAY, time(8), time(12)))
    assert open_seconds(schedule=weekdays, start=at(17, 0), end=at(19, 0)) == HOUR
    # Monday 17:00 -> Wednesday 09:00: 1 h on Monday, 4 h on Tuesday
    wednesday = at(9, 0) + timedelta(days=2)
    assert open_seconds(schedule=weekdays, start=at(17, 0), end=wednesday) == 5 * HOUR


def test_an_interval_past_midnight_and_a_whole_day() -> None:
    night = schedule((Weekday.MONDAY, time(22), time(2)), (Weekday.TUESDAY, time(0), time(0)))
    tuesday_3am = at(3, 0) + timedelta(days=1)
    # Monday 22:00 -> 02:00 (4 h), Tuesday all day from 00:00 (overlapping, counted once)
    assert open_seconds(schedule=night, start=at(21, 0), end=tuesday_3am) == 5 * HOUR


def test_holidays_close_the_whole_local_day() -> None:
    closed_monday = schedule((Weekday.MONDAY, time(8), time(18)), holidays=(date(2026, 11, 23),))
    assert open_seconds(schedule=closed_monday, start=at(7, 0), end=at(19, 0)) == 0.0
    only_holidays = schedule(holidays=(date(2026, 11, 24),))
    tuesday_noon = at(12, 0) + timedelta(days=1)
    assert open_seconds(schedule=only_holidays, start=at(12, 0), end=tuesday_noon) == 12 * HOUR


def test_schedules_for_no_department_is_no_query(django_assert_num_queries: object) -> None:
    with django_assert_num_queries(0):  # type: ignore[operator]
        assert schedules_for([None]) == {}
