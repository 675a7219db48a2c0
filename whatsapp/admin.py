"""Back office for the WhatsApp channel: business numbers and the raw deliveries from Meta."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from common.admin import ReadOnlyAdminMixin

from .client import GraphError
from .models import ChannelError, MessageTemplate, PendingStatus, WebhookEvent, WhatsAppAccount
from .selectors import (
    TokenState,
    account_list_with_health,
    account_pending_outbound,
    account_token_state,
)
from .services.templates import TemplateSyncError, templates_sync


class WhatsAppAccountForm(forms.ModelForm):  # type: ignore[type-arg]
    """The access token is write-only: never shown again, kept when the field is left empty."""

    access_token = forms.CharField(
        label=_("access token"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_(
            "Write-only. Leave empty to keep the current token. Without a token here the "
            "number uses WHATSAPP_ACCESS_TOKEN (or the sandbox when that is unset)."
        ),
    )
    clear_access_token = forms.BooleanField(label=_("remove the stored token"), required=False)

    class Meta:
        model = WhatsAppAccount
        fields = (
            "name",
            "phone_number_id",
            "display_phone_number",
            "waba_id",
            "access_token",
            "is_active",
        )

    def clean_access_token(self) -> str:
        token: str = self.cleaned_data.get("access_token", "")
        if not token and self.instance.pk:
            return self.instance.access_token  # left empty: keep what is stored
        return token

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("clear_access_token"):
            cleaned["access_token"] = ""
        return cleaned


_TOKEN_STATES = {
    TokenState.OK: _("working"),
    TokenState.ERROR: _("refused by Meta"),
    TokenState.SANDBOX: _("none (sandbox)"),
}


@admin.register(WhatsAppAccount)
class WhatsAppAccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = WhatsAppAccountForm
    list_display = (
        "name",
        "phone_number_id",
        "display_phone_number",
        "has_own_token",
        "token_state",
        "last_delivery",
        "last_sent_at",
        "last_send_error_display",
        "is_active",
    )
    list_filter = ("is_active",)
    search_fields = ("name", "phone_number_id", "display_phone_number", "waba_id")
    readonly_fields = (
        "has_own_token",
        "token_state",
        "token_error_at",
        "last_delivery",
        "last_sent_at",
        "last_send_error_display",
        "pending_outbound",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[WhatsAppAccount]:
        return account_list_with_health()

    @admin.display(description=_("access token"))
    def token_state(self, obj: WhatsAppAccount) -> str:
        return str(_TOKEN_STATES[account_token_state(obj)])

    @admin.display(description=_("last delivery received"))
    def last_delivery(self, obj: WhatsAppAccount) -> Any:
        return getattr(obj, "last_delivery_at", None) or "—"

    @admin.display(description=_("last send error"))
    def last_send_error_display(self, obj: WhatsAppAccount) -> str:
        if not obj.last_send_error_at:
            return "—"
        moment = date_format(timezone.localtime(obj.last_send_error_at), "SHORT_DATETIME_FORMAT")
        code = f" ({obj.last_send_error_code})" if obj.last_send_error_code is not None else ""
        return f"{moment}{code}: {obj.last_send_error}"

    @admin.display(description=_("messages waiting to be sent"))
    def pending_outbound(self, obj: WhatsAppAccount) -> int:
        return dict(account_pending_outbound()).get(obj.phone_number_id, 0)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = [
            "name",
            "phone_number_id",
            "display_phone_number",
            "waba_id",
            "has_own_token",
            "access_token",
            "clear_access_token",
            "is_active",
            "token_state",
            "token_error_at",
            "last_delivery",
            "last_sent_at",
            "last_send_error_display",
            "pending_outbound",
            "created_at",
            "updated_at",
        ]
        if obj is None:
            fields = [f for f in fields if f in WhatsAppAccountForm.Meta.fields]
        if not self.has_change_permission(request, obj) and obj is not None:
            # Read-only viewers (supervisors) never see the secret, not even rendered as text.
            fields = [f for f in fields if f not in ("access_token", "clear_access_token")]
        return fields

    @admin.display(description=_("own access token"), boolean=True)
    def has_own_token(self, obj: WhatsAppAccount) -> bool:
        return bool(obj.access_token)


def _pretty(value: Any) -> SafeString | str:
    if value in (None, ""):
        return "—"
    return format_html(
        '<pre class="readonly-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False)
    )


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Meta's deliveries exactly as they arrived: evidence, never edited."""

    list_display = ("id", "received_at", "status", "phone_number_id", "attempts", "processed_at")
    list_filter = ("status", "phone_number_id", "received_at")
    show_full_result_count = False
    search_fields = ("=id", "phone_number_id", "error")
    fields = (
        "status",
        "phone_number_id",
        "received_at",
        "processed_at",
        "attempts",
        "error",
        "signature",
        "payload_pretty",
        "raw_body_pre",
    )
    readonly_fields = fields

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: WebhookEvent) -> SafeString | str:
        # Deliveries keep the raw body only (older rows also stored it parsed).
        if obj.payload is not None:
            return _pretty(obj.payload)
        try:
            return _pretty(json.loads(obj.raw_body))
        except ValueError:
            return "—"

    @admin.display(description=_("raw body"))
    def raw_body_pre(self, obj: WebhookEvent) -> SafeString:
        return format_html('<pre class="readonly-raw">{}</pre>', obj.raw_body)


