"""Writes about the people who work the desk, and the audit log every app writes to."""

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from common.events import emit
from common.exceptions import NotPermitted, ServiceError
from departments.models import Department

from .events import UserAvailabilityChanged
from .middleware import current_ip
from .models import API_KEY_ROLES, ApiKey, AuditAction, AuditLogEntry, Availability, Role, User


def audit_log_record(
    *,
    actor: User | None,
    action: str,
    target: models.Model | None = None,
    target_repr: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLogEntry:
    """Append one entry to the audit log; ``ip`` defaults to the current request's client IP."""
    target_type = target_id = ""
    if target is not None:
        target_type = target._meta.label_lower
        target_id = str(target.pk)
        target_repr = target_repr or str(target)
    return AuditLogEntry.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr[:255],
        before=before or {},
        after=after or {},
        ip=ip if ip is not None else current_ip.get(),
    )


def _user_state(user: User) -> dict[str, Any]:
    return {
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "is_active": user.is_active,
        "departments": sorted(user.departments.values_list("pk", flat=True)),
        "max_conversations": user.max_conversations,
    }


def user_revoke_tokens(*, user: User) -> int:
    """Blacklist every refresh token the user still holds; returns how many."""
    outstanding = OutstandingToken.objects.filter(user=user).exclude(
        pk__in=BlacklistedToken.objects.values("token_id")
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )
    return len(outstanding)


def _check_user_update(*, user: User, actor: User, role: str | None, admin_only: bool) -> None:
    if not actor.is_admin and (user.pk != actor.pk or admin_only):
        raise NotPermitted(_("Only administrators can change users."))
    if role is not None and role not in Role.values:
        raise ServiceError(_("Unknown role."), code="invalid_role")


def _audit_user_update(
    *, user: User, actor: User, before: dict[str, Any], after: dict[str, Any]
) -> None:
    if before["role"] != after["role"]:
        audit_log_record(
            actor=actor,
            action=AuditAction.ROLE_CHANGED,
            target=user,
            before={"role": before["role"]},
            after={"role": after["role"]},
        )
    if before["is_active"] and not after["is_active"]:
        audit_log_record(actor=actor, action=AuditAction.USER_DEACTIVATED, target=user)
    changed = sorted(k for k in after if before[k] != after[k] and k not in {"role", "is_active"})
    if changed:
        audit_log_record(
            actor=actor,
            action=AuditAction.USER_UPDATED,
            target=user,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )


@transaction.atomic
def user_update(
    *,
    user: User,
    actor: User,
    name: str | None = None,
    email: str | None = None,
    role: str | None = None,
    departments: list[Department] | None = None,
    is_active: bool | None = None,
    max_conversations: int | None = None,
) -> User:
    """Change a user. Only admins change other users, e-mails, roles, departments, activity or
    capacity (``max_conversations``, at least 1);
    anyone may change their own name. Nobody changes their own role or deactivates themselves.
    Deactivating revokes the user's tokens; role changes and deactivations are audited."""
    user = User.objects.select_for_update().get(pk=user.pk)
    _check_user_update(
        user=user,
        actor=actor,
        role=role,
        admin_only=any(
            v is not None for v in (role, departments, is_active, email, max_conversations)
        ),
    )
    if max_conversations is not None and max_conversations < 1:
        raise ServiceError(
            _("A person takes at least one conversation at a time."), code="invalid_capacity"
        )
    if user.pk == actor.pk and ((role is not None and role != user.role) or is_active is False):
        raise ServiceError(
            _("You cannot change your own role or deactivate yourself."), code="self_change"
        )
    if email is not None:
        email = email.strip().lower()
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise ServiceError(_("Another user already has this e-mail."), code="email_taken")
    before = _user_state(user)
    changes = {
        "name": name,
        "email": email,
        "role": role,
        "is_active": is_active,
        "max_conversations": max_conversations,
    }
    fields = [field for field, value in changes.items() if value is not None]
    for field in fields:
        setattr(user, field, changes[field])
    user.save(update_fields=[*fields, "updated_at"])
    if departments is not None:
        user.departments.set(departments)
    after = _user_state(user)
    if before["is_active"] and not after["is_active"]:
        user_revoke_tokens(user=user)
    _audit_user_update(user=user, actor=actor, before=before, after=after)
    return user


def user_deactivate(*, user: User, actor: User) -> User:
    """Deactivate (never delete) a user: they can no longer log in and their tokens stop working."""
    return user_update(user=user, actor=actor, is_active=False)


@transaction.atomic
def user_set_password(*, user: User, actor: User | None, password: str) -> User:
    """Set a new password (validated). Every token issued before stops working."""
    validate_password(password, user=user)
    user.set_password(password)
    user.save(update_fields=["password", "updated_at"])
    user_revoke_tokens(user=user)
    audit_log_record(
        actor=actor or user,
        action=AuditAction.USER_UPDATED,
        target=user,
        after={"password": "changed"},
    )
    return user


