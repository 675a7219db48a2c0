"""``/api/v1/conversations/...`` and ``/api/v1/messages/...`` (contract §4).

Interfaces only: every read goes through ``selectors`` (an object out of reach is a 404), every
change through ``services`` (a refused action is a 403/400 with the service's message).
"""

import json
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from common.api import CappedCountPagination, SearchCountPagination
from common.api_docs import ERROR, LIST_ERRORS, VALIDATION_ERROR, page_of
from common.exceptions import NotPermitted, ServiceError
from common.replica import read_alias, replica_reads
from departments.models import Department

from . import selectors, services
from .error_codes import ConversationErrorCode
from .filters import ConversationFilter
from .models import (
    Conversation,
    ConversationEvent,
    Direction,
    Message,
    MessageType,
    Priority,
    Tag,
)
from .search import SearchBusy, SearchTooSlow, search_time_limit
from .serializers import (
    ConversationSerializer,
    CustomerSummarySerializer,
    MessageSerializer,
    TagSerializer,
)
from .services import automate, organise, proactive
from .services.templates import TemplateRequest, template_content
from .uploads import upload_validate

CONVERSATION_EXAMPLE = {
    "id": 42,
    "status": "open",
    "customer": {"id": 7, "phone": "+5511987650002", "name": "Maria", "tags": []},
    "department": {"id": 1, "name": "Suporte"},
    "assigned_to": {"id": 3, "name": "Ana"},
    "last_message_at": "2026-11-24T10:15:00-03:00",
    "unread_count": 0,
    "created_at": "2026-11-24T10:00:00-03:00",
    "closed_at": None,
    "first_response_at": "2026-11-24T10:02:00-03:00",
    "window_expires_at": "2026-11-25T10:15:00-03:00",
    "whatsapp_account": {"id": 1, "name": "Loja", "display_phone_number": "+55 11 4000-1000"},
    "priority": "high",
    "tags": [{"id": 1, "name": "VIP", "color": "#dc2626"}],
}
TAG_EXAMPLE = {"id": 1, "name": "VIP", "color": "#dc2626"}
MESSAGE_EXAMPLE = {
    "id": 901,
    "conversation": 42,
    "direction": "out",
    "sender": "agent",
    "sender_user": 3,
    "type": "text",
    "body": "Olá Maria, como posso ajudar?",
    "media": None,
    "status": "queued",
    "error": "",
    "error_code": None,
    "wa_message_id": None,
    "reply_to": None,
    "send_at": None,
    "created_at": "2026-11-24T10:02:00-03:00",
}


def _visible_conversation(request: Request, pk: int) -> Conversation:
    return selectors.conversation_get_visible(user=request.user, pk=pk)  # type: ignore[arg-type]


def _conversation_response(conversation: Conversation) -> Response:
    return Response(ConversationSerializer(conversation).data)


# --- Conversations -----------------------------------------------------------------------------


class TemplateHeaderSerializer(serializers.Serializer[Any]):
    type = serializers.ChoiceField(
        choices=["text", "image", "video", "document", "location"],
        required=False,
        help_text="the header's kind (defaults to the synced template's)",
    )
    text = serializers.CharField(max_length=1024, required=False, help_text="a text header's {{1}}")
    link = serializers.URLField(
        max_length=2048,
        required=False,
        help_text="an image, video or document header's public http(s) address (or upload the "
        "file as multipart `file`)",
    )
    id = serializers.CharField(
        max_length=128, required=False, help_text="a media id uploaded to the channel already"
    )
    filename = serializers.CharField(
        max_length=240, required=False, help_text="a document's name, e.g. boleto.pdf"
    )
    latitude = serializers.FloatField(required=False, min_value=-90, max_value=90)
    longitude = serializers.FloatField(required=False, min_value=-180, max_value=180)
    name = serializers.CharField(max_length=1000, required=False)
    address = serializers.CharField(max_length=1000, required=False)


class TemplateButtonSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField(
        min_value=0, max_value=9, help_text="the button's position in the template, from 0"
    )
    type = serializers.ChoiceField(
        choices=["url", "quick_reply", "copy_code"],
        required=False,
        help_text="defaults to the synced button's",
    )
    text = serializers.CharField(
        max_length=1024, required=False, help_text="a URL button's link ending ({{1}})"
    )
    payload = serializers.CharField(
        max_length=1024, required=False, help_text="a quick reply's payload"
    )
    coupon_code = serializers.CharField(
        max_length=20, required=False, help_text="a copy-code button's code"
    )


class MessageTemplateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=512)
    language = serializers.CharField(max_length=16, help_text="e.g. pt_BR")
    parameters = serializers.ListField(
        child=serializers.CharField(max_length=1024),
        required=False,
        default=list,
        max_length=100,
        help_text="the body's {{1}}, {{2}}... in order",
    )
    header = TemplateHeaderSerializer(
        required=False,
        help_text="the header's parameter: text, a media link (or the multipart `file`) or a "
        "location",
    )
    buttons = TemplateButtonSerializer(
        many=True, required=False, help_text="the buttons' parameters"
    )


def _flat_errors(errors: Any, prefix: str = "") -> list[str]:
    """DRF's nested errors as one list of ``"field: message"`` (``header.link: ...``)."""
    if isinstance(errors, dict):
        return [
            line
            for field, inner in errors.items()
            for line in _flat_errors(inner, f"{prefix}{field}." if prefix or field else "")
        ]
    if isinstance(errors, list):
        if all(not isinstance(e, dict | list) for e in errors):
            return [f"{prefix[:-1]}: {e}" if prefix else str(e) for e in errors]
        return [
            line
            for i, inner in enumerate(errors)
            if inner
            for line in _flat_errors(inner, f"{prefix}{i}.")
        ]
    return [f"{prefix[:-1]}: {errors}" if prefix else str(errors)]


@extend_schema_field(MessageTemplateSerializer)
class MessageTemplateField(serializers.JSONField):
    """``{name, language, parameters, header?, buttons?}``, with its errors as a flat list (one
    per problem). In a multipart request it is a JSON string."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise serializers.ValidationError(
                    [_("The template must be a JSON object.")], code="invalid"
                ) from exc
        inner = MessageTemplateSerializer(data=data)
        if not inner.is_valid():
            raise serializers.ValidationError(_flat_errors(inner.errors), code="invalid")
        return dict(inner.validated_data)


def template_request(data: dict[str, Any], *, file: UploadedFile | None = None) -> TemplateRequest:
    """The service's view of a validated ``template`` field (and the header's file)."""
    buttons = [
        {key: value for key, value in button.items() if value is not None}
        for button in data.get("buttons") or []
    ]
    return TemplateRequest(
        name=data["name"],
        language=data["language"],
        parameters=list(data.get("parameters") or []),
        header=dict(data["header"]) if data.get("header") else None,
        buttons=buttons,
        file=file,
    )


def _file_check(value: UploadedFile) -> UploadedFile:
    limit = settings.API_UPLOAD_MAX_BYTES
    if value.size is not None and value.size > limit:
        raise serializers.ValidationError(
            _("The file is larger than %(mb)s MB.") % {"mb": round(limit / 1024 / 1024, 1)},
            code="file_too_large",
        )
    try:  # WhatsApp's own types and sizes, as the console checks them
        upload_validate(filename=value.name, content_type=value.content_type, size=value.size)
    except ServiceError as exc:
        raise serializers.ValidationError(exc.message, code="file_not_sendable") from exc
    return value


class ConversationStartSerializer(serializers.Serializer[Any]):
    phone = serializers.CharField(
        max_length=32, help_text="the customer's WhatsApp number, e.g. +55 11 98765-4321"
    )
    name = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="names a new contact (an existing one keeps its name)",
    )
    department = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.all(),
        required=False,
        allow_null=True,
        help_text="agents: one of their own (the first by default)",
    )
    whatsapp_account = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="the business number to write from (the default number otherwise)",
    )
    template = MessageTemplateField(
        help_text="the approved template that opens the conversation (a JSON string in a "
        "multipart request, whose `file` is then its media header)"
    )
    file = serializers.FileField(
        required=False,
        allow_empty_file=False,
        max_length=255,
        help_text="the template's image, video or document header (multipart)",
    )

    def validate_file(self, value: UploadedFile) -> UploadedFile:
        return _file_check(value)


class ConversationStartedSerializer(ConversationSerializer):
    message = MessageSerializer(read_only=True, help_text="the template sent")

    class Meta(ConversationSerializer.Meta):
        fields = (*ConversationSerializer.Meta.fields, "message")  # type: ignore[assignment]


class SearchTimedOut(APIException):
    """A search cancelled by its time limit (``SEARCH_STATEMENT_TIMEOUT_MS``): try again,
    narrower."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("The search took too long. Try more specific words or a filter.")
    default_code = ConversationErrorCode.SEARCH_TIMEOUT.value