# --- Channel health (read-only: written by the WhatsApp services) ----------------------------


@admin.register(ChannelError)
class ChannelErrorAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Errors of the channel itself (token, permissions, Meta-reported, media): for admins."""

    list_display = ("created_at", "kind", "account", "code", "title")
    list_filter = ("kind", "account", "created_at")
    list_select_related = ("account",)
    search_fields = ("title", "details", "=code")
    fields = (
        "created_at",
        "kind",
        "account",
        "webhook_event",
        "code",
        "title",
        "details",
        "data_pretty",
    )
    readonly_fields = ("data_pretty",)

    @admin.display(description=_("data"))
    def data_pretty(self, obj: ChannelError) -> SafeString | str:
        return _pretty(obj.data)


@admin.register(PendingStatus)
class PendingStatusAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Statuses for message ids we have not stored (yet), waiting to be applied."""

    list_display = ("created_at", "wa_message_id", "__str__")
    search_fields = ("=wa_message_id",)
    fields = ("created_at", "wa_message_id", "webhook_event", "payload_pretty")
    readonly_fields = ("payload_pretty",)

    @admin.display(description=_("status"))
    def payload_pretty(self, obj: PendingStatus) -> SafeString | str:
        return _pretty(obj.payload)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Templates as synced from the Graph API; they are edited in Meta's WhatsApp Manager."""

    list_display = ("name", "language", "status", "category", "account", "synced_at")
    list_filter = ("status", "category", "language", "account")
    list_select_related = ("account",)
    search_fields = ("name",)
    fields = (
        "account",
        "name",
        "language",
        "status",
        "category",
        "meta_id",
        "synced_at",
        "components_pretty",
    )
    readonly_fields = ("components_pretty",)

    @admin.display(description=_("components"))
    def components_pretty(self, obj: MessageTemplate) -> SafeString | str:
        return _pretty(obj.components)


# --- Template sync and per-delivery errors (WhatsApp channel) ----------------------------------


class ChannelErrorInline(admin.TabularInline):  # type: ignore[type-arg]
    """Meta's delivery-level ``value.errors``, on the delivery that carried them."""

    model = ChannelError
    fields = ("kind", "code", "title", "details")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("errors reported in this delivery")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


WebhookEventAdmin.inlines = [*WebhookEventAdmin.inlines, ChannelErrorInline]


def _sync_accounts(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    accounts: Any,
) -> None:
    for account in accounts:
        try:
            synced, removed = templates_sync(account=account)
        except (TemplateSyncError, GraphError) as exc:
            modeladmin.message_user(request, f"{account}: {exc}", level=messages.ERROR)
            continue
        modeladmin.message_user(
            request,
            _("%(account)s: %(synced)s templates synced, %(removed)s removed.")
            % {"account": account, "synced": synced, "removed": removed},
            level=messages.SUCCESS,
        )


@admin.action(description=_("Sync message templates from Meta"))
def sync_templates(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: Any,
) -> None:
    _sync_accounts(modeladmin, request, queryset)


@admin.action(description=_("Sync the templates of these numbers from Meta again"))
def sync_templates_again(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: Any,
) -> None:
    accounts = WhatsAppAccount.objects.filter(pk__in=queryset.values("account_id"))
    _sync_accounts(modeladmin, request, accounts)


WhatsAppAccountAdmin.actions = [  # type: ignore[misc]
    *(WhatsAppAccountAdmin.actions or []),  # type: ignore[misc]
    sync_templates,
]
MessageTemplateAdmin.actions = [  # type: ignore[misc]
    *(MessageTemplateAdmin.actions or []),  # type: ignore[misc]
    sync_templates_again,
]
