"""The supervisors' reports page ``/reports/`` (contract §9) and its live counters fragment.

Interfaces only: the filters are parsed by :class:`reports.forms.ReportFilterForm`, every figure
comes from :mod:`reports.selectors` (the same ``report_stats`` as the API), the charts from
:mod:`reports.charts`. Supervisors and admins; agents get 403, anonymous users the login form.
"""

from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

from common.replica import replica_reads

from .charts import series_charts
from .forms import ReportFilterForm
from .selectors import (
    goal_list_active,
    goal_list_progress,
    report_live_counters,
    report_stats,
)


def supervisors_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.sees_everything:  # type: ignore[union-attr]
            raise PermissionDenied(gettext("Only supervisors and administrators can do this."))
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@supervisors_only
def report_page(request: HttpRequest) -> HttpResponse:
    form = ReportFilterForm(request.GET)
    filters = form.filters()
    with replica_reads():
        stats = report_stats(filters=filters)
    query = form.query(filters)
    counters_query = {"department": query["department"]} if "department" in query else {}
    context = {
        "page": "reports",
        "form": form,
        "filters": filters,
        "range_from": date.fromisoformat(query["from"]),
        "range_to": date.fromisoformat(query["to"]),
        "stats": stats,
        "counters": report_live_counters(department_id=filters.department_id),
        "charts": series_charts(
            series=stats["series"],
            date_from=filters.date_from,
            date_to=filters.date_to,
            bucket=filters.bucket,
        ),
        "goals": goal_list_progress(goals=list(goal_list_active()), stats=stats),
        "csv_url": reverse("api-report-conversations") + "?" + urlencode(query),
        "counters_url": reverse("reports:counters") + "?" + urlencode(counters_query),
    }
    return render(request, "reports/page.html", context)


@require_GET
@supervisors_only
def report_counters(request: HttpRequest) -> HttpResponse:
    """The headline's live part, re-fetched by the page when the desk's socket says so."""
    filters = ReportFilterForm(request.GET).filters()
    counters = report_live_counters(department_id=filters.department_id)
    return render(request, "reports/page.html#live_counters", {"counters": counters})
