"""How the reports page writes its figures (formatting only)."""

from django import template

from reports.charts import human_duration

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """``3 min 20 s``, ``1 h 05 min``; ``—`` when unknown."""
    return human_duration(seconds)
