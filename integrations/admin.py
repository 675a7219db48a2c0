"""Back office of outgoing webhooks (admins only: supervisors have no ``integrations`` perms).

Subscriptions are written through ``integrations.services`` (audited); the secret is shown once,
in a message after the subscription is added, never again. Deliveries are a read-only log, with
a "Redeliver" action.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from common.admin import ReadOnlyAdminMixin, ServiceBackedAdminMixin
from common.events import event_types
from common.exceptions import ServiceError

from . import outbox, services
from .models import ALL_EVENTS, WebhookDelivery, WebhookSubscription


def _event_choices() -> list[tuple[str, str]]:
    return [
        (ALL_EVENTS, gettext("Every event (*)")),
        *((t, t) for t in event_types(public_only=True)),
    ]


class SubscriptionForm(forms.ModelForm):  # type: ignore[type-arg]
    events = forms.MultipleChoiceField(
        label=_("events"), choices=_event_choices, widget=forms.CheckboxSelectMultiple
    )
    new_secret = forms.CharField(
        label=_("secret"),
        required=False,
        min_length=16,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "Leave empty to generate one (shown once, after saving). On an existing "
            "subscription, a value here replaces the secret."
        ),
    )

    class Meta:
        model = WebhookSubscription
        fields = ("url", "events", "is_active", "description")

    def clean_url(self) -> str:
        try:
            return services.subscription_check_url(url=self.cleaned_data["url"])
        except ServiceError as refused:
            raise forms.ValidationError(refused.message, code=refused.code) from refused

    def clean_events(self) -> list[str]:
        try:
            return services.subscription_check_events(events=self.cleaned_data["events"])
        except ServiceError as refused:
            raise forms.ValidationError(refused.message, code=refused.code) from refused


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ServiceBackedAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    form = SubscriptionForm
    list_display = (
        "url",
        "description",
        "event_list",
        "is_active",
        "deliveries_link",
        "created_at",
    )
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    readonly_fields = ("created_by", "created_at", "updated_at")
    fields = (
        "url",
        "events",
        "new_secret",
        "is_active",
        "description",
        "created_by",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookSubscription]:
        return super().get_queryset(request).select_related("created_by")

    @admin.display(description=_("events"))
    def event_list(self, obj: WebhookSubscription) -> str:
        return ", ".join(obj.events)

    @admin.display(description=_("deliveries"))
    def deliveries_link(self, obj: WebhookSubscription) -> str:
        url = reverse("admin:integrations_webhookdelivery_changelist")
        return format_html(
            '<a href="{}?subscription__id__exact={}">{}</a>', url, obj.pk, gettext("Deliveries")
        )

    def save_model(
        self, request: HttpRequest, obj: WebhookSubscription, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        fields = {
            "url": data["url"],
            "events": data["events"],
            "is_active": data["is_active"],
            "description": data.get("description", ""),
            "secret": data.get("new_secret") or None,
        }
        if change:
            self.run_service(
                request,
                services.subscription_update,
                subscription=obj,
                actor=request.user,
                **fields,
            )
            return
        created = self.run_service(
            request, services.subscription_create, actor=request.user, **fields
        )
        if created is None:
            return
        obj.pk = created.pk
        obj.created_at, obj.updated_at = created.created_at, created.updated_at
        obj._state.adding = False
        obj._state.db = created._state.db
        self.message_user(
            request,
            gettext(
                "The subscription's secret is %(secret)s — copy it now: it will not be shown again."
            )
            % {"secret": created.secret},
            messages.WARNING,
        )

    def delete_model(self, request: HttpRequest, obj: WebhookSubscription) -> None:
        self.run_service(
            request, services.subscription_delete, subscription=obj, actor=request.user
        )

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]
    ) -> None:
        for subscription in queryset:
            self.delete_model(request, subscription)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """The delivery log: written by the outbox only; an admin may only redeliver."""

    list_display = (
        "id",
        "event",
        "subscription",
        "status",
        "attempts",
        "response_code",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "event", "subscription")
    search_fields = ("id", "event")
    list_select_related = ("subscription",)
    actions = ("redeliver_selected",)
    fields = (
        "id",
        "subscription",
        "event",
        "status",
        "attempts",
        "response_code",
        "last_error",
        "next_attempt_at",
        "retry_until",
        "delivered_at",
        "created_at",
        "body",
    )
    readonly_fields = fields

    @admin.display(description=_("body"))
    def body(self, delivery: WebhookDelivery) -> str:
        """What the receiver gets (with its signature header), as sent."""
        return format_html("<pre>{}</pre>", outbox.delivery_body(delivery).decode())

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        """Redelivering is the one thing done here, by admins only (the service checks again)."""
        return bool(getattr(request.user, "is_admin", False))

    @admin.action(description=_("Redeliver"), permissions=["redeliver"])
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        queued, refused = 0, []
        for delivery in queryset:
            try:
                services.delivery_redeliver(delivery=delivery, actor=request.user)  # type: ignore[arg-type]
            except ServiceError as error:
                refused.append(error.message)
            else:
                queued += 1
        if queued:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery queued again.",
                    "%(count)d deliveries queued again.",
                    queued,
                )
                % {"count": queued},
                messages.SUCCESS,
            )
        for message in dict.fromkeys(refused):
            self.message_user(request, message, messages.ERROR)