# --- Integration keys (contract §8) -------------------------------------------------------------

API_KEY_PREFIX = "sdk_"
API_KEY_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is at most this stale: no write per call


def api_key_hash(key: str) -> str:
    """What is stored of a key: its SHA-256 (hex). Keys are 256-bit random values, so no salt or
    slow hash is needed, and the hash itself is the lookup."""
    return hashlib.sha256(key.encode()).hexdigest()


def _api_key_state(api_key: ApiKey) -> dict[str, Any]:
    return {"name": api_key.name, "role": api_key.role, "prefix": api_key.prefix}


@transaction.atomic
def api_key_create(*, actor: User | None, name: str, role: str) -> tuple[ApiKey, str]:
    """A new key and the service account it acts as; returns the key and its value, which is
    shown this once and never stored."""
    if actor is None or not (actor.is_active and actor.is_admin):
        raise NotPermitted(_("Only administrators can do this."))
    name = name.strip()
    if not name:
        raise ServiceError(_("Give the key a name."), code="missing_name")
    if role not in API_KEY_ROLES:
        raise ServiceError(_("An API key acts as an admin or a supervisor."), code="invalid_role")
    prefix = f"{API_KEY_PREFIX}{secrets.token_hex(4)}"
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    user = User.objects.create_user(
        email=f"{prefix}@api-keys.invalid",
        password=None,  # unusable: the account never logs in
        name=f"API key: {name}"[:150],
        role=role,
        is_service_account=True,
    )
    api_key = ApiKey.objects.create(
        name=name, role=role, prefix=prefix, key_hash=api_key_hash(key), user=user, created_by=actor
    )
    audit_log_record(
        actor=actor,
        action=AuditAction.API_KEY_CREATED,
        target=api_key,
        after=_api_key_state(api_key),
    )
    return api_key, key


@transaction.atomic
def api_key_revoke(*, actor: User | None, api_key: ApiKey) -> ApiKey:
    """Stop a key working at once (kept, marked revoked; its service account is deactivated).
    Revoking a revoked key changes nothing."""
    if actor is None or not (actor.is_active and actor.is_admin):
        raise NotPermitted(_("Only administrators can do this."))
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.revoked:
        return api_key
    api_key.revoked = True
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked", "revoked_at", "updated_at"])
    User.objects.filter(pk=api_key.user_id).update(is_active=False, updated_at=timezone.now())
    audit_log_record(
        actor=actor,
        action=AuditAction.API_KEY_REVOKED,
        target=api_key,
        before={"revoked": False},
        after={"revoked": True},
    )
    return api_key


def api_key_touch(*, api_key: ApiKey, now: datetime | None = None) -> bool:
    """Record that the key was used, at most once a minute (one conditional UPDATE, no lock, so
    concurrent requests never wait on each other). True when it wrote."""
    now = now or timezone.now()
    stale = now - API_KEY_TOUCH_EVERY
    if api_key.last_used_at is not None and api_key.last_used_at > stale:
        return False
    written = (
        ApiKey.objects.filter(pk=api_key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale))
        .update(last_used_at=now)
    )
    if written:
        api_key.last_used_at = now
    return bool(written)


def user_set_notifications(
    *, user: User, actor: User, sound: bool, desktop: bool, signature: bool | None = None
) -> User:
    """The console's preferences of ``user``, which only they change: notifications, and
    (``signature``, None leaves it) whether their texts start with their name."""
    if actor.pk != user.pk:
        raise NotPermitted(_("Only you can change your notification settings."))
    user.notify_sound = sound
    user.notify_desktop = desktop
    fields = ["notify_sound", "notify_desktop"]
    if signature is not None:
        user.signature_enabled = signature
        fields.append("signature_enabled")
    user.save(update_fields=fields)
    return user


@transaction.atomic
def user_set_availability(*, user: User, actor: User, availability: str) -> User:
    """The user's own ``available``/``away`` switch (contract §10): away, automatic assignment
    gives them nothing new; back to available, it gives them what waits in their queues (the
    desk reacts to ``UserAvailabilityChanged``). Setting the same value again changes nothing."""
    if actor.pk != user.pk:
        raise NotPermitted(_("Only you can change your availability."))
    if availability not in Availability.values:
        raise ServiceError(_("Unknown availability."), code="invalid_availability")
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.availability == availability:
        return user
    user.availability = availability
    user.save(update_fields=["availability", "updated_at"])
    emit(UserAvailabilityChanged(user_id=user.pk, availability=availability, actor_id=actor.pk))
    return user
