from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import UserDepartment
from common.admin import ServiceBackedAdminMixin

from . import services
from .models import AssignmentMode, Department


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = UserDepartment
    extra = 0
    fields = ("user", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("user",)
    verbose_name = _("member")
    verbose_name_plural = _("members")

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserDepartment]:
        return super().get_queryset(request).select_related("user")


@admin.register(Department)
class DepartmentAdmin(ServiceBackedAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Departments are created, changed and removed through ``departments.services`` (audited;
    a department with conversations is deactivated rather than deleted)."""

    list_display = ("name", "is_active", "assignment", "member_count", "description")
    list_filter = ("is_active", "assignment")
    search_fields = ("name", "description")
    readonly_fields = ("created_at", "updated_at")
    fields = (
        "name",
        "description",
        "is_active",
        "assignment",
        "auto_close_minutes",
        "auto_close_message",
        "created_at",
        "updated_at",
    )
    inlines = (MembershipInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Department]:
        return super().get_queryset(request).annotate(_member_count=Count("memberships"))

    @admin.display(description=_("members"), ordering="_member_count")
    def member_count(self, obj: Department) -> int:
        return getattr(obj, "_member_count", 0)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if "assignment" in form.base_fields:  # left out of a post: unchanged (new: manual)
            form.base_fields["assignment"].required = False
        return form

    def save_model(self, request: HttpRequest, obj: Department, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {
            "name": data["name"],
            "description": data["description"],
            "is_active": data["is_active"],
            "assignment": data.get("assignment") or (None if change else AssignmentMode.MANUAL),
            "auto_close_minutes": data.get("auto_close_minutes"),
            "auto_close_message": data.get("auto_close_message", ""),
        }
        if change:
            self.run_service(
                request, services.department_update, department=obj, actor=request.user, **fields
            )
            return
        created = self.run_service(
            request, services.department_create, actor=request.user, **fields
        )
        if created is not None:  # the admin carries on with ``obj`` (inlines, log, redirect)
            obj.pk = created.pk
            obj.created_at, obj.updated_at = created.created_at, created.updated_at
            obj._state.adding = False
            obj._state.db = created._state.db

    def delete_model(self, request: HttpRequest, obj: Department) -> None:
        deleted = self.run_service(
            request, services.department_delete, department=obj, actor=request.user
        )
        if deleted is False:
            self.message_user(
                request,
                gettext("%(name)s has conversations: it was deactivated instead of deleted.")
                % {"name": obj.name},
                messages.WARNING,
            )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Department]) -> None:
        for department in queryset:
            self.delete_model(request, department)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        if Department.objects.filter(pk=obj_id).exists():  # deactivated or refused, not deleted
            error = self.service_error(request)
            if error:
                self.message_user(request, error, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:departments_department_changelist"))
        return super().response_delete(request, obj_display, obj_id)
