"""How many seconds of an interval fall inside a department's opening hours.

The opening hours are the ones the bot already answers by (``departments.BusinessSchedule``:
weekly intervals in the schedule's time zone, possibly running past midnight, or all day when
opening and closing times are equal; holidays close the whole local day; a schedule without
intervals is open except on holidays; a department without a schedule, or no department at
all, is always open). The same rules as ``botflows.selectors.department_availability``, here
measured over an interval instead of tested at one moment.
"""

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

from departments.models import BusinessSchedule

Window = tuple[float, float]  # POSIX seconds


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)


def _at(day: date, moment: time, zone: ZoneInfo) -> float:
    return datetime.combine(day, moment, tzinfo=zone).timestamp()


def _day_windows(schedule: BusinessSchedule, day: date, zone: ZoneInfo) -> Iterable[Window]:
    """The opening windows that start on the local ``day``."""
    intervals = list(schedule.hours.all())
    if not intervals:
        yield _at(day, time.min, zone), _at(day + timedelta(days=1), time.min, zone)
        return
    for interval in intervals:
        if interval.weekday != day.weekday():
            continue
        closes_on = day if interval.opens_at < interval.closes_at else day + timedelta(days=1)
        yield _at(day, interval.opens_at, zone), _at(closes_on, interval.closes_at, zone)


def _without_holidays(window: Window, holidays: set[date], zone: ZoneInfo) -> Iterable[Window]:
    """``window`` cut at local midnights, holidays' parts left out."""
    start, end = window
    while start < end:
        local = datetime.fromtimestamp(start, zone)
        midnight = _at(local.date() + timedelta(days=1), time.min, zone)
        piece_end = min(end, midnight)
        if local.date() not in holidays:
            yield start, piece_end
        start = piece_end


def _union_length(windows: list[Window]) -> float:
    total, reach = 0.0, float("-inf")
    for start, end in sorted(windows):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def open_seconds(*, schedule: BusinessSchedule | None, start: datetime, end: datetime) -> float:
    """Seconds of ``[start, end)`` (aware) when the schedule's department is open."""
    if end <= start:
        return 0.0
    if schedule is None:
        return (end - start).total_seconds()
    zone = _zone(schedule.time_zone)
    holidays = {holiday.date for holiday in schedule.holidays.all()}
    lo, hi = start.timestamp(), end.timestamp()
    first_day = start.astimezone(zone).date() - timedelta(days=1)  # a window from the eve
    last_day = end.astimezone(zone).date()
    windows: list[Window] = []
    day = first_day
    while day <= last_day:
        for window in _day_windows(schedule, day, zone):
            for piece_start, piece_end in _without_holidays(window, holidays, zone):
                clipped = (max(piece_start, lo), min(piece_end, hi))
                if clipped[0] < clipped[1]:
                    windows.append(clipped)
        day += timedelta(days=1)
    return round(_union_length(windows), 6)


def schedules_for(department_ids: Iterable[int | None]) -> dict[int, BusinessSchedule]:
    """The schedules of these departments with their hours and holidays (three queries at most,
    none when no department is given)."""
    ids = {pk for pk in department_ids if pk is not None}
    if not ids:
        return {}
    return {
        schedule.department_id: schedule
        for schedule in BusinessSchedule.objects.filter(department_id__in=ids).prefetch_related(
            "hours", "holidays"
        )
    }
