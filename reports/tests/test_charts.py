"""The reports' SVG charts: escaped labels, bars and points scaled to the axis, empty series,
every day of the range drawn, durations written for people."""

import re
from datetime import datetime
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
from django.utils import translation

from reports.charts import (
    BOTTOM,
    HEIGHT,
    TOP,
    Point,
    bar_chart,
    count_ceiling,
    duration_ceiling,
    human_duration,
    line_chart,
    nice_ceiling,
    series_charts,
)

ZONE = ZoneInfo("America/Sao_Paulo")
SVG = "{http://www.w3.org/2000/svg}"
PLOT = HEIGHT - TOP - BOTTOM


@pytest.fixture(autouse=True)
def _english(settings):  # type: ignore[no-untyped-def]
    settings.TIME_ZONE = "America/Sao_Paulo"
    with translation.override("en"):
        yield


def svg_of(html: str) -> ElementTree.Element:
    match = re.search(r"<svg.*</svg>", html, re.S)
    assert match, html
    return ElementTree.fromstring(match.group(0))  # noqa: S314 - our own markup


def test_every_label_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    html = bar_chart(
        title=f"T {evil}", points=[Point(evil, 3, evil), Point("b&c", 1, "b")], summary=evil
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "b&amp;c" in html
    svg = svg_of(html)  # well-formed XML: nothing broke out of an attribute or a text
    assert svg.get("role") == "img"
    assert evil in (svg.get("aria-label") or "")
    assert [t.text for t in svg.iter(f"{SVG}title")][1] == evil  # the first bar's tooltip


def test_bars_scale_to_the_axis() -> None:
    svg = svg_of(bar_chart(title="V", points=[Point("a", 8, "a"), Point("b", 4, "b")]))
    heights = [float(r.get("height") or 0) for r in svg.iter(f"{SVG}rect")]
    assert heights[0] == pytest.approx(PLOT)  # 8 is the top of the axis
    assert heights[1] == pytest.approx(PLOT / 2)
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert labels[:5] == ["0", "2", "4", "6", "8"]


def test_a_count_axis_steps_in_whole_numbers() -> None:
    svg = svg_of(bar_chart(title="V", points=[Point("a", 1, "a")]))
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert labels[:5] == ["0", "1", "2", "3", "4"]
    assert count_ceiling(10) == 12
    assert count_ceiling(37) == 40
    assert svg.get("viewBox") == "0 0 640 240"


def test_a_line_breaks_where_a_bucket_has_no_value() -> None:
    points = [Point("a", 60, "a"), Point("b", 120, "b"), Point("c", None, "c"), Point("d", 30, "d")]
    svg = svg_of(line_chart(title="F", points=points, value_label=human_duration))
    lines = list(svg.iter(f"{SVG}polyline"))
    assert len(lines) == 1  # a-b; d alone is only a dot
    assert len(list(svg.iter(f"{SVG}circle"))) == 3


def test_duration_axes_step_in_round_durations() -> None:
    assert duration_ceiling(0) == 4
    assert duration_ceiling(100) == 120  # 30 s steps
    assert duration_ceiling(200) == 240  # 1 min steps
    assert duration_ceiling(1000) == 1200  # 5 min steps
    assert duration_ceiling(3 * 86400) == 4 * 43200 * 2  # half-days
    points = [Point("a", 100, "a")]
    top = duration_ceiling(100)
    svg = svg_of(line_chart(title="F", points=points, value_label=human_duration, y_max=top))
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert labels[:5] == ["0 s", "30 s", "1 min 00 s", "1 min 30 s", "2 min 00 s"]


def test_a_fixed_top_for_csat() -> None:
    svg = svg_of(line_chart(title="C", points=[Point("a", 2.5, "a")], y_max=5))
    dot = next(svg.iter(f"{SVG}circle"))
    assert float(dot.get("cy") or 0) == pytest.approx(HEIGHT - BOTTOM - PLOT / 2)


def test_empty_series() -> None:
    for html in (
        bar_chart(title="V", points=[]),
        bar_chart(title="V", points=[Point("a", 0, "a")]),
        line_chart(title="F", points=[Point("a", None, "a")]),
    ):
        assert "<svg" not in html
        assert "No data in this period." in html


def test_nice_ceiling() -> None:
    assert nice_ceiling(0) == 1
    assert nice_ceiling(7) == 10
    assert nice_ceiling(10) == 10
    assert nice_ceiling(11) == 20
    assert nice_ceiling(230) == 250
    assert nice_ceiling(0.3) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0, "0 s"),
        (44.6, "45 s"),
        (200, "3 min 20 s"),
        (3900, "1 h 05 min"),
        (2 * 86400 + 3 * 3600 + 59, "2 d 03 h"),
    ],
)
def test_durations_for_people(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_every_day_of_the_range_has_its_bucket() -> None:
    series = [
        {
            "bucket": datetime(2026, 11, 24, tzinfo=ZONE),
            "conversations": 4,
            "first_response_seconds_avg": 90.0,
            "csat_average": 4.5,
        }
    ]
    charts = series_charts(
        series=series,
        date_from=datetime(2026, 11, 23, tzinfo=ZONE),
        date_to=datetime(2026, 11, 26, tzinfo=ZONE),
        bucket="day",
    )
    volume = svg_of(charts["volume"])
    x_labels = [t.text for t in volume.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert x_labels == ["11/23", "11/24", "11/25"]
    assert [r.find(f"{SVG}title").text for r in volume.iter(f"{SVG}rect")] == [  # type: ignore[union-attr]
        "11/24: 4 conversations"
    ]
    assert "11/24: first response 1 min 30 s" in charts["first_response"]
    assert "11/24: CSAT 4.5" in charts["csat"]
    with translation.override("pt-br"):
        charts = series_charts(
            series=series,
            date_from=datetime(2026, 11, 23, tzinfo=ZONE),
            date_to=datetime(2026, 11, 26, tzinfo=ZONE),
            bucket="day",
        )
    assert "24/11: 4 conversas" in charts["volume"]
