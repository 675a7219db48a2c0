"""Audit-log receivers for what Django itself announces: logins (console, admin and API failures)
and back-office changes (the admin's own ``LogEntry``)."""

from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver

from common.api import client_ip

from .models import AuditAction, User
from .services import audit_log_record


def _ip(request: Any) -> str | None:
    return client_ip(request) if request is not None and hasattr(request, "META") else None


@receiver(user_logged_in, dispatch_uid="audit_user_logged_in")
def audit_login(sender: Any, request: Any, user: User, **kwargs: Any) -> None:
    audit_log_record(
        actor=user,
        action=AuditAction.LOGIN_SUCCEEDED,
        target=user,
        after={"via": "session"},
        ip=_ip(request),
    )


@receiver(user_login_failed, dispatch_uid="audit_user_login_failed")
def audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    identifier = str(credentials.get("email") or credentials.get("username") or "")[:254]
    audit_log_record(
        actor=None,
        action=AuditAction.LOGIN_FAILED,
        target_repr=identifier,
        after={"email": identifier},
        ip=_ip(request),
    )


@receiver(post_save, sender=LogEntry, dispatch_uid="audit_admin_log_entry")
def audit_admin_change(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    """Every add/change/delete made in the back office is a configuration change."""
    if not created:
        return
    actor = User.objects.filter(pk=instance.user_id).first()
    audit_log_record(
        actor=actor,
        action=AuditAction.CONFIG_CHANGED,
        target_repr=f"{instance.content_type}: {instance.object_repr}"[:255]
        if instance.content_type_id
        else instance.object_repr,
        after={
            "via": "admin",
            "action": {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, "?"),
            "object_id": str(instance.object_id) if instance.object_id is not None else None,
            "content_type": instance.content_type.model if instance.content_type else None,
            "message": instance.get_change_message(),
        },
    )
