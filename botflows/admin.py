from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import BotConfiguration


@admin.register(BotConfiguration)
class BotConfigurationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("key", "description", "updated_at", "updated_by")
    list_select_related = ("updated_by",)
    search_fields = ("key", "description")
    fields = ("key", "description", "value", "updated_by", "updated_at")
    readonly_fields = ("updated_by", "updated_at")

    def save_model(
        self, request: HttpRequest, obj: BotConfiguration, form: Any, change: bool
    ) -> None:
        obj.updated_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
