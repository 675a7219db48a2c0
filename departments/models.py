from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from common.models import TimeStampedModel


class AssignmentMode(models.TextChoices):
    """How a conversation entering the department's queue finds its agent (contract §10)."""

    MANUAL = "manual", _("Manual (agents take conversations from the queue)")
    ROUND_ROBIN = "round_robin", _("Round robin")
    LEAST_BUSY = "least_busy", _("Least busy")


class Department(TimeStampedModel):
    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    assignment = models.CharField(
        _("assignment"),
        max_length=20,
        choices=AssignmentMode.choices,
        default=AssignmentMode.MANUAL,
        help_text=_(
            "Round robin and least busy give each conversation entering the queue to an "
            "available, online agent of the department with room for it."
        ),
    )
    # Auto-close (contract §10): a conversation idle this long while waiting for the customer
    # (our message was the last) is closed, after ``auto_close_message``. Empty: never.
    auto_close_minutes = models.PositiveIntegerField(
        _("auto-close after (minutes)"),
        null=True,
        blank=True,
        help_text=_(
            "Close a conversation when the customer has not answered our last message for this "
            "many minutes. Leave empty to never close automatically."
        ),
    )
    auto_close_message = models.TextField(
        _("auto-close message"),
        blank=True,
        help_text=_("Sent to the customer just before the conversation is closed (optional)."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=models.Q(assignment__in=["manual", "round_robin", "least_busy"]),
                name="department_assignment_valid",
            ),
            models.CheckConstraint(
                condition=Q(auto_close_minutes__isnull=True) | Q(auto_close_minutes__gte=1),
                name="department_auto_close_minutes_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class BusinessSchedule(TimeStampedModel):
    """When a department's queue is staffed. A department without a schedule is always open."""

    department = models.OneToOneField(
        Department,
        on_delete=models.CASCADE,
        related_name="schedule",
        verbose_name=_("department"),
    )
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="America/Sao_Paulo", help_text=_("IANA name.")
    )
    out_of_hours_message = models.TextField(
        _("out-of-hours message"),
        blank=True,
        help_text=_("Leave empty for the bot's default message."),
    )

    class Meta:
        ordering = ["department__name"]
        verbose_name = _("business hours")
        verbose_name_plural = _("business hours")

    def __str__(self) -> str:
        return f"{self.department} ({self.time_zone})"


class BusinessHours(models.Model):
    """One opening interval on a weekday, in the schedule's time zone (may run past midnight)."""

    schedule = models.ForeignKey(BusinessSchedule, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices)
    opens_at = models.TimeField(_("opens at"))
    closes_at = models.TimeField(_("closes at"))

    class Meta:
        ordering = ["schedule", "weekday", "opens_at"]
        verbose_name = _("opening interval")
        verbose_name_plural = _("opening intervals")

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens_at:%H:%M}-{self.closes_at:%H:%M}"


class Holiday(models.Model):
    """A date (in the schedule's time zone) when the department is closed all day."""

    schedule = models.ForeignKey(
        BusinessSchedule, on_delete=models.CASCADE, related_name="holidays"
    )
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=100, blank=True)

    class Meta:
        ordering = ["schedule", "date"]
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["schedule", "date"], name="holiday_unique_date"),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"
