"""The reports page's charts: inline SVG written on the server (no chart library, no CDN).

A chart is a ``<figure>`` holding an ``<svg role="img">`` whose ``viewBox`` scales it to the width
of its box (a phone or a printed page), a title, axis labels and a ``<title>`` tooltip on every
bar or point. Every text that reaches the markup goes through :func:`django.utils.html.escape`.
"""

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext

WIDTH = 640
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 34
TICKS = 4  # horizontal grid lines above the baseline
MAX_X_LABELS = 8
MAX_FILLED_BUCKETS = 400  # past this, only the buckets that have conversations are drawn


@dataclasses.dataclass(frozen=True)
class Point:
    label: str  # under the axis (short)
    value: float | None  # None: no data in this bucket (a gap in a line, no bar)
    tooltip: str  # the point's ``<title>``


def human_duration(seconds: float | None) -> str:
    """``45 s``, ``3 min 20 s``, ``1 h 05 min``, ``2 d 03 h``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    total = max(0, round(seconds))
    if total < 60:
        return gettext("%(s)d s") % {"s": total}
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return gettext("%(m)d min %(s)02d s") % {"m": minutes, "s": secs}
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return gettext("%(h)d h %(m)02d min") % {"h": hours, "m": minutes}
    days, hours = divmod(hours, 24)
    return gettext("%(d)d d %(h)02d h") % {"d": days, "h": hours}


def nice_ceiling(value: float) -> float:
    """The top of the y axis: the smallest 1, 2, 2.5 or 5 times a power of ten >= ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


_DURATION_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


def duration_ceiling(seconds: float) -> float:
    """The top of a duration axis: :data:`TICKS` steps of a round duration (30 s, 5 min, 1 h…)."""
    for step in _DURATION_STEPS:
        if step * TICKS >= seconds:
            return float(step * TICKS)
    return float(math.ceil(seconds / (TICKS * 43200)) * TICKS * 43200)  # half-days


def count_ceiling(count: float) -> float:
    """The top of a count axis: :data:`TICKS` whole steps (a count has no 0.25)."""
    return float(max(1, math.ceil(nice_ceiling(count / TICKS))) * TICKS)


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _plot_x(index: int, count: int) -> float:
    """The centre of slot ``index`` of ``count`` across the plot."""
    width = WIDTH - LEFT - RIGHT
    return LEFT + (index + 0.5) * width / max(count, 1)


def _plot_y(value: float, top: float) -> float:
    height = HEIGHT - TOP - BOTTOM
    return HEIGHT - BOTTOM - (value / top) * height


def _axes(points: Sequence[Point], top: float, value_label: Callable[[float], str]) -> list[str]:
    parts = []
    for tick in range(TICKS + 1):
        value = top * tick / TICKS
        y = _plot_y(value, top)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text class="axis-label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(value_label(value))}</text>"
        )
    every = max(1, math.ceil(len(points) / MAX_X_LABELS))
    for index, point in enumerate(points):
        if index % every == 0:
            x = _plot_x(index, len(points))
            parts.append(
                f'<text class="axis-label" x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" '
                f'text-anchor="middle">{escape(point.label)}</text>'
            )
    return parts


def _figure(title: str, summary: str, body: Iterable[str], kind: str) -> SafeString:
    label = f"{title}: {summary}" if summary else title
    return mark_safe(  # noqa: S308 - every text above went through escape()
        f'<figure class="chart chart-{escape(kind)}"><figcaption>{escape(title)}</figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg></figure>"
    )


def _empty(title: str, kind: str) -> SafeString:
    message = gettext("No data in this period.")
    return mark_safe(  # noqa: S308 - escaped
        f'<figure class="chart chart-{escape(kind)} chart-empty"><figcaption>{escape(title)}'
        f'</figcaption><p class="muted">{escape(message)}</p></figure>'
    )


def _top(points: Sequence[Point], y_max: float | None) -> float:
    values = [p.value for p in points if p.value is not None]
    return y_max if y_max is not None else nice_ceiling(max(values, default=0))


def bar_chart(
    *,
    title: str,
    points: Sequence[Point],
    value_label: Callable[[float], str] = _number,
    summary: str = "",
) -> SafeString:
    """One bar per point (a point without a value has none); bars count things, so the axis
    steps in whole numbers."""
    if not any(p.value for p in points):
        return _empty(title, "bars")
    top = count_ceiling(max(p.value or 0 for p in points))
    slot = (WIDTH - LEFT - RIGHT) / len(points)
    bar = max(1.0, slot * 0.7)
    body = _axes(points, top, value_label)
    for index, point in enumerate(points):
        if not point.value:  # nothing to draw (nor to hover)
            continue
        x = _plot_x(index, len(points)) - bar / 2
        y = _plot_y(point.value, top)
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
            f'height="{HEIGHT - BOTTOM - y:.1f}"><title>{escape(point.tooltip)}</title></rect>'
        )
    return _figure(title, summary, body, "bars")


