"""``/api/v1/contacts/...`` and ``/api/v1/quick-replies/...`` (contract §10).

Interfaces only, like :mod:`conversations.apis`: a contact is visible through its conversations
(``selectors.customer_get_visible``: 404 otherwise), a personal quick reply only to its owner.
"""

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api_docs import ERROR, LIST_ERRORS, VALIDATION_ERROR, page_of
from departments.models import Department

from . import selectors
from .apis import CONVERSATION_EXAMPLE, TAG_EXAMPLE
from .models import Conversation, Customer, QuickReply
from .serializers import ConversationSerializer, TagListField
from .services import contacts

CONTACT_EXAMPLE = {
    "id": 7,
    "phone": "+5511987650002",
    "name": "Maria Souza",
    "notes": "Prefere ser atendida à tarde.",
    "tags": [TAG_EXAMPLE],
    "created_at": "2026-11-20T09:00:00-03:00",
    "last_activity_at": "2026-11-24T10:15:00-03:00",
}
QUICK_REPLY_EXAMPLE = {
    "id": 3,
    "shortcut": "ola",
    "title": "Saudação",
    "body": "Olá {{nome}}, aqui é {{agente}}. Seu protocolo é {{protocolo}}.",
    "scope": "personal",
    "department": None,
    "is_active": True,
    "text": "Olá Maria, aqui é Ana. Seu protocolo é 42.",
    "created_at": "2026-11-24T10:00:00-03:00",
    "updated_at": "2026-11-24T10:00:00-03:00",
}


# --- Contacts ----------------------------------------------------------------------------------


class ContactSerializer(serializers.ModelSerializer[Customer]):
    tags = TagListField()
    last_activity_at = serializers.DateTimeField(
        read_only=True, allow_null=True, default=None, help_text="of its conversations you see"
    )

    class Meta:
        model = Customer
        fields = ("id", "phone", "name", "notes", "tags", "created_at", "last_activity_at")
        read_only_fields = fields


class ContactUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(
        required=False, allow_blank=False, max_length=contacts.CONTACT_NAME_MAX
    )
    notes = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=contacts.CONTACT_NOTES_MAX,
        trim_whitespace=False,
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                {"name": [_("Send a name or notes to change.")]}, code="empty_update"
            )
        return attrs


class ContactListQuerySerializer(serializers.Serializer[Any]):
    search = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    tag = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, allow_null=True, default=None
    )


def _visible_contact(request: Request, pk: int, *, with_tags: bool = True) -> Customer:
    return selectors.customer_get_visible(user=request.user, pk=pk, with_tags=with_tags)  # type: ignore[arg-type]


