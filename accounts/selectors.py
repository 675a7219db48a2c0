"""Reads about users, scoped to what the asking user may see."""

from django.db.models import Prefetch, QuerySet

from departments.models import Department

from .models import ApiKey, AuditLogEntry, User
from .presence import online_user_ids


def user_list_visible_to(*, user: User) -> QuerySet[User]:
    """Admins and supervisors see every user; agents see active colleagues (to transfer to).
    The service accounts API keys act as are nobody's colleagues: never listed."""
    qs = (
        User.objects.people()
        .prefetch_related(Prefetch("departments", queryset=Department.objects.order_by("name")))
        .order_by("name", "email")
    )
    if not (user.is_authenticated and user.is_active):
        return qs.none()
    if user.sees_everything:
        return qs
    return qs.filter(is_active=True)


def user_get_visible(*, user: User, pk: int) -> User:
    """``User.DoesNotExist`` when out of reach."""
    return user_list_visible_to(user=user).get(pk=pk)


def user_get_me(*, user: User) -> User:
    """The caller, as ``/auth/me`` shows it (an API key's service account too)."""
    return User.objects.prefetch_related(
        Prefetch("departments", queryset=Department.objects.order_by("name"))
    ).get(pk=user.pk)


def user_list_online(*, user: User) -> QuerySet[User]:
    """The visible, active users with at least one live console connection."""
    candidates = user_list_visible_to(user=user).filter(is_active=True)
    online = online_user_ids(candidates=candidates.values_list("pk", flat=True))
    return candidates.filter(pk__in=online)


def audit_log_list(*, action: str | None = None) -> QuerySet[AuditLogEntry]:
    qs = AuditLogEntry.objects.select_related("actor").order_by("-created_at", "-id")
    return qs.filter(action=action) if action else qs


def api_key_list() -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("created_by").order_by("-created_at", "-id")


def api_key_get(*, pk: int) -> ApiKey:
    """``ApiKey.DoesNotExist`` when there is none."""
    return api_key_list().get(pk=pk)


def api_key_get_usable(*, key_hash: str) -> ApiKey | None:
    """The unrevoked key with this hash whose service account is active, with that account."""
    return (
        ApiKey.objects.select_related("user")
        .filter(key_hash=key_hash, revoked=False, user__is_active=True)
        .first()
    )
