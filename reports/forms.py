"""The reports page's filters: a GET form whose values live in the URL (a reload or a bookmark
keeps them). A value that does not parse is reported next to its field and replaced by its
default, so the page always shows figures."""

from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Role, User
from departments.models import Department

from .selectors import ReportFilters

DEFAULT_DAYS = 7
MAX_DAYS = 366


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class ReportFilterForm(forms.Form):
    department = forms.ModelChoiceField(
        label=_("Department"),
        queryset=Department.objects.filter(is_active=True).order_by("name"),
        required=False,
        empty_label=_("All departments"),
    )
    agent = forms.ModelChoiceField(
        label=_("Agent"),
        queryset=User.objects.people()
        .filter(is_active=True, role__in=[Role.AGENT, Role.SUPERVISOR])
        .order_by("name"),
        required=False,
        empty_label=_("All agents"),
    )
    business_hours = forms.BooleanField(label=_("Business hours only"), required=False)
    bucket = forms.ChoiceField(
        label=_("Group by"),
        choices=[("day", _("Day")), ("hour", _("Hour"))],
        required=False,
    )

    def __init__(self, params: Any) -> None:
        today = timezone.localdate()
        self.default_from = today - timedelta(days=DEFAULT_DAYS - 1)
        self.default_to = today
        data = {
            "from": self.default_from.isoformat(),
            "to": self.default_to.isoformat(),
            "bucket": "day",
        }
        data.update({key: value for key, value in params.items() if value != ""})
        super().__init__(data)
        # ``from`` is a Python keyword: the date fields are added here, first in the form.
        dates = {
            "from": forms.DateField(
                label=_("From"), widget=forms.DateInput(attrs={"type": "date"})
            ),
            "to": forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"})),
        }
        self.fields = {**dates, **self.fields}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end:
            if start > end:
                self.add_error("to", _("The end date must not be before the start date."))
            elif (end - start).days >= MAX_DAYS:
                self.add_error("to", _("Choose at most %(days)d days.") % {"days": MAX_DAYS})
        return cleaned

    def filters(self) -> ReportFilters:
        """What the valid fields ask for; the defaults where a field is not valid."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        start = cleaned.get("from") or self.default_from
        end = cleaned.get("to") or self.default_to
        if start > end or (end - start).days >= MAX_DAYS:
            start, end = self.default_from, self.default_to
        department, agent = cleaned.get("department"), cleaned.get("agent")
        return ReportFilters(
            date_from=_midnight(start),
            date_to=_midnight(end + timedelta(days=1)),  # ``to`` is inclusive
            department_id=department.pk if department else None,
            agent_id=agent.pk if agent else None,
            business_hours=bool(cleaned.get("business_hours")),
            bucket=cleaned.get("bucket") or "day",
        )

    def query(self, filters: ReportFilters) -> dict[str, str]:
        """The same filters as the stats and CSV API's parameters (``to`` inclusive)."""
        params = {
            "from": timezone.localtime(filters.date_from).date().isoformat(),
            "to": (timezone.localtime(filters.date_to).date() - timedelta(days=1)).isoformat(),
            "bucket": filters.bucket,
        }
        if filters.department_id:
            params["department"] = str(filters.department_id)
        if filters.agent_id:
            params["agent"] = str(filters.agent_id)
        if filters.business_hours:
            params["business_hours"] = "true"
        return params
