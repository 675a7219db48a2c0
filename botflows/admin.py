import zoneinfo
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from common.admin import ServiceBackedAdminMixin
from common.exceptions import ServiceError
from departments.models import BusinessHours, BusinessSchedule, Holiday

from . import services
from .models import (
    AIAnswerLog,
    BotConfiguration,
    BotSession,
    Flow,
    FlowNode,
    FlowVersion,
    KnowledgeArticle,
    MenuOption,
)


@admin.register(BotConfiguration)
class BotConfigurationAdmin(ServiceBackedAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Settings are written by ``bot_config_set``, which checks the value's type per key."""

    list_display = ("key", "description", "updated_at", "updated_by")
    list_select_related = ("updated_by",)
    search_fields = ("key", "description")
    fields = ("key", "description", "value", "updated_by", "updated_at")
    readonly_fields = ("updated_by", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # A key is what the bot looks up: renaming would silently drop the setting.
        return ("key", *self.readonly_fields) if obj is not None else tuple(self.readonly_fields)

    def save_model(
        self, request: HttpRequest, obj: BotConfiguration, form: Any, change: bool
    ) -> None:
        row = self.run_service(
            request,
            services.bot_config_set,
            key=obj.key,
            value=form.cleaned_data["value"],
            actor=request.user,
            description=form.cleaned_data["description"],
        )
        if row is not None:
            obj.pk, obj.updated_by, obj.updated_at = row.pk, row.updated_by, row.updated_at
            obj._state.adding = False
            obj._state.db = row._state.db


# --- Flows (the bot issue) ---------------------------------------------------------------------


class FlowNodeInline(admin.StackedInline):  # type: ignore[type-arg]
    model = FlowNode
    fk_name = "flow"
    extra = 0
    show_change_link = True  # menu options are edited on the node's page
    fields = (
        ("key", "kind", "position"),
        "text",
        ("next_node", "department"),
        ("field_name", "validation", "pattern"),
        ("error_text", "menu_button"),
        ("url", "secret", "fallback_node"),
    )


class FlowVersionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = FlowVersion
    extra = 0
    can_delete = False
    fields = ("number", "created_at", "published_by")
    readonly_fields = fields
    ordering = ("-number",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "whatsapp_account", "is_default", "is_active", "published_version")
    list_select_related = ("whatsapp_account",)
    list_filter = ("is_active", "is_default")
    search_fields = ("name",)
    fields = ("name", "whatsapp_account", "is_default", "is_active", "start_node")
    inlines = (FlowNodeInline, FlowVersionInline)
    actions = ("publish",)
    save_on_top = True

    @admin.display(description=_("published version"))
    def published_version(self, obj: Flow) -> int | None:
        latest = obj.versions.order_by("-number").first()
        return latest.number if latest else None

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "start_node":
            object_id = (
                request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            )
            kwargs["queryset"] = FlowNode.objects.filter(flow_id=object_id or 0)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.action(description=_("Publish the selected flows (new conversations use them)"))
    def publish(self, request: HttpRequest, queryset: QuerySet[Flow]) -> None:
        published = 0
        for flow in queryset:
            try:
                services.flow_publish(flow=flow, actor=request.user)  # type: ignore[arg-type]
            except ServiceError as exc:
                self.message_user(request, f"{flow}: {exc.message}", messages.ERROR)
            else:
                published += 1
        if published:
            self.message_user(
                request,
                ngettext("%d flow published.", "%d flows published.", published) % published,
                messages.SUCCESS,
            )


class MenuOptionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = MenuOption
    fk_name = "node"
    extra = 1
    fields = ("number", "title", "description", "keywords", "action", "target_node", "department")


@admin.register(FlowNode)
class FlowNodeAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("key", "flow", "kind", "position", "next_node", "department")
    list_select_related = ("flow", "next_node", "department")
    list_filter = ("flow", "kind")
    search_fields = ("key", "text")
    inlines = (MenuOptionInline,)


@admin.register(FlowVersion)
class FlowVersionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("flow", "number", "created_at", "published_by")
    list_select_related = ("flow", "published_by")
    list_filter = ("flow",)
    readonly_fields = ("flow", "number", "definition", "published_by", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BotSession)
class BotSessionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("conversation", "flow_version", "node_key", "state", "attempts", "ai_turns")
    list_select_related = ("conversation__customer", "flow_version")
    list_filter = ("state",)
    readonly_fields = (
        "conversation",
        "flow_version",
        "node_key",
        "state",
        "attempts",
        "ai_turns",
        "collected",
        "summary",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(KnowledgeArticle)
class KnowledgeArticleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "department", "is_active", "updated_at")
    list_select_related = ("department",)
    list_filter = ("is_active", "department")
    search_fields = ("title", "body", "keywords")


@admin.register(AIAnswerLog)
class AIAnswerLogAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "created_at",
        "conversation",
        "purpose",
        "outcome",
        "confidence",
        "total_tokens",
        "latency_ms",
    )
    list_filter = ("purpose", "outcome", "model")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Business hours (departments app, edited next to the bot that uses them) -----------------


class BusinessHoursInline(admin.TabularInline):  # type: ignore[type-arg]
    model = BusinessHours
    extra = 1


class HolidayInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Holiday
    extra = 1


@admin.register(BusinessSchedule)
class BusinessScheduleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("department", "time_zone")
    list_select_related = ("department",)
    fields = ("department", "time_zone", "out_of_hours_message")
    inlines = (BusinessHoursInline, HolidayInline)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "time_zone":
            zones = sorted(zoneinfo.available_timezones())
            return forms.ChoiceField(
                label=db_field.verbose_name,
                choices=[(zone, zone) for zone in zones],
                initial=db_field.default,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)
