"""Goals in the back office: admins set them (through ``reports.services``, audited),
supervisors may look (``reports.view_goal``)."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from common.admin import ServiceBackedAdminMixin

from . import services
from .models import Goal


@admin.register(Goal)
class GoalAdmin(ServiceBackedAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("metric", "target", "agent", "department", "is_active", "updated_at")
    list_filter = ("is_active", "metric", "department")
    fields = ("metric", "target", "agent", "department", "is_active", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")
    autocomplete_fields = ("agent", "department")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Goal]:
        return super().get_queryset(request).select_related("agent", "department")

    def save_model(self, request: HttpRequest, obj: Goal, form: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {name: data[name] for name in ("metric", "target", "agent", "department")}
        fields["is_active"] = data["is_active"]
        if change:
            self.run_service(request, services.goal_update, goal=obj, actor=request.user, **fields)
            return
        created = self.run_service(request, services.goal_create, actor=request.user, **fields)
        if created is not None:
            obj.pk = created.pk
            obj.created_at, obj.updated_at = created.created_at, created.updated_at
            obj._state.adding = False
            obj._state.db = created._state.db

    def delete_model(self, request: HttpRequest, obj: Goal) -> None:
        self.run_service(request, services.goal_delete, goal=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Goal]) -> None:
        for goal in queryset:
            self.run_service(request, services.goal_delete, goal=goal, actor=request.user)
