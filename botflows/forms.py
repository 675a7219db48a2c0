"""Forms of the console's flow editor: they parse and check input; the services decide.

A ``ServiceError`` from a service is shown on the field it is about (``SERVICE_ERROR_FIELDS``), so
the admin sees every problem next to what to fix.
"""

from collections.abc import Callable
from typing import Any, ClassVar, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from common.exceptions import ServiceError

from .models import Flow, FlowNode, MenuOption


def _limit_choices(form: forms.BaseForm, name: str, queryset: Any) -> None:
    field = cast("forms.ModelChoiceField[Any]", form.fields[name])
    field.queryset = queryset
    if queryset.model is FlowNode:  # every choice is of this flow: its key says enough
        field.label_from_instance = lambda node: node.key  # type: ignore[method-assign,assignment]


class _ServiceFormMixin:
    """For model forms whose ``Meta.fields`` are the keyword arguments of a service."""

    SERVICE_ERROR_FIELDS: ClassVar[dict[str, str]] = {}

    def add_service_error(self, exc: ServiceError) -> None:
        field = self.SERVICE_ERROR_FIELDS.get(exc.code)
        self.add_error(field if field in self.fields else None, exc.message)  # type: ignore[attr-defined]

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data  # type: ignore[attr-defined]
        return {name: data[name] for name in self.Meta.fields}  # type: ignore[attr-defined]

    def submit[T](self, service: Callable[..., T]) -> T | None:
        """``service(**the cleaned fields)`` when the form is valid; None when it is not, or when
        the service refused (its ``ServiceError`` is then shown on the form)."""
        if not self.is_valid():  # type: ignore[attr-defined]
            return None
        try:
            return service(**self.service_arguments())
        except ServiceError as exc:
            self.add_service_error(exc)
            return None


class FlowForm(_ServiceFormMixin, forms.ModelForm):  # type: ignore[type-arg]
    """A flow's own settings: name, number, default, active (new flows and the editor's form).

    One flow per number and one default flow are the services' to check (making a flow the
    default takes the mark from the previous one), so the model's unique checks are skipped here.
    """

    SERVICE_ERROR_FIELDS: ClassVar[dict[str, str]] = {
        "missing_name": "name",
        "number_taken": "whatsapp_account",
        "default_required": "is_default",
    }

    class Meta:
        model = Flow
        fields = ("name", "whatsapp_account", "is_default", "is_active")
        help_texts: ClassVar[dict[str, Any]] = {
            "whatsapp_account": _(
                "The number this flow answers. Numbers without a flow of their own get the "
                "default flow."
            ),
            "is_default": _("Answers every number without a flow of its own (one flow at most)."),
            "is_active": _("Inactive flows start no new conversations."),
        }

    def __init__(self, *args: Any, accounts: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast("forms.ModelChoiceField[Any]", self.fields["whatsapp_account"])
        field.queryset = accounts
        field.empty_label = _("No number")
        self.auto_id = f"flow-{self.instance.pk or 'new'}-%s"

    def validate_unique(self) -> None:
        """Left to the services (see the class docstring)."""

    def validate_constraints(self) -> None:
        """Left to the services (see the class docstring)."""


class FlowNodeForm(_ServiceFormMixin, forms.ModelForm):  # type: ignore[type-arg]
    SERVICE_ERROR_FIELDS: ClassVar[dict[str, str]] = {
        "missing_key": "key",
        "key_taken": "key",
        "invalid_kind": "kind",
        "has_options": "kind",
        "invalid_next_node": "next_node",
        "missing_field": "field_name",
        "invalid_pattern": "pattern",
        "missing_url": "url",
        "invalid_fallback": "fallback_node",
    }

    class Meta:
        model = FlowNode
        fields = (
            "key",
            "kind",
            "text",
            "next_node",
            "department",
            "field_name",
            "validation",
            "pattern",
            "error_text",
            "menu_button",
            "url",
            "secret",
            "fallback_node",
        )
        widgets: ClassVar[dict[str, Any]] = {
            "text": forms.Textarea(attrs={"rows": 3}),
            "error_text": forms.TextInput(),
            # never echoed back into the page; left empty on an existing node, it is kept
            "secret": forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        }

    def __init__(self, *args: Any, nodes: Any, departments: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance_pk = self.instance.pk
        others = nodes.exclude(pk=instance_pk) if instance_pk else nodes
        _limit_choices(self, "next_node", others)
        _limit_choices(self, "fallback_node", others)
        _limit_choices(self, "department", departments)
        if instance_pk and self.instance.secret:
            self.fields["secret"].help_text = _(
                "A secret is set. Leave empty to keep it, or type a new one."
            )
        # The id of each field is unique on the page, where several forms may be open at once.
        self.auto_id = f"node-{instance_pk or 'new'}-%s"

    def service_arguments(self) -> dict[str, Any]:
        arguments = super().service_arguments()
        if self.instance.pk and not arguments["secret"]:
            arguments["secret"] = None  # keep the secret already set
        return arguments


class MenuOptionForm(_ServiceFormMixin, forms.ModelForm):  # type: ignore[type-arg]
    SERVICE_ERROR_FIELDS: ClassVar[dict[str, str]] = {
        "missing_title": "title",
        "invalid_action": "action",
        "invalid_target": "target_node",
        "missing_department": "department",
    }

    class Meta:
        model = MenuOption
        fields = ("title", "description", "keywords", "action", "target_node", "department")
        labels: ClassVar[dict[str, Any]] = {
            "target_node": _("Target node (for “Go to a node”)"),
            "department": _("Department (for a queue, a human or the AI)"),
        }

    def __init__(self, *args: Any, nodes: Any, departments: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _limit_choices(self, "target_node", nodes)
        _limit_choices(self, "department", departments)
        self.auto_id = f"option-{self.instance.pk or 'new'}-%s"
