"""django-filter sets for the conversations API."""

from django.db.models import Exists, OuterRef, Q, QuerySet
from django_filters import rest_framework as filters

from .models import Conversation, ConversationStatus, Message


class ConversationFilter(filters.FilterSet):
    """``?status=&department=&assigned_to=&search=&whatsapp_account=`` (contract §4).

    ``assigned_to=none`` lists the unassigned ones; ``search`` matches the customer's name or phone
    or the text of any message of the conversation (case-insensitive).
    """

    status = filters.MultipleChoiceFilter(choices=ConversationStatus.choices)
    department = filters.NumberFilter(field_name="department_id")
    assigned_to = filters.CharFilter(method="filter_assigned_to")
    search = filters.CharFilter(method="filter_search", max_length=200)
    whatsapp_account = filters.NumberFilter(field_name="whatsapp_account_id")

    class Meta:
        model = Conversation
        fields = ("status", "department", "assigned_to", "search", "whatsapp_account")

    def filter_assigned_to(
        self, queryset: QuerySet[Conversation], name: str, value: str
    ) -> QuerySet[Conversation]:
        value = value.strip().lower()
        if value in {"none", "null"}:
            return queryset.filter(assigned_to__isnull=True)
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(assigned_to_id=int(value))

    def filter_search(
        self, queryset: QuerySet[Conversation], name: str, value: str
    ) -> QuerySet[Conversation]:
        value = value.strip()
        if not value:
            return queryset
        in_messages = Message.objects.filter(conversation_id=OuterRef("pk"), body__icontains=value)
        return queryset.filter(
            Q(customer__name__icontains=value)
            | Q(customer__phone__icontains=value)
            | Q(customer__wa_id__icontains=value)
            | Exists(in_messages)
        )
