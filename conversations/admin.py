"""Back office for conversations: read everything, act only through ``conversations.services``.

The change form of a conversation is read-only: status, department and assignee change through
the actions (take over, transfer, close, reopen), which call the same services as the API and the
console, so every change writes its event row and is broadcast. A refused action
(:class:`~common.exceptions.ServiceError`) becomes an error message on the page.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, re_path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.models import User
from common.admin import ReadOnlyAdminMixin
from common.exceptions import ServiceError
from departments.models import Department

from . import services
from .models import (
    Conversation,
    ConversationEvent,
    ConversationNote,
    ConversationTransfer,
    Customer,
    Message,
    MessageReaction,
    PriorityRule,
    QuickReply,
    Tag,
)
from .services import organise

# A conversation's page shows its latest messages; the full history is one click away.
MESSAGE_INLINE_LIMIT = 50


def pretty_json(value: Any) -> SafeString | str:
    if value in (None, "", {}, []):
        return "—"
    return format_html(
        '<pre class="readonly-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False)
    )


# --- Inlines ---------------------------------------------------------------------------------


class MessageInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = Message
    fk_name = "conversation"
    fields = ("created_at", "direction", "sender", "sender_user", "type", "body", "status")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    verbose_name_plural = _("latest messages")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).select_related("sender_user")


class TransferInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = ConversationTransfer
    fields = (
        "created_at",
        "actor",
        "from_user",
        "to_user",
        "from_department",
        "to_department",
        "note",
    )
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConversationTransfer]:
        return (
            super()
            .get_queryset(request)
            .select_related("actor", "from_user", "to_user", "from_department", "to_department")
        )


class EventInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = ConversationEvent
    fields = ("created_at", "kind", "actor", "before", "after")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConversationEvent]:
        return super().get_queryset(request).select_related("actor")


class NoteInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    """Internal notes, written in the console; never sent to the customer."""

    model = ConversationNote
    fields = ("created_at", "author", "body")
    readonly_fields = fields
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConversationNote]:
        return super().get_queryset(request).select_related("author")


class ReactionInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = MessageReaction
    fields = ("emoji", "sender", "wa_timestamp", "created_at")
    readonly_fields = fields
    extra = 0


class CustomerConversationInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = Conversation
    fields = ("status", "department", "assigned_to", "last_message_at", "closed_at")
    readonly_fields = fields
    show_change_link = True
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).select_related("department", "assigned_to")


# --- Customers -------------------------------------------------------------------------------


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("__str__", "phone", "wa_id", "created_at")
    search_fields = ("name", "phone", "wa_id", "bsuid")
    fields = ("name", "phone", "wa_id", "bsuid", "notes", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")
    inlines = (CustomerConversationInline,)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # WhatsApp's identities are set by WhatsApp; people may fix the name and add notes.
        if obj is not None:
            return ("wa_id", "bsuid", *self.readonly_fields)
        return tuple(self.readonly_fields)


# --- Conversations: actions ------------------------------------------------------------------


class UserChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.get_role_display()})"


class TransferForm(forms.Form):
    to_department = forms.ModelChoiceField(
        label=_("To department"),
        queryset=Department.objects.filter(is_active=True).order_by("name"),
        required=False,
        empty_label=_("— unchanged —"),
    )
    to_user = UserChoiceField(
        label=_("To agent"),
        queryset=User.objects.people().filter(is_active=True).order_by("name", "email"),
        required=False,
        empty_label=_("— nobody: the department's queue —"),
        help_text=_(
            "Choose a department, an agent, or both. With a department only, the conversation "
            "waits in that department's queue."
        ),
    )
    note = forms.CharField(
        label=_("Note for the next agent"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=False,
    )
    over_capacity = forms.BooleanField(
        label=_("Even past the agent's capacity"),
        required=False,
        help_text=_(
            "An agent already at their maximum of open conversations is refused unless this is "
            "ticked."
        ),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("to_department") and not cleaned.get("to_user"):
            raise forms.ValidationError(
                _("Choose an agent or a department to transfer to."), code="no_target"
            )
        return cleaned


ConversationService = Callable[..., Conversation]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "customer_display",
        "status",
        "department",
        "assigned_to",
        "last_message_at",
        "unread_count",
    )
    list_display_links = ("id", "customer_display")
    list_filter = ("status", "department", "assigned_to", "whatsapp_account", "created_at")
    list_select_related = ("customer", "department", "assigned_to")
    show_full_result_count = False
    search_fields = ("customer__name", "customer__phone", "messages__body")
    search_help_text = _("Customer name, phone or message text")
    actions = ("take_over_selected", "transfer_selected", "close_selected", "reopen_selected")
    fieldsets = (
        (None, {"fields": ("customer", "whatsapp_account", "status", "department", "assigned_to")}),
        (
            _("Activity"),
            {
                "fields": (
                    "created_at",
                    "first_response_at",
                    "last_inbound_at",
                    "window_expires_at",
                    "last_message_at",
                    "unread_count",
                    "closed_at",
                    "message_history",
                )
            },
        ),
    )
    readonly_fields = (
        "customer",
        "whatsapp_account",
        "status",
        "department",
        "assigned_to",
        "created_at",
        "first_response_at",
        "last_inbound_at",
        "window_expires_at",
        "last_message_at",
        "unread_count",
        "closed_at",
        "message_history",
    )
    inlines = (MessageInline, NoteInline, TransferInline, EventInline)
    change_form_template = "admin/conversations/conversation/change_form.html"
    action_template = "admin/conversations/conversation/action.html"

    # Conversations start on WhatsApp, never in the back office.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        # The change page and the actions read these too, not only the list.
        return (
            super()
            .get_queryset(request)
            .select_related("customer", "department", "assigned_to", "whatsapp_account")
        )

    # Their history is the audit trail and the source of the metrics: closed, never deleted.
    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Conversation, form: Any, change: bool) -> None:
        """Nothing on the form is editable; state changes go through the actions (services)."""

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Any, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, MessageInline) and obj is not None and obj.pk:
            latest = list(
                obj.messages.order_by("-created_at", "-id").values_list("pk", flat=True)[
                    :MESSAGE_INLINE_LIMIT
                ]
            )
            kwargs["queryset"] = kwargs["queryset"].filter(pk__in=latest)
        return kwargs

    @admin.display(description=_("customer"), ordering="customer__name")
    def customer_display(self, obj: Conversation) -> str:
        customer = obj.customer
        if customer.name and customer.phone:
            return f"{customer.name} · {customer.phone}"
        return str(customer)

    @admin.display(description=_("24-hour window ends"))
    def window_expires_at(self, obj: Conversation) -> Any:
        return obj.window_expires_at or "—"

    @admin.display(description=_("messages"))
    def message_history(self, obj: Conversation) -> SafeString:
        url = reverse("admin:conversations_message_changelist")
        return format_html(
            '<a href="{}?conversation__id__exact={}">{}</a>',
            url,
            obj.pk,
            _("Full message history (the page below shows the latest %(count)d).")
            % {"count": MESSAGE_INLINE_LIMIT},
        )

    # -- running services ------------------------------------------------------------------

    def _run(
        self,
        request: HttpRequest,
        conversations: Iterable[Conversation],
        service: ConversationService,
        success: Callable[[int], str],
        **kwargs: Any,
    ) -> int:
        """Call ``service`` for each conversation; refusals become error messages."""
        done = 0
        for conversation in conversations:
            try:
                service(conversation=conversation, actor=request.user, **kwargs)
            except ServiceError as exc:
                self.message_user(
                    request,
                    _("Conversation %(conversation)s: %(error)s")
                    % {"conversation": conversation, "error": exc.message},
                    messages.ERROR,
                )
            else:
                done += 1
        if done:
            self.message_user(request, success(done), messages.SUCCESS)
        return done

    def _take_over(self, request: HttpRequest, conversations: Iterable[Conversation]) -> int:
        return self._run(
            request,
            conversations,
            services.conversation_take_over,
            lambda n: (
                ngettext(
                    "%(count)d conversation taken over.", "%(count)d conversations taken over.", n
                )
                % {"count": n}
            ),
        )

    def _close(self, request: HttpRequest, conversations: Iterable[Conversation]) -> int:
        return self._run(
            request,
            conversations,
            services.conversation_close,
            lambda n: (
                ngettext("%(count)d conversation closed.", "%(count)d conversations closed.", n)
                % {"count": n}
            ),
        )

    def _reopen(self, request: HttpRequest, conversations: Iterable[Conversation]) -> int:
        return self._run(
            request,
            conversations,
            services.conversation_reopen,
            lambda n: (
                ngettext("%(count)d conversation reopened.", "%(count)d conversations reopened.", n)
                % {"count": n}
            ),
        )

    def _transfer(
        self, request: HttpRequest, conversations: Iterable[Conversation], form: TransferForm
    ) -> int:
        return self._run(
            request,
            conversations,
            services.conversation_transfer,
            lambda n: (
                ngettext(
                    "%(count)d conversation transferred.", "%(count)d conversations transferred.", n
                )
                % {"count": n}
            ),
            to_user=form.cleaned_data.get("to_user"),
            to_department=form.cleaned_data.get("to_department"),
            note=form.cleaned_data.get("note", ""),
            over_capacity=form.cleaned_data.get("over_capacity", False),
        )

    def _render_action_page(
        self,
        request: HttpRequest,
        *,
        conversations: list[Conversation],
        title: Any,
        question: Any,
        submit_label: Any,
        form: TransferForm | None = None,
        action: str | None = None,
    ) -> TemplateResponse:
        media = self.media + (form.media if form is not None else forms.Media())
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "question": question,
            "submit_label": submit_label,
            "opts": self.opts,
            "conversations": conversations,
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.action_template, context)

    # -- changelist actions ------------------------------------------------------------------

    @admin.action(description=_("Take over selected conversations"), permissions=["change"])
    def take_over_selected(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._take_over(request, queryset)

    @admin.action(description=_("Close selected conversations"), permissions=["change"])
    def close_selected(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._close(request, queryset)

    @admin.action(description=_("Reopen selected conversations"), permissions=["change"])
    def reopen_selected(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._reopen(request, queryset)

    @admin.action(description=_("Transfer selected conversations…"), permissions=["change"])
    def transfer_selected(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> TemplateResponse | None:
        """An intermediate page: choose the department and/or agent and a note, then confirm."""
        conversations = list(queryset)
        if "apply" in request.POST:
            form = TransferForm(request.POST)
            if form.is_valid():
                self._transfer(request, conversations, form)
                return None  # back to the change list, messages shown there
        else:
            form = TransferForm()
        return self._render_action_page(
            request,
            conversations=conversations,
            title=_("Transfer conversations"),
            question=_("Transfer these conversations:"),
            submit_label=_("Yes, transfer"),
            form=form,
            action="transfer_selected",
        )

    # -- the same actions from a conversation's own page -----------------------------------

    OPERATIONS = ("take-over", "transfer", "close", "reopen")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        operations = "|".join(self.OPERATIONS)
        return [
            re_path(
                rf"^(?P<object_id>.+)/(?P<operation>{operations})/$",
                self.admin_site.admin_view(self.operation_view),
                name="{}_{}_operation".format(*info),
            ),
            *super().get_urls(),
        ]

    def operation_view(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        """Confirm (GET) and run (POST) ``take-over``, ``transfer``, ``close`` or ``reopen``."""
        runners: dict[str, tuple[Callable[..., int], Any, Any, Any]] = {
            "take-over": (
                self._take_over,
                _("Take over conversation"),
                _("Assign this conversation to yourself?"),
                _("Yes, take over"),
            ),
            "transfer": (
                self._transfer,
                _("Transfer conversation"),
                _("Transfer this conversation:"),
                _("Yes, transfer"),
            ),
            "close": (
                self._close,
                _("Close conversation"),
                _("Close this conversation?"),
                _("Yes, close"),
            ),
            "reopen": (
                self._reopen,
                _("Reopen conversation"),
                _("Reopen this conversation?"),
                _("Yes, reopen"),
            ),
        }
        if operation not in runners:
            raise Http404
        conversation = self.get_object(request, unquote(object_id))
        if conversation is None:
            raise Http404
        if not self.has_change_permission(request, conversation):
            raise PermissionDenied
        runner, title, question, submit_label = runners[operation]
        form = TransferForm(request.POST or None) if operation == "transfer" else None
        if request.method == "POST" and (form is None or form.is_valid()):
            if form is not None:
                runner(request, [conversation], form)
            else:
                runner(request, [conversation])
            return HttpResponseRedirect(
                reverse("admin:conversations_conversation_change", args=[conversation.pk])
            )
        return self._render_action_page(
            request,
            conversations=[conversation],
            title=title,
            question=question,
            submit_label=submit_label,
            form=form,
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)


# --- Read-only history -----------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "created_at",
        "conversation",
        "direction",
        "sender",
        "type",
        "short_body",
        "status",
    )
    list_filter = ("direction", "sender", "type", "status")
    list_select_related = ("conversation__customer",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False  # one COUNT(*) over the whole table is enough
    search_fields = ("body", "wa_message_id", "conversation__customer__phone")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "conversation",
                    "direction",
                    "sender",
                    "sender_user",
                    "type",
                    "body",
                    "reply_to",
                    "created_at",
                )
            },
        ),
        (
            _("Delivery"),
            {
                "fields": (
                    "status",
                    "wa_message_id",
                    "wa_timestamp",
                    "send_attempts",
                    "sending_since",
                    "error",
                    "error_code",
                    "error_data_pretty",
                    "status_history_pretty",
                )
            },
        ),
        (
            _("Media"),
            {
                "fields": (
                    "media_id",
                    "media_file",
                    "media_mime_type",
                    "media_filename",
                    "media_size",
                    "media_sha256",
                    "media_error",
                )
            },
        ),
        (_("Raw payload"), {"fields": ("raw_payload_pretty",)}),
    )
    readonly_fields = ("raw_payload_pretty", "error_data_pretty", "status_history_pretty")
    inlines = (ReactionInline,)

    @admin.display(description=_("error details"))
    def error_data_pretty(self, obj: Message) -> SafeString | str:
        return pretty_json(obj.error_data)

    @admin.display(description=_("status history"))
    def status_history_pretty(self, obj: Message) -> SafeString | str:
        return pretty_json(obj.status_history)

    @admin.display(description=_("text"))
    def short_body(self, obj: Message) -> str:
        return obj.body if len(obj.body) <= 80 else obj.body[:79] + "…"

    @admin.display(description=_("raw payload"))
    def raw_payload_pretty(self, obj: Message) -> SafeString | str:
        return pretty_json(obj.raw_payload)


@admin.register(ConversationTransfer)
class ConversationTransferAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "created_at",
        "conversation",
        "actor",
        "from_user",
        "to_user",
        "from_department",
        "to_department",
    )
    list_filter = ("to_department",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    list_select_related = (
        "conversation__customer",
        "actor",
        "from_user",
        "to_user",
        "from_department",
        "to_department",
    )
    search_fields = ("conversation__customer__name", "conversation__customer__phone", "note")


@admin.register(ConversationEvent)
class ConversationEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "conversation", "kind", "actor")
    list_filter = ("kind",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    list_select_related = ("conversation__customer", "actor")
    search_fields = ("conversation__customer__name", "conversation__customer__phone")
    fields = ("conversation", "kind", "actor", "created_at", "before_pretty", "after_pretty")
    readonly_fields = ("before_pretty", "after_pretty")

    @admin.display(description=_("before"))
    def before_pretty(self, obj: ConversationEvent) -> SafeString | str:
        return pretty_json(obj.before)

    @admin.display(description=_("after"))
    def after_pretty(self, obj: ConversationEvent) -> SafeString | str:
        return pretty_json(obj.after)


@admin.register(ConversationNote)
class ConversationNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "conversation", "author", "body")
    list_filter = ("author",)
    list_select_related = ("conversation__customer", "author")
    search_fields = ("body", "conversation__customer__name", "conversation__customer__phone")
    ordering = ("-created_at", "-id")
    fields = ("conversation", "author", "created_at", "body")


@admin.register(QuickReply)
class QuickReplyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title", "shortcut", "department", "is_active", "updated_at")
    list_filter = ("is_active", "department")
    list_select_related = ("department",)
    search_fields = ("title", "shortcut", "body")
    prepopulated_fields = {"shortcut": ("title",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuickReply]:
        # agents' personal replies are theirs alone, kept and edited in the console
        return super().get_queryset(request).filter(owner__isnull=True)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Admins manage the tags (through the services); supervisors view them."""

    list_display = ("name", "swatch", "updated_at")
    search_fields = ("name",)
    fields = ("name", "color")

    @admin.display(description=_("colour"))
    def swatch(self, obj: Tag) -> SafeString:
        return format_html(
            '<span style="display:inline-block;width:1em;height:1em;border-radius:50%;'
            'background:{}"></span> {}',
            obj.color,
            obj.color,
        )

    def save_model(self, request: HttpRequest, obj: Tag, form: Any, change: bool) -> None:
        actor: User = request.user  # type: ignore[assignment]
        try:
            if change:
                organise.tag_update(actor=actor, tag=obj, name=obj.name, color=obj.color)
            else:
                obj.pk = organise.tag_create(actor=actor, name=obj.name, color=obj.color).pk
        except ServiceError as exc:
            raise PermissionDenied(exc.message) from exc

    def delete_model(self, request: HttpRequest, obj: Tag) -> None:
        organise.tag_delete(actor=request.user, tag=obj)  # type: ignore[arg-type]


@admin.register(PriorityRule)
class PriorityRuleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Admins keep the automatic priorities; supervisors view them."""

    list_display = ("name", "condition", "priority", "is_active", "order")
    list_editable = ("is_active", "order")
    list_filter = ("is_active", "condition", "priority")
    list_select_related = ("tag",)
    fields = ("name", "condition", "tag", "keywords", "minutes", "priority", "is_active", "order")