class ContactListApi(ListAPIView[Customer]):
    serializer_class = ContactSerializer
    filter_backends = ()

    def get_queryset(self) -> Any:
        query = ContactListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.customer_list_visible_to(
            user=self.request.user,  # type: ignore[arg-type]
            search=query.validated_data["search"],
            tag=query.validated_data["tag"],
        )

    @extend_schema(
        tags=["contacts"],
        summary="Contacts the caller may see (through their conversations), latest activity first",
        parameters=[
            OpenApiParameter("search", OpenApiTypes.STR, description="name or phone"),
            OpenApiParameter("tag", OpenApiTypes.INT, description="a tag's id"),
        ],
        responses={200: ContactSerializer(many=True), **LIST_ERRORS},
        examples=[OpenApiExample("Page", value=page_of([CONTACT_EXAMPLE]), response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ContactDetailApi(APIView):
    @extend_schema(
        tags=["contacts"],
        summary="One contact",
        responses={200: ContactSerializer, 401: ERROR, 404: ERROR},
        examples=[OpenApiExample("Contact", value=CONTACT_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ContactSerializer(_visible_contact(request, pk)).data)

    @extend_schema(
        tags=["contacts"],
        summary="Change the contact's name and/or notes",
        description="A name set here is kept: the customer's WhatsApp profile name no longer "
        "replaces it. Emits `conversation.updated` (`changes`: `customer.name`, "
        "`customer.notes`) for each of its conversations in progress.",
        request=ContactUpdateSerializer,
        responses={200: ContactSerializer, 400: VALIDATION_ERROR, 401: ERROR, 404: ERROR},
        examples=[
            OpenApiExample(
                "Notes", value={"notes": "Cliente desde 2019; prefere e-mail."}, request_only=True
            ),
            OpenApiExample("Contact", value=CONTACT_EXAMPLE, response_only=True),
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        customer = _visible_contact(request, pk, with_tags=False)
        serializer = ContactUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contacts.customer_update(
            customer=customer,
            actor=request.user,  # type: ignore[arg-type]
            name=serializer.validated_data.get("name"),
            notes=serializer.validated_data.get("notes"),
        )
        return Response(ContactSerializer(_visible_contact(request, pk)).data)


class ContactConversationsApi(ListAPIView[Conversation]):
    serializer_class = ConversationSerializer
    filter_backends = ()

    def get_queryset(self) -> Any:
        customer = _visible_contact(self.request, self.kwargs["pk"], with_tags=False)
        return selectors.customer_list_conversations(user=self.request.user, customer=customer)  # type: ignore[arg-type]

    @extend_schema(
        tags=["contacts"],
        summary="The contact's conversations the caller may see, most recent activity first",
        responses={200: ConversationSerializer(many=True), **LIST_ERRORS},
        examples=[
            OpenApiExample("Page", value=page_of([CONVERSATION_EXAMPLE]), response_only=True)
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- Quick replies -------------------------------------------------------------------------------


class QuickReplySerializer(serializers.ModelSerializer[QuickReply]):
    scope = serializers.ChoiceField(choices=["global", "department", "personal"], read_only=True)
    department = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.all(), required=False, allow_null=True
    )
    personal = serializers.BooleanField(
        write_only=True,
        required=False,
        default=True,
        help_text="false (admins): a shared reply, general or of `department`",
    )
    text = serializers.SerializerMethodField(
        help_text="the body with its variables filled in (only with ?conversation=)"
    )
    shortcut = serializers.CharField(max_length=40)
    title = serializers.CharField(max_length=100)
    body = serializers.CharField(max_length=4096, trim_whitespace=False)

    class Meta:
        model = QuickReply
        fields = (
            "id",
            "shortcut",
            "title",
            "body",
            "scope",
            "department",
            "personal",
            "is_active",
            "text",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("id", "scope", "text", "created_at", "updated_at")

    def get_text(self, obj: QuickReply) -> str | None:
        conversation = self.context.get("conversation")
        if conversation is None:
            return None
        return selectors.quick_reply_render(
            body=obj.body, conversation=conversation, user=self.context["user"]
        )


class QuickReplyListQuerySerializer(serializers.Serializer[Any]):
    conversation = serializers.IntegerField(required=False, min_value=1, allow_null=True)


class QuickReplyListApi(ListAPIView[QuickReply]):
    serializer_class = QuickReplySerializer
    filter_backends = ()

    def _conversation(self) -> Conversation | None:
        query = QuickReplyListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        pk = query.validated_data.get("conversation")
        if not pk:
            return None
        return selectors.conversation_get_visible(user=self.request.user, pk=pk)  # type: ignore[arg-type]

    def get_serializer_context(self) -> dict[str, Any]:
        return {
            **super().get_serializer_context(),
            "conversation": getattr(self, "conversation", None),
            "user": self.request.user,
        }

    def get_queryset(self) -> Any:
        self.conversation = self._conversation()
        if self.conversation is not None:
            return selectors.quick_reply_list_for(
                conversation=self.conversation,
                user=self.request.user,  # type: ignore[arg-type]
            ).select_related("department")
        return selectors.quick_reply_list_visible_to(user=self.request.user)  # type: ignore[arg-type]

    @extend_schema(
        tags=["quick replies"],
        summary="The quick replies the caller may use: shared ones and their own personal ones",
        description="With `conversation=<id>`: those its composer offers (active, general, its "
        "department's and the caller's own), each with `text`, its variables `{{nome}}` "
        "(customer), `{{agente}}` (the caller) and `{{protocolo}}` (the conversation's id) "
        "filled in.",
        parameters=[OpenApiParameter("conversation", OpenApiTypes.INT)],
        responses={200: QuickReplySerializer(many=True), **LIST_ERRORS},
        examples=[OpenApiExample("Page", value=page_of([QUICK_REPLY_EXAMPLE]), response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["quick replies"],
        summary="Create a personal quick reply (or, admins, `personal: false`, a shared one)",
        request=QuickReplySerializer,
        responses={201: QuickReplySerializer, 400: VALIDATION_ERROR, 401: ERROR, 403: ERROR},
        examples=[
            OpenApiExample(
                "Personal",
                value={"shortcut": "ola", "title": "Saudação", "body": "Olá {{nome}}!"},
                request_only=True,
            ),
            OpenApiExample("Created", value=QUICK_REPLY_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = QuickReplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        reply = contacts.quick_reply_create(
            actor=request.user,  # type: ignore[arg-type]
            shortcut=data["shortcut"],
            title=data["title"],
            body=data["body"],
            personal=data.get("personal", True),
            department=data.get("department"),
            is_active=data.get("is_active", True),
        )
        return Response(QuickReplySerializer(reply).data, status=status.HTTP_201_CREATED)


class QuickReplyDetailApi(APIView):
    @extend_schema(
        tags=["quick replies"],
        summary="Change a quick reply (its owner; admins the shared ones)",
        request=QuickReplySerializer(partial=True),
        responses={
            200: QuickReplySerializer,
            400: VALIDATION_ERROR,
            401: ERROR,
            403: ERROR,
            404: ERROR,
        },
        examples=[OpenApiExample("Retitle", value={"title": "Boas-vindas"}, request_only=True)],
    )
    def patch(self, request: Request, pk: int) -> Response:
        reply = selectors.quick_reply_get_visible(user=request.user, pk=pk)  # type: ignore[arg-type]
        serializer = QuickReplySerializer(reply, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("personal", None)
        reply = contacts.quick_reply_update(reply=reply, actor=request.user, **data)  # type: ignore[arg-type]
        return Response(QuickReplySerializer(reply).data)

    @extend_schema(
        tags=["quick replies"],
        summary="Delete a quick reply (its owner; admins the shared ones)",
        responses={204: None, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def delete(self, request: Request, pk: int) -> Response:
        reply = selectors.quick_reply_get_visible(user=request.user, pk=pk)  # type: ignore[arg-type]
        contacts.quick_reply_delete(reply=reply, actor=request.user)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)
