"""Writes about departments. Every change is a configuration change: it goes to the audit log."""

from typing import Any

from django.db import transaction
from django.db.models import ProtectedError
from django.utils.translation import gettext as _

from accounts.models import AuditAction, User
from accounts.services import audit_log_record
from common.events import emit
from common.exceptions import NotPermitted, ServiceError

from .events import DepartmentAssignmentChanged
from .models import AssignmentMode, Department


def _state(department: Department) -> dict[str, Any]:
    return {
        "name": department.name,
        "description": department.description,
        "is_active": department.is_active,
        "assignment": department.assignment,
        "auto_close_minutes": department.auto_close_minutes,
        "auto_close_message": department.auto_close_message,
    }


# ``auto_close_minutes`` None means "off": an argument left out is this instead.
KEEP: Any = object()


def _auto_close_check(minutes: int | None) -> None:
    if minutes is not None and minutes < 1:
        raise ServiceError(
            _("Auto-close needs at least one minute (leave it empty to turn it off)."),
            code="invalid_auto_close",
        )


def _require_admin(actor: User) -> None:
    if not (actor.is_active and actor.is_admin):
        raise NotPermitted(_("Only administrators can change departments."))


def _check_assignment(assignment: str | None) -> None:
    if assignment is not None and assignment not in AssignmentMode.values:
        raise ServiceError(_("Unknown assignment mode."), code="invalid_assignment")


@transaction.atomic
def department_create(
    *,
    actor: User,
    name: str,
    description: str = "",
    is_active: bool = True,
    assignment: str = AssignmentMode.MANUAL,
    auto_close_minutes: int | None = None,
    auto_close_message: str = "",
) -> Department:
    _require_admin(actor)
    _check_assignment(assignment)
    _auto_close_check(auto_close_minutes)
    name = name.strip()
    if Department.objects.filter(name__iexact=name).exists():
        raise ServiceError(_("A department with this name already exists."), code="name_taken")
    department = Department.objects.create(
        name=name,
        description=description,
        is_active=is_active,
        assignment=assignment,
        auto_close_minutes=auto_close_minutes,
        auto_close_message=auto_close_message,
    )
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target=department,
        after={"created": _state(department)},
    )
    return department


@transaction.atomic
def department_update(
    *,
    department: Department,
    actor: User,
    name: str | None = None,
    description: str | None = None,
    is_active: bool | None = None,
    assignment: str | None = None,
    auto_close_minutes: int | None = KEEP,
    auto_close_message: str | None = None,
) -> Department:
    """Change a department; ``assignment`` (manual, round_robin, least_busy) takes effect for
    the conversations entering its queue from now on (and the beat's sweep assigns those
    already waiting)."""
    _require_admin(actor)
    _check_assignment(assignment)
    if auto_close_minutes is not KEEP:
        _auto_close_check(auto_close_minutes)
    department = Department.objects.select_for_update().get(pk=department.pk)
    before = _state(department)
    if name is not None:
        name = name.strip()
        if Department.objects.filter(name__iexact=name).exclude(pk=department.pk).exists():
            raise ServiceError(_("A department with this name already exists."), code="name_taken")
        department.name = name
    if description is not None:
        department.description = description
    if is_active is not None:
        department.is_active = is_active
    if assignment is not None:
        department.assignment = assignment
    if auto_close_minutes is not KEEP:
        department.auto_close_minutes = auto_close_minutes
    if auto_close_message is not None:
        department.auto_close_message = auto_close_message
    after = _state(department)
    if before != after:
        department.save()
        changed = sorted(k for k in after if before[k] != after[k])
        audit_log_record(
            actor=actor,
            action=AuditAction.CONFIG_CHANGED,
            target=department,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    if before["assignment"] != after["assignment"]:
        emit(
            DepartmentAssignmentChanged(
                department_id=department.pk, assignment=department.assignment, actor_id=actor.pk
            )
        )
    return department


@transaction.atomic
def department_delete(*, department: Department, actor: User) -> bool:
    """Remove a department that never had a conversation; one with conversations is deactivated
    instead (its history keeps pointing at it). Returns True when the row was deleted."""
    _require_admin(actor)
    department = Department.objects.select_for_update().get(pk=department.pk)
    if department.conversations.exists():
        return _deactivate_instead(department=department, actor=actor)
    try:
        with transaction.atomic():  # the entry goes if the delete is refused
            audit_log_record(
                actor=actor,
                action=AuditAction.CONFIG_CHANGED,
                target=department,
                before=_state(department),
                after={"deleted": True},
            )
            department.delete()
    except ProtectedError:  # something that must keep it still points at it
        return _deactivate_instead(department=department, actor=actor)
    return True


def _deactivate_instead(*, department: Department, actor: User) -> bool:
    if department.is_active:
        department.is_active = False
        department.save(update_fields=["is_active", "updated_at"])
        audit_log_record(
            actor=actor,
            action=AuditAction.CONFIG_CHANGED,
            target=department,
            before={"is_active": True},
            after={"is_active": False, "reason": "delete requested; still referenced"},
        )
    return False