class SearchWaitedInVain(APIException):
    """The intake takes a burst and the search's turn did not come in time: search again in a
    moment (``Retry-After``)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("The desk is taking a burst of messages. Search again in a moment.")
    default_code = ConversationErrorCode.SEARCH_BUSY.value
    wait = 1  # DRF's exception handler turns it into the Retry-After header


class ConversationListApi(ListAPIView[Conversation]):
    serializer_class = ConversationSerializer
    filterset_class = ConversationFilter
    parser_classes = (JSONParser, MultiPartParser, FormParser)

    pagination_class = CappedCountPagination

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not request.query_params.get("search", "").strip():
            return super().list(request, *args, **kwargs)
        self._paginator = SearchCountPagination()  # counts up to SEARCH_COUNT_CAP
        try:
            with replica_reads(), search_time_limit(using=read_alias()):
                return super().list(request, *args, **kwargs)  # the count, the page, prefetches
        except SearchTooSlow as exc:
            raise SearchTimedOut(exc.message, code=exc.code) from exc
        except SearchBusy as exc:
            raise SearchWaitedInVain(exc.message, code=exc.code) from exc

    def get_queryset(self) -> Any:
        return selectors.conversation_list_visible_to(user=self.request.user).prefetch_related(  # type: ignore[arg-type]
            *selectors.CONVERSATION_PREFETCH
        )

    @extend_schema(
        tags=["conversations"],
        summary="Conversations the caller may see, most recent activity first",
        description="`status=pending` alone is the queue: the most urgent first, then the "
        "customer who has waited longest.",
        responses={
            200: ConversationSerializer(many=True),
            **LIST_ERRORS,
            503: OpenApiResponse(
                ERROR,
                description="The search took too long (search_timeout), or waited in vain for "
                "its turn while the desk takes a burst of messages (search_busy).",
            ),
        },
        examples=[
            OpenApiExample(
                "Page",
                value=page_of([CONVERSATION_EXAMPLE]),
                response_only=True,
                status_codes=[200],
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["conversations"],
        summary="Start a conversation with a customer: an approved template, assigned to you",
        description=(
            "Finds the customer by `phone` as WhatsApp's intake does (a Brazilian mobile with or "
            "without the ninth digit is one customer) or creates them, opens a conversation "
            "assigned to the caller and sends the template. A customer has one conversation in "
            "progress per number: the caller's own is used, one waiting with the bot or in a "
            "queue the caller sees is taken over (200); one a colleague handles, or waiting in "
            "a queue the caller does not see, is a 409 `conversation_in_progress`. Agents start "
            "conversations in their own departments only (403). Template errors are 400s "
            "(`template_not_found`, `template_not_approved`, `template_parameters`, "
            "`template_header_media`, `template_button`); a phone that is not a WhatsApp number "
            "is a 400 `invalid_phone`. Emits `conversation.created`, `conversation.assigned` and "
            "`message.created`."
        ),
        request={
            "application/json": ConversationStartSerializer,
            "multipart/form-data": ConversationStartSerializer,
        },
        responses={
            201: ConversationStartedSerializer,
            200: ConversationStartedSerializer,
            400: VALIDATION_ERROR,
            401: ERROR,
            403: ERROR,
            409: ERROR,
        },
        examples=[
            OpenApiExample(
                "A boleto",
                value={
                    "phone": "+55 11 98765-4321",
                    "name": "Maria Souza",
                    "department": 3,
                    "template": {
                        "name": "boleto_disponivel",
                        "language": "pt_BR",
                        "parameters": ["Maria", "R$ 129,90"],
                        "header": {
                            "type": "document",
                            "link": "https://loja.example.com/boletos/123.pdf",
                            "filename": "boleto.pdf",
                        },
                        "buttons": [{"index": 0, "text": "123"}],
                    },
                },
                request_only=True,
            ),
            OpenApiExample(
                "Started",
                value={**CONVERSATION_EXAMPLE, "message": {**MESSAGE_EXAMPLE, "type": "template"}},
                response_only=True,
                status_codes=[201],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = ConversationStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        started = proactive.conversation_start(
            actor=request.user,  # type: ignore[arg-type]
            phone=data["phone"],
            name=data.get("name", ""),
            department=data.get("department"),
            number_id=data.get("whatsapp_account"),
            template=template_request(data["template"], file=data.get("file")),
        )
        started.conversation.message = started.message  # type: ignore[attr-defined]
        return Response(
            ConversationStartedSerializer(started.conversation).data,
            status=status.HTTP_201_CREATED if started.created else status.HTTP_200_OK,
        )


class PrioritySerializer(serializers.Serializer[Any]):
    priority = serializers.ChoiceField(choices=Priority.choices)


class ConversationDetailApi(APIView):
    @extend_schema(
        tags=["conversations"],
        summary="One conversation",
        responses={200: ConversationSerializer, 401: ERROR, 404: ERROR},
        examples=[OpenApiExample("Conversation", value=CONVERSATION_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        return _conversation_response(_visible_conversation(request, pk))

    @extend_schema(
        tags=["conversations"],
        summary="Set the priority (agents on their own or their queue's conversations)",
        request=PrioritySerializer,
        responses={
            200: ConversationSerializer,
            400: VALIDATION_ERROR,
            401: ERROR,
            403: ERROR,
            404: ERROR,
        },
        examples=[OpenApiExample("Urgent", value={"priority": "urgent"}, request_only=True)],
    )
    def patch(self, request: Request, pk: int) -> Response:
        conversation = _visible_conversation(request, pk)
        serializer = PrioritySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = organise.conversation_priority_set(
            conversation=conversation,
            actor=request.user,  # type: ignore[arg-type]
            priority=serializer.validated_data["priority"],
        )
        return _conversation_response(conversation)


def _action_schema(summary: str, request: Any = None, examples: Any = ()) -> Any:
    return extend_schema(
        tags=["conversations"],
        summary=summary,
        request=request,
        responses={
            200: ConversationSerializer,
            400: VALIDATION_ERROR,
            401: ERROR,
            403: ERROR,
            404: ERROR,
            409: ERROR,
        },
        examples=[
            *examples,
            OpenApiExample("Conversation", value=CONVERSATION_EXAMPLE, response_only=True),
        ],
    )


class ConversationTakeOverApi(APIView):
    @_action_schema("Take the conversation: assigned to the caller, status open")
    def post(self, request: Request, pk: int) -> Response:
        conversation = services.conversation_take_over(
            conversation=_visible_conversation(request, pk),
            actor=request.user,  # type: ignore[arg-type]
        )
        return _conversation_response(conversation)


class TransferSerializer(serializers.Serializer[Any]):
    to_user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.people().filter(is_active=True), required=False, allow_null=True
    )
    to_department = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.filter(is_active=True), required=False, allow_null=True
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=1000, default="")
    over_capacity = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "Supervisors and admins only: give the agent the conversation even though they "
            "already hold their max_conversations (without it: 409 at_capacity)."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("to_user") and not attrs.get("to_department"):
            raise serializers.ValidationError(
                {"to_user": [_("Choose an agent or a department to transfer to.")]},
                code="no_target",
            )
        return attrs


class ConversationTransferApi(APIView):
    @_action_schema(
        "Transfer to an agent and/or a department, with an optional note",
        request=TransferSerializer,
        examples=[
            OpenApiExample(
                "To a department's queue",
                value={"to_department": 2, "note": "Quer comprar o plano anual"},
                request_only=True,
            ),
            OpenApiExample("To an agent", value={"to_user": 4}, request_only=True),
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = _visible_conversation(request, pk)
        serializer = TransferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        conversation = services.conversation_transfer(
            conversation=conversation,
            actor=request.user,  # type: ignore[arg-type]
            to_user=data.get("to_user"),
            to_department=data.get("to_department"),
            note=data.get("note", ""),
            over_capacity=data.get("over_capacity", False),
        )
        return _conversation_response(conversation)


class ConversationCloseApi(APIView):
    @_action_schema("Close the conversation")
    def post(self, request: Request, pk: int) -> Response:
        conversation = services.conversation_close(
            conversation=_visible_conversation(request, pk),
            actor=request.user,  # type: ignore[arg-type]
        )
        return _conversation_response(conversation)


class ReopenSerializer(serializers.Serializer[Any]):
    over_capacity = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "Supervisors and admins only: give it back to its agent even though they already "
            "hold their max_conversations (without it: 409 at_capacity)."
        ),
    )


class ConversationReopenApi(APIView):
    @_action_schema("Reopen a closed conversation", request=ReopenSerializer)
    def post(self, request: Request, pk: int) -> Response:
        conversation = _visible_conversation(request, pk)
        serializer = ReopenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = services.conversation_reopen(
            conversation=conversation,
            actor=request.user,  # type: ignore[arg-type]
            over_capacity=serializer.validated_data["over_capacity"],
        )
        return _conversation_response(conversation)


class ActorSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class EventSerializer(serializers.ModelSerializer[ConversationEvent]):
    actor = ActorSerializer(allow_null=True, read_only=True)
    before = serializers.DictField(read_only=True)
    after = serializers.DictField(read_only=True)

    class Meta:
        model = ConversationEvent
        fields = ("id", "kind", "actor", "before", "after", "created_at")
        read_only_fields = fields


class HistoryItemSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["message", "event"])
    created_at = serializers.DateTimeField()
    message = MessageSerializer(allow_null=True)
    event = EventSerializer(allow_null=True)


class ConversationHistoryApi(ListAPIView[Any]):
    """Messages and events (take-overs, transfers with their notes, closings...) in order."""

    serializer_class = HistoryItemSerializer
    filter_backends = ()

    def get_queryset(self) -> Any:
        conversation = _visible_conversation(self.request, self.kwargs["pk"])
        return selectors.conversation_timeline(conversation=conversation)

    @extend_schema(
        tags=["conversations"],
        summary="Messages and events (transfers, take-overs, closing...) in order",
        responses={200: HistoryItemSerializer(many=True), **LIST_ERRORS},
        examples=[
            OpenApiExample(
                "Page",
                value=page_of(
                    [
                        {
                            "kind": "message",
                            "created_at": "2026-11-24T10:00:00-03:00",
                            "message": {**MESSAGE_EXAMPLE, "direction": "in", "sender": "customer"},
                            "event": None,
                        },
                        {
                            "kind": "event",
                            "created_at": "2026-11-24T10:05:00-03:00",
                            "message": None,
                            "event": {
                                "id": 12,
                                "kind": "transferred",
                                "actor": {"id": 3, "name": "Ana"},
                                "before": {"status": "open", "department": 1, "assigned_to": 3},
                                "after": {
                                    "status": "pending",
                                    "department": 2,
                                    "assigned_to": None,
                                    "note": "Vendas",
                                },
                                "created_at": "2026-11-24T10:05:00-03:00",
                            },
                        },
                    ]
                ),
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- Messages ----------------------------------------------------------------------------------


class MessageListQuerySerializer(serializers.Serializer[Any]):
    conversation = serializers.IntegerField(min_value=1)


class MessageCreateSerializer(serializers.Serializer[Any]):
    conversation = serializers.IntegerField(min_value=1)
    body = serializers.CharField(
        required=False, allow_blank=True, max_length=4096, trim_whitespace=False, default=""
    )
    file = serializers.FileField(required=False, allow_empty_file=False, max_length=255)
    reply_to = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="the id of a message of the same conversation that this one quotes",
    )
    template = MessageTemplateField(
        required=False,
        help_text="a synced template approved for the conversation's number (a JSON string in "
        "a multipart request, whose `file` is then the template's image, video or document "
        "header); the only kind of message allowed outside the 24-hour window",
    )
    send_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="schedule the message for this moment (ISO 8601, in the future, at most 60 "
        "days ahead): it is recorded `scheduled` and sent then",
    )

    def validate_send_at(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return automate.send_at_check(value)
        except ServiceError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from exc

    def validate_file(self, value: UploadedFile) -> UploadedFile:
        return _file_check(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("template"):
            return attrs
        if not attrs.get("body", "").strip() and not attrs.get("file"):
            raise serializers.ValidationError(
                {"body": [_("A message needs text or a file.")]}, code="empty_message"
            )
        return attrs


class MessageListApi(ListAPIView[Message]):
    serializer_class = MessageSerializer
    filter_backends = ()
    parser_classes = (JSONParser, MultiPartParser, FormParser)

    def get_queryset(self) -> Any:
        query = MessageListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        conversation = _visible_conversation(self.request, query.validated_data["conversation"])
        return selectors.conversation_list_messages(conversation=conversation)

    @extend_schema(
        tags=["messages"],
        summary="Messages of a conversation, oldest first",
        parameters=[
            OpenApiParameter("conversation", OpenApiTypes.INT, required=True),
        ],
        responses={200: MessageSerializer(many=True), **LIST_ERRORS},
        examples=[OpenApiExample("Page", value=page_of([MESSAGE_EXAMPLE]), response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["messages"],
        summary="Send a message to the customer (text, a template, or a file as multipart)",
        description=(
            "Only the assignee (or an admin) writes to the customer. The message is recorded "
            "`queued` and delivered to WhatsApp in the background. Files: multipart field "
            "`file` (up to API_UPLOAD_MAX_BYTES), optional `body` as caption. Templates: "
            "`template {name, language, parameters}`; one that is not synced, not APPROVED or "
            "given the wrong number of parameters is a 400 (`template_not_found`, "
            "`template_not_approved`, `template_parameters`)."
        ),
        request={
            "application/json": MessageCreateSerializer,
            "multipart/form-data": MessageCreateSerializer,
        },
        responses={201: MessageSerializer, 400: VALIDATION_ERROR, 403: ERROR, 404: ERROR},
        examples=[
            OpenApiExample("Text", value={"conversation": 42, "body": "Olá!"}, request_only=True),
            OpenApiExample(
                "Template",
                value={
                    "conversation": 42,
                    "template": {
                        "name": "retomar_atendimento",
                        "language": "pt_BR",
                        "parameters": ["Maria"],
                    },
                },
                request_only=True,
            ),
            OpenApiExample("Sent", value=MESSAGE_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = MessageCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        conversation = _visible_conversation(request, data["conversation"])
        media: dict[str, Any] = {}
        upload: UploadedFile | None = data.get("file")
        kind: str = MessageType.TEXT
        body: str = data.get("body", "")
        if template := data.get("template"):
            kind = MessageType.TEMPLATE
            body, media = template_content(
                conversation=conversation, template=template_request(template, file=upload)
            )
        elif upload is not None:
            classified = upload_validate(
                filename=upload.name, content_type=upload.content_type, size=upload.size
            )
            kind = classified.type
            media = {
                "media_file": upload,
                "media_mime_type": classified.mime_type,
                "media_filename": classified.filename,
                "media_size": upload.size,
            }
        reply_to = None
        if data.get("reply_to"):
            reply_to = selectors.message_get_quotable(
                conversation=conversation, pk=data["reply_to"]
            )
            if reply_to is None:
                raise ValidationError(
                    {"reply_to": [_("The quoted message is not part of this conversation.")]}
                )
        if data.get("send_at") is not None:
            message = automate.message_schedule(
                conversation=conversation,
                actor=request.user,  # type: ignore[arg-type]
                send_at=data["send_at"],
                body=body,
                type=kind,
                reply_to=reply_to,
                **media,
            )
        else:
            message = services.message_create_outbound(
                conversation=conversation,
                actor=request.user,  # type: ignore[arg-type]
                body=body,
                type=kind,
                reply_to=reply_to,
                **media,
            )
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The request conflicts with the current state.")
    default_code = "conflict"


class MessageDetailApi(APIView):
    @extend_schema(
        tags=["messages"],
        summary="Cancel a scheduled message",
        description=(
            "Only a message still `scheduled` is cancelled (by its author, the conversation's "
            "assignee or an admin); the message is removed. One that was sent already answers "
            "409 `not_scheduled`."
        ),
        request=None,
        responses={204: None, 403: ERROR, 404: ERROR, 409: ERROR},
    )
    def delete(self, request: Request, pk: int) -> Response:
        message = (
            Message.objects.filter(
                pk=pk,
                direction=Direction.OUT,
                conversation__in=selectors.conversation_list_visible_to(user=request.user),  # type: ignore[arg-type]
            )
            .select_related("conversation")
            .first()
        )
        if message is None:
            raise NotFound()
        try:
            automate.message_schedule_cancel(message=message, actor=request.user)  # type: ignore[arg-type]
        except NotPermitted:
            raise
        except ServiceError as exc:
            raise Conflict(exc.message, code=exc.code) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessageReadApi(APIView):
    @extend_schema(
        tags=["messages"],
        summary="Mark read: the message and the rest of its conversation (unread count 0)",
        request=None,
        responses={200: MessageSerializer, 401: ERROR, 404: ERROR},
        examples=[OpenApiExample("Message", value=MESSAGE_EXAMPLE, response_only=True)],
    )
    def patch(self, request: Request, pk: int) -> Response:
        message = (
            Message.objects.filter(
                pk=pk,
                conversation__in=selectors.conversation_list_visible_to(user=request.user),  # type: ignore[arg-type]
            )
            .select_related("conversation")
            .first()
        )
        if message is None:
            raise NotFound()
        services.conversation_mark_read(conversation=message.conversation, actor=request.user)  # type: ignore[arg-type]
        message.refresh_from_db()
        return Response(MessageSerializer(message).data)


# --- Organise: tags and priority (contract §10) -------------------------------------------------


class TagListApi(ListAPIView[Tag]):
    """Everyone signed in lists the tags; only admins create them."""

    serializer_class = TagSerializer
    filter_backends = ()
    pagination_class = None

    def get_queryset(self) -> Any:
        return selectors.tag_list()

    @extend_schema(
        tags=["tags"],
        summary="Every tag, by name",
        responses={200: TagSerializer(many=True), 401: ERROR},
        examples=[OpenApiExample("Tags", value=[TAG_EXAMPLE], response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["tags"],
        summary="Create a tag (admins)",
        request=TagSerializer,
        responses={201: TagSerializer, 400: VALIDATION_ERROR, 401: ERROR, 403: ERROR},
        examples=[OpenApiExample("Tag", value={"name": "VIP", "color": "#dc2626"})],
    )
    def post(self, request: Request) -> Response:
        serializer = TagSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tag = organise.tag_create(actor=request.user, **serializer.validated_data)  # type: ignore[arg-type]
        return Response(TagSerializer(tag).data, status=status.HTTP_201_CREATED)


class TagDetailApi(APIView):
    @extend_schema(
        tags=["tags"],
        summary="Rename or recolour a tag (admins)",
        request=TagSerializer(partial=True),
        responses={200: TagSerializer, 400: VALIDATION_ERROR, 401: ERROR, 403: ERROR, 404: ERROR},
        examples=[
            OpenApiExample("New colour", value={"color": "#16a34a"}, request_only=True),
            OpenApiExample("Tag", value={**TAG_EXAMPLE, "color": "#16a34a"}, response_only=True),
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        tag = selectors.tag_get(pk=pk)
        serializer = TagSerializer(tag, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tag = organise.tag_update(actor=request.user, tag=tag, **serializer.validated_data)  # type: ignore[arg-type]
        return Response(TagSerializer(tag).data)

    @extend_schema(
        tags=["tags"],
        summary="Delete a tag everywhere (admins)",
        responses={204: None, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def delete(self, request: Request, pk: int) -> Response:
        organise.tag_delete(actor=request.user, tag=selectors.tag_get(pk=pk))  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class TagIdsSerializer(serializers.Serializer[Any]):
    tags = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=50)


class ConversationTagsApi(APIView):
    @_action_schema(
        "Replace the conversation's tags",
        request=TagIdsSerializer,
        examples=[OpenApiExample("Tags", value={"tags": [1, 3]}, request_only=True)],
    )
    def put(self, request: Request, pk: int) -> Response:
        conversation = _visible_conversation(request, pk)
        serializer = TagIdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = organise.conversation_tags_set(
            conversation=conversation,
            actor=request.user,  # type: ignore[arg-type]
            tag_ids=serializer.validated_data["tags"],
        )
        return _conversation_response(conversation)


class ContactTagsApi(APIView):
    @extend_schema(
        tags=["contacts"],
        summary="Replace the contact's tags (a contact is visible through its conversations)",
        request=TagIdsSerializer,
        responses={200: CustomerSummarySerializer, 400: VALIDATION_ERROR, 401: ERROR, 404: ERROR},
        examples=[OpenApiExample("Tags", value={"tags": [1]}, request_only=True)],
    )
    def put(self, request: Request, pk: int) -> Response:
        customer = selectors.customer_get_visible(user=request.user, pk=pk)  # type: ignore[arg-type]
        serializer = TagIdsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = organise.customer_tags_set(
            customer=customer,
            actor=request.user,  # type: ignore[arg-type]
            tag_ids=serializer.validated_data["tags"],
        )
        return Response(CustomerSummarySerializer(customer).data)
