"""django-filter sets for the conversations API."""

from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from rest_framework.exceptions import ValidationError

from common.api import ID_MAX

from .models import Conversation, ConversationStatus, Priority
from .search import conversation_list_search
from .selectors import conversation_order_as_queue


class ConversationFilter(filters.FilterSet):
    """``?status=&department=&assigned_to=&search=&whatsapp_account=`` (contract §4),
    ``?tag=&priority=`` (§10).

    ``status=pending`` alone is the queue: the most urgent first, then the longest waiting.

    ``assigned_to=none`` lists the unassigned ones; ``search`` is the console's search
    (:func:`conversations.search.conversation_list_search`: the customer's name or phone, or the
    words of any message, accents and case ignored).
    """

    # Columns of the conversation itself: no join, no duplicate rows, so no DISTINCT (django-filter
    # adds one by default, and PostgreSQL then sorted every match on all columns before the page:
    # `status=pending&department=` took 17 ms at 100k conversations, the index walk 1).
    status = filters.MultipleChoiceFilter(choices=ConversationStatus.choices, distinct=False)
    department = filters.NumberFilter(field_name="department_id", max_value=ID_MAX)
    assigned_to = filters.CharFilter(method="filter_assigned_to")
    search = filters.CharFilter(method="filter_search", max_length=200)
    whatsapp_account = filters.NumberFilter(field_name="whatsapp_account_id", max_value=ID_MAX)
    tag = filters.NumberFilter(method="filter_tag", max_value=ID_MAX)
    priority = filters.MultipleChoiceFilter(choices=Priority.choices, distinct=False)

    class Meta:
        model = Conversation
        fields = (
            "status",
            "department",
            "assigned_to",
            "search",
            "whatsapp_account",
            "tag",
            "priority",
        )

    def filter_queryset(self, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        queryset = super().filter_queryset(queryset)
        if self.form.cleaned_data.get("status") == [ConversationStatus.PENDING]:
            queryset = conversation_order_as_queue(queryset)
        return queryset

    def filter_tag(
        self, queryset: QuerySet[Conversation], name: str, value: int
    ) -> QuerySet[Conversation]:
        tagged = Conversation.tags.through.objects.filter(
            conversation_id=OuterRef("pk"), tag_id=value
        )
        return queryset.filter(Exists(tagged))

    def filter_assigned_to(
        self, queryset: QuerySet[Conversation], name: str, value: str
    ) -> QuerySet[Conversation]:
        value = value.strip().lower()
        if value in {"none", "null"}:
            return queryset.filter(assigned_to__isnull=True)
        if not value.isdigit():
            return queryset.none()
        if int(value) > ID_MAX:
            raise ValidationError({"assigned_to": [_("No user has this id.")]})
        return queryset.filter(assigned_to_id=int(value))

    def filter_search(
        self, queryset: QuerySet[Conversation], name: str, value: str
    ) -> QuerySet[Conversation]:
        return conversation_list_search(rows=queryset, text=value)