def line_chart(
    *,
    title: str,
    points: Sequence[Point],
    value_label: Callable[[float], str] = _number,
    y_max: float | None = None,
    summary: str = "",
) -> SafeString:
    """A line through the points that have a value (broken where one has none), a dot each."""
    if all(p.value is None for p in points):
        return _empty(title, "line")
    top = _top(points, y_max)
    body = _axes(points, top, value_label)
    runs: list[list[str]] = [[]]
    dots = []
    for index, point in enumerate(points):
        if point.value is None:
            runs.append([])
            continue
        x, y = _plot_x(index, len(points)), _plot_y(min(point.value, top), top)
        runs[-1].append(f"{x:.1f},{y:.1f}")
        dots.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="4">'
            f"<title>{escape(point.tooltip)}</title></circle>"
        )
    body += [f'<polyline class="line" points="{" ".join(run)}"/>' for run in runs if len(run) > 1]
    body += dots
    return _figure(title, summary, body, "line")


# --- the report's series ---------------------------------------------------------------------


def _buckets(
    series: Sequence[Mapping[str, Any]], *, date_from: datetime, date_to: datetime, bucket: str
) -> list[tuple[datetime, Mapping[str, Any] | None]]:
    """Every hour or day of the range (those without conversations too), each with its row of
    the series; only the series' own buckets when the range holds too many."""
    zone = timezone.get_current_timezone()
    by_start = {timezone.localtime(row["bucket"], zone): row for row in series}
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start = timezone.localtime(date_from, zone)
    start = start.replace(minute=0, second=0, microsecond=0)
    if bucket != "hour":
        start = start.replace(hour=0)
    count = math.ceil((date_to - start) / step)
    if count > MAX_FILLED_BUCKETS or count <= 0:
        return sorted(by_start.items(), key=lambda item: item[0])
    moments = []
    for index in range(count):
        # Days are counted on the wall clock (a daylight-saving day is 23 or 25 hours long).
        naive = start.replace(tzinfo=None) + step * index
        moments.append(timezone.make_aware(naive, zone))
    return [(moment, by_start.get(moment)) for moment in moments]


def _labels(moment: datetime, bucket: str) -> tuple[str, str]:
    """(short axis label, the tooltip's when)."""
    # Translators: a day under a chart, as a Django date format: n/j reads 11/23, j/n 23/11.
    day = date_format(moment, gettext("n/j"))
    if bucket == "hour":
        return date_format(moment, "H"), f"{day} {date_format(moment, 'H:i')}"
    return day, day


def series_charts(
    *, series: Sequence[Mapping[str, Any]], date_from: datetime, date_to: datetime, bucket: str
) -> dict[str, SafeString]:
    """The page's three charts from :func:`reports.selectors.report_stats`' ``series``."""
    rows = _buckets(series, date_from=date_from, date_to=date_to, bucket=bucket)
    volume, first_response, csat = [], [], []
    for moment, row in rows:
        label, when = _labels(moment, bucket)
        count = row["conversations"] if row else 0
        volume.append(
            Point(
                label,
                count,
                ngettext(
                    "%(when)s: %(count)d conversation", "%(when)s: %(count)d conversations", count
                )
                % {"when": when, "count": count},
            )
        )
        seconds = row["first_response_seconds_avg"] if row else None
        first_response.append(
            Point(
                label,
                seconds,
                gettext("%(when)s: first response %(duration)s")
                % {"when": when, "duration": human_duration(seconds)},
            )
        )
        score = row["csat_average"] if row else None
        csat.append(
            Point(
                label,
                score,
                gettext("%(when)s: CSAT %(score)s")
                % {"when": when, "score": "—" if score is None else _number(score)},
            )
        )
    total = sum(p.value or 0 for p in volume)
    return {
        "volume": bar_chart(
            title=gettext("Conversations"),
            points=volume,
            summary=ngettext("%(count)d conversation", "%(count)d conversations", int(total))
            % {"count": total},
        ),
        "first_response": line_chart(
            title=gettext("First response (average)"),
            points=first_response,
            value_label=human_duration,
            y_max=duration_ceiling(max((p.value or 0 for p in first_response), default=0)),
        ),
        "csat": line_chart(title=gettext("CSAT (average, 1 to 5)"), points=csat, y_max=5.0),
    }
