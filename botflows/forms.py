"""Forms of the console's flow editor: they parse and check input; the services decide.

A ``ServiceError`` from a service is shown on the field it is about (``SERVICE_ERROR_FIELDS``), so
the admin sees every problem next to what to fix.
"""

from collections.abc import Callable
from typing import Any, ClassVar, cast

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from common.exceptions import ServiceError

from .models import Flow, FlowNode, MenuOption
from .selectors import NUMERIC_CONFIG_LIMITS as NUMERIC_LIMITS


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


# --- The /bot/ page's settings form -------------------------------------------------------------


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _text_area(rows: int = 2) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "cols": 60})


# The settings page's sections: a title and the keys shown under it, in order.
SETTINGS_SECTIONS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (
        _("Hand-over to a person"),
        ("handoff_keywords", "handoff_department", "max_invalid_attempts"),
    ),
    (
        _("Answers by the AI"),
        (
            "ai_enabled",
            "ai_system_prompt",
            "ai_min_confidence",
            "ai_max_turns",
            "ai_timeout_seconds",
        ),
    ),
    (
        _("Bot texts"),
        (
            "message_retry",
            "message_handoff",
            "message_queue_position",
            "message_out_of_hours",
            "message_ai_prompt",
        ),
    ),
    (
        _("Satisfaction survey"),
        ("csat_question", "csat_button", "csat_options", "csat_comment_prompt", "csat_thanks"),
    ),
)
_LIST_KEYS = frozenset({"handoff_keywords", "csat_options"})
_BUILT_IN = _("Leave empty for the built-in text (in the customer's language).")


class BotSettingsForm(forms.Form):
    """Every setting the bot knows, as a field of its kind: texts as text boxes, lists one item a
    line, numbers within their limits, the AI switch as a checkbox (off and locked without an
    OpenAI key). ``changed_values()`` are the settings to store, as the bot reads them."""

    handoff_keywords = forms.CharField(
        label=_("Hand-over words"), required=False, widget=_text_area(4)
    )
    handoff_department = forms.ChoiceField(label=_("Department for hand-overs"), required=False)
    max_invalid_attempts = forms.IntegerField(label=_("Invalid answers allowed"))
    ai_enabled = forms.BooleanField(label=_("Answer free text with AI"), required=False)
    ai_system_prompt = forms.CharField(
        label=_("AI instructions"), required=False, widget=_text_area(5)
    )
    ai_min_confidence = forms.FloatField(
        label=_("Minimum AI confidence"), widget=forms.NumberInput(attrs={"step": "0.05"})
    )
    ai_max_turns = forms.IntegerField(label=_("AI answers per conversation"))
    ai_timeout_seconds = forms.IntegerField(label=_("AI time limit (seconds)"))
    message_retry = forms.CharField(
        label=_("After an invalid answer"), required=False, widget=_text_area()
    )
    message_handoff = forms.CharField(
        label=_("When handing over to a person"), required=False, widget=_text_area()
    )
    message_queue_position = forms.CharField(
        label=_("Place in the queue"), required=False, widget=_text_area()
    )
    message_out_of_hours = forms.CharField(
        label=_("Out of business hours"), required=False, widget=_text_area()
    )
    message_ai_prompt = forms.CharField(
        label=_("Invitation to ask the AI"), required=False, widget=_text_area()
    )
    csat_question = forms.CharField(label=_("Question"), required=False, widget=_text_area())
    csat_button = forms.CharField(label=_("Button label"), required=False, max_length=20)
    csat_options = forms.CharField(
        label=_("Score titles (1 to 5)"), required=False, widget=_text_area(5)
    )
    csat_comment_prompt = forms.CharField(
        label=_("Invitation to comment"), required=False, widget=_text_area()
    )
    csat_thanks = forms.CharField(label=_("Thanks"), required=False, widget=_text_area())

    def __init__(
        self,
        data: Any = None,
        *,
        values: dict[str, Any],
        help_texts: dict[str, Any],
        departments: list[str],
        ai_available: bool,
    ) -> None:
        super().__init__(data, initial=self._initial(values), auto_id="setting-%s")
        self.values = values
        self.ai_available = ai_available
        for key, field in self.fields.items():
            if key in help_texts:
                field.help_text = help_texts[key]
            if key in NUMERIC_LIMITS:
                low, high = NUMERIC_LIMITS[key]
                field.min_value = low  # type: ignore[attr-defined]
                field.max_value = high  # type: ignore[attr-defined]
                field.validators += [MinValueValidator(low), MaxValueValidator(high)]
                field.widget.attrs.update({"min": low, "max": high})
        current = str(values.get("handoff_department") or "")
        names = [*departments, *([current] if current and current not in departments else [])]
        choices = cast("forms.ChoiceField", self.fields["handoff_department"])
        choices.choices = [("", _("The general queue")), *((n, n) for n in names)]
        for key in ("message_retry", "message_handoff", "message_queue_position"):
            self.fields[key].widget.attrs["placeholder"] = _BUILT_IN
        if not ai_available:
            ai = self.fields["ai_enabled"]
            ai.disabled = True
            ai.initial = False
            self.initial["ai_enabled"] = False
            ai.help_text = _(
                "AI is unavailable: no OpenAI key is configured (OPENAI_API_KEY). "
                "The bot answers with its flows only."
            )

    @staticmethod
    def _initial(values: dict[str, Any]) -> dict[str, Any]:
        initial: dict[str, Any] = {}
        for key, value in values.items():
            if key in _LIST_KEYS:
                initial[key] = "\n".join(str(v) for v in value) if isinstance(value, list) else ""
            elif value is None:
                initial[key] = ""
            else:
                initial[key] = value
        return initial

    def clean_handoff_keywords(self) -> list[str]:
        return _lines(self.cleaned_data["handoff_keywords"])

    def clean_csat_options(self) -> list[str] | None:
        options = _lines(self.cleaned_data["csat_options"])
        if options and len(options) != 5:
            raise forms.ValidationError(
                _(
                    "Write exactly five titles, one a line (from 1, the worst, to 5, the best), "
                    "or leave it empty for the built-in ones."
                )
            )
        return options or None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for key, field in self.fields.items():
            if isinstance(field, forms.CharField) and key not in _LIST_KEYS and key in data:
                data[key] = data[key].replace("\r\n", "\n").strip() or None
        if data.get("handoff_department") == "":
            data["handoff_department"] = None
        if isinstance(data.get("max_invalid_attempts"), float):
            data["max_invalid_attempts"] = int(data["max_invalid_attempts"])
        return data

    def changed_values(self) -> dict[str, Any]:
        """The settings whose value differs from what the bot reads now (the AI switch is left
        alone while AI is unavailable)."""
        return {
            key: value
            for key, value in self.cleaned_data.items()
            if not (key == "ai_enabled" and not self.ai_available) and value != self.values.get(key)
        }

    def sections(self) -> list[tuple[Any, list[forms.BoundField]]]:
        return [(title, [self[key] for key in keys]) for title, keys in SETTINGS_SECTIONS]
