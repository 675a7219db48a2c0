"""Back office for the people who work the desk.

Our ``User`` logs in by e-mail and has no ``username``, ``is_staff`` or groups: what a user may do
follows from ``role`` (see ``User.has_perm``). The forms below are Django's ``UserAdmin`` forms
adapted to that model: the same password handling (set at creation, changed through the separate
"change password" page, never shown), plus the user's departments.
"""

from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    BaseUserCreationForm,
    ReadOnlyPasswordHashField,
    SetUnusablePasswordMixin,
)
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from common.admin import ReadOnlyAdminMixin, ServiceBackedAdminMixin
from departments.models import Department

from .models import ApiKey, User
from .services import api_key_revoke, user_revoke_tokens, user_set_password, user_update
from .views import AdminLoginForm

# Who is changing a password on the admin's password page (the form only knows the user).
_password_actor: ContextVar[User | None] = ContextVar("admin_password_actor", default=None)


def _departments_field() -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        label=_("Departments"),
        queryset=Department.objects.order_by("name"),
        required=False,
        widget=FilteredSelectMultiple(_("Departments"), is_stacked=False),
        help_text=_("The queues this user works. Admins and supervisors see every queue anyway."),
    )


class DepartmentsFormMixin(forms.ModelForm):  # type: ignore[type-arg]
    """The user's departments as a two-box picker.

    ``User.departments`` goes through ``UserDepartment``, which the admin will not render itself,
    so the form carries a plain field (``member_of``) and saves it with the other relations.
    """

    member_of = _departments_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and "member_of" not in self.initial:
            self.initial["member_of"] = list(self.instance.departments.all())

    def _save_m2m(self) -> None:
        super()._save_m2m()  # type: ignore[misc]
        if "member_of" in self.cleaned_data:
            self.instance.departments.set(self.cleaned_data["member_of"])


class UserCreationForm(  # type: ignore[misc]
    SetUnusablePasswordMixin, DepartmentsFormMixin, BaseUserCreationForm
):
    """Django's admin user-creation form for a user that logs in by e-mail."""

    usable_password = SetUnusablePasswordMixin.create_usable_password_field()

    class Meta:
        model = User
        fields = ("email", "name", "role")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password1"].required = False
        self.fields["password2"].required = False

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                _("A user with this e-mail address already exists."), code="unique"
            )
        return email


class UserChangeForm(DepartmentsFormMixin):
    """Edits everything but the password, which has its own page (as in Django's UserAdmin)."""

    password = ReadOnlyPasswordHashField(
        label=_("Password"),
        help_text=_("Raw passwords are not stored, so there is no way to see the user’s password."),  # noqa: RUF001 (Django's own msgid)
    )

    class Meta:
        model = User
        fields = ("email", "name", "role", "is_active", "max_conversations")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Left out of a post (a script, an older form): the capacity stays as it is.
        if "max_conversations" in self.fields:  # not on a read-only (supervisor's) page
            self.fields["max_conversations"].required = False

    def clean_max_conversations(self) -> int:
        value = self.cleaned_data.get("max_conversations")
        return self.instance.max_conversations if value is None else int(value)

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        others = User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError(
                _("A user with this e-mail address already exists."), code="unique"
            )
        return email


class PasswordChangeForm(AdminPasswordChangeForm):
    """Django's admin password form, saving through ``user_set_password`` (tokens revoked)."""

    def save(self, commit: bool = True) -> User:
        if self.cleaned_data["set_usable_password"]:
            return user_set_password(
                user=self.user,
                actor=_password_actor.get(),
                password=self.cleaned_data["password1"],
            )
        user: User = super().save(commit=commit)  # password login disabled
        user_revoke_tokens(user=user)
        return user


@admin.register(User)
class UserAdmin(ServiceBackedAdminMixin, DjangoUserAdmin):  # type: ignore[type-arg]
    """Users are created by Django's form; changes go through ``accounts.services``."""

    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = PasswordChangeForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Profile"), {"fields": ("name", "role", "member_of", "is_active")}),
        (_("Automatic assignment"), {"fields": ("max_conversations", "availability")}),
        (_("Activity"), {"fields": ("last_login", "last_seen_at", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "email",
                    "name",
                    "role",
                    "member_of",
                    "usable_password",
                    "password1",
                    "password2",
                ),
            },
        ),
    )
    # Availability is the agent's own switch (console, ``PATCH /auth/me``): shown, not edited.
    readonly_fields = ("last_login", "last_seen_at", "created_at", "updated_at", "availability")
    list_display = (
        "email",
        "name",
        "role",
        "is_active",
        "department_names",
        "availability",
        "max_conversations",
        "last_seen_at",
    )
    list_display_links = ("email", "name")
    list_filter = ("role", "is_active", "departments")
    search_fields = ("email", "name")
    ordering = ("name", "email")
    filter_horizontal = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return (
            super()
            .get_queryset(request)
            .filter(is_service_account=False)
            .prefetch_related("departments")
        )

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        self.run_service(
            request,
            user_update,
            user=obj,
            actor=request.user,
            name=data["name"],
            email=data["email"],
            role=data["role"],
            departments=list(data["member_of"]),
            is_active=data["is_active"],
            max_conversations=data["max_conversations"],
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:  # ``user_update`` has set the departments already
            return
        super().save_related(request, form, formsets, change)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        token = _password_actor.set(request.user)  # type: ignore[arg-type]
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_actor.reset(token)

    @admin.display(description=_("departments"))
    def department_names(self, obj: User) -> str:
        # Uses the prefetched departments: one query for the whole page, not one per row.
        return ", ".join(sorted(d.name for d in obj.departments.all())) or "—"


# Permissions follow from the role (``User.has_perm``); groups would only mislead.
admin.site.unregister(Group)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Integration keys (admins): created through ``POST /api/v1/api-keys`` (the key is shown
    there once); here they are listed and can be revoked."""

    list_display = ("name", "role", "prefix", "created_at", "last_used_at", "revoked")
    list_filter = ("role", "revoked")
    search_fields = ("name", "prefix")
    list_select_related = ("created_by",)
    fields = (
        "name",
        "role",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("revoke",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return bool(user.is_active and getattr(user, "is_admin", False))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and self.has_view_permission(request)  # the changelist's actions only

    @admin.action(description=_("Revoke the selected API keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(actor=request.user, api_key=api_key)  # type: ignore[arg-type]
        self.message_user(request, _("The keys were revoked."), messages.SUCCESS)


admin.site.login_form = AdminLoginForm  # throttled like the console's (accounts.login_throttle)
