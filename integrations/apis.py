"""``/api/v1/webhook-subscriptions`` and ``/api/v1/webhook-deliveries`` (contract §8): admins only.

Interfaces only: reads through ``selectors``, writes through ``services``; a refused URL or
event type answers 400 naming the field.
"""

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import IsAdminRole
from common.api_docs import ERROR, LIST_ERRORS, VALIDATION_ERROR, page_of
from common.events import event_types

from . import selectors, services
from .models import WebhookDelivery, WebhookSubscription

SUBSCRIPTION_EXAMPLE = {
    "id": 1,
    "url": "https://n8n.example.com/webhook/supportdesk",
    "events": ["conversation.closed", "message.created"],
    "is_active": True,
    "description": "n8n: CRM sync",
    "created_at": "2026-12-01T12:00:00Z",
    "updated_at": "2026-12-01T12:00:00Z",
}
DELIVERY_EXAMPLE = {
    "id": "0b7e0f0e-6f1e-4b8a-9a49-2a8f3f5f2c11",
    "event": "conversation.closed",
    "status": "failed",
    "attempts": 35,
    "response_code": 500,
    "last_error": "HTTP 500: Internal Server Error",
    "created_at": "2026-12-01T12:00:00Z",
    "delivered_at": None,
}


class SubscriptionSerializer(serializers.ModelSerializer[WebhookSubscription]):
    class Meta:
        model = WebhookSubscription
        fields: tuple[str, ...] = (
            "id",
            "url",
            "events",
            "is_active",
            "description",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class SubscriptionCreatedSerializer(SubscriptionSerializer):
    """The POST answer: the only time ``secret`` is shown."""

    secret = serializers.CharField(read_only=True)

    class Meta(SubscriptionSerializer.Meta):
        fields = (*SubscriptionSerializer.Meta.fields, "secret")
        read_only_fields = fields


class EventTypesField(serializers.ListField):  # type: ignore[type-arg]
    """A list of strings whose errors are one flat list (contract §4's ``errors`` shape), not
    DRF's ``{"0": [...]}`` per item; which types exist is the service's check."""

    child = serializers.CharField(allow_blank=True)

    def run_child_validation(self, data: list[Any]) -> list[Any]:
        try:
            return super().run_child_validation(data)
        except ValidationError as exc:
            raise ValidationError(
                [
                    ErrorDetail(
                        str(_("Event types are strings, such as conversation.closed.")), "invalid"
                    )
                ]
            ) from exc


class SubscriptionWriteSerializer(serializers.Serializer[Any]):
    url = serializers.URLField(max_length=2000)
    events = EventTypesField(help_text=_('Event types (contract §8), or ["*"] for every one.'))
    secret = serializers.CharField(
        write_only=True,
        required=False,
        min_length=16,
        max_length=200,
        help_text=_("Generated when omitted (and shown once, in the answer)."),
    )
    is_active = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=255)


class DeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "event",
            "status",
            "attempts",
            "response_code",
            "last_error",
            "created_at",
            "delivered_at",
        )
        read_only_fields = fields


def _field_error(refused: services.InvalidSubscription) -> ValidationError:
    return ValidationError({refused.field: [ErrorDetail(refused.message, code=refused.code)]})


class SubscriptionListApi(ListAPIView[WebhookSubscription]):
    permission_classes = (IsAdminRole,)
    serializer_class = SubscriptionSerializer

    def get_queryset(self) -> QuerySet[WebhookSubscription]:
        return selectors.subscription_list()

    @extend_schema(
        tags=["webhooks"],
        summary="Webhook subscriptions (admins)",
        responses={200: SubscriptionSerializer(many=True), **LIST_ERRORS, 403: ERROR},
        examples=[
            OpenApiExample(
                "Page",
                value={
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "results": [SUBSCRIPTION_EXAMPLE],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["webhooks"],
        summary="Subscribe a URL to events (admins)",
        description=(
            "The URL must be http(s) and resolve to public addresses (unless "
            "`OUTGOING_WEBHOOKS_ALLOW_PRIVATE`). `secret` is generated when omitted; the answer "
            "is the only place it is ever shown."
        ),
        request=SubscriptionWriteSerializer,
        responses={201: SubscriptionCreatedSerializer, 400: VALIDATION_ERROR, 403: ERROR},
        examples=[
            OpenApiExample(
                "New",
                value={
                    "url": "https://n8n.example.com/webhook/supportdesk",
                    "events": ["conversation.closed", "message.created"],
                    "description": "n8n: CRM sync",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Created",
                value={**SUBSCRIPTION_EXAMPLE, "secret": "Yk3…generated…"},
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = SubscriptionWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            subscription = services.subscription_create(
                actor=request.user,  # type: ignore[arg-type]
                **serializer.validated_data,
            )
        except services.InvalidSubscription as refused:
            raise _field_error(refused) from refused
        return Response(
            SubscriptionCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED
        )


class SubscriptionDetailApi(APIView):
    permission_classes = (IsAdminRole,)

    @extend_schema(
        tags=["webhooks"],
        summary="One webhook subscription (admins)",
        responses={200: SubscriptionSerializer, 401: ERROR, 403: ERROR, 404: ERROR},
        examples=[OpenApiExample("Subscription", value=SUBSCRIPTION_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(SubscriptionSerializer(selectors.subscription_get(pk=pk)).data)

    @extend_schema(
        tags=["webhooks"],
        summary="Change a webhook subscription (admins)",
        description="`secret` may be replaced (it is never shown again).",
        request=SubscriptionWriteSerializer(partial=True),
        responses={200: SubscriptionSerializer, 400: VALIDATION_ERROR, 403: ERROR, 404: ERROR},
        examples=[
            OpenApiExample("Pause", value={"is_active": False}, request_only=True),
            OpenApiExample("Subscription", value=SUBSCRIPTION_EXAMPLE, response_only=True),
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        subscription = selectors.subscription_get(pk=pk)
        serializer = SubscriptionWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            subscription = services.subscription_update(
                subscription=subscription,
                actor=request.user,  # type: ignore[arg-type]
                **serializer.validated_data,
            )
        except services.InvalidSubscription as refused:
            raise _field_error(refused) from refused
        return Response(SubscriptionSerializer(subscription).data)

    @extend_schema(
        tags=["webhooks"],
        summary="Delete a webhook subscription and its delivery log (admins)",
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.subscription_delete(
            subscription=selectors.subscription_get(pk=pk),
            actor=request.user,  # type: ignore[arg-type]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubscriptionDeliveryListApi(ListAPIView[WebhookDelivery]):
    permission_classes = (IsAdminRole,)
    serializer_class = DeliverySerializer

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator, no real request
            return WebhookDelivery.objects.none()
        subscription = selectors.subscription_get(pk=self.kwargs["pk"])
        return selectors.delivery_list_for_subscription(subscription=subscription)

    @extend_schema(
        tags=["webhooks"],
        summary="A subscription's deliveries, newest first (admins)",
        responses={200: DeliverySerializer(many=True), **LIST_ERRORS, 403: ERROR},
        examples=[
            OpenApiExample(
                "Page",
                value=page_of([DELIVERY_EXAMPLE]),
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class DeliveryRedeliverApi(APIView):
    permission_classes = (IsAdminRole,)

    @extend_schema(
        tags=["webhooks"],
        summary="Deliver again (admins)",
        description="The same delivery (uuid and body), `pending` again and queued now.",
        request=None,
        responses={202: DeliverySerializer, 400: ERROR, 403: ERROR, 404: ERROR},
        examples=[
            OpenApiExample(
                "Queued",
                value={**DELIVERY_EXAMPLE, "status": "pending"},
                response_only=True,
                status_codes=["202"],
            )
        ],
    )
    def post(self, request: Request, pk: str) -> Response:
        delivery = services.delivery_redeliver(
            delivery=selectors.delivery_get(pk=pk),
            actor=request.user,  # type: ignore[arg-type]
        )
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class EventTypesApi(APIView):
    permission_classes = (IsAdminRole,)

    @extend_schema(
        tags=["webhooks"],
        summary="The event types a subscription may choose (admins)",
        responses={200: build_array_type(build_basic_type(OpenApiTypes.STR) or {}), 403: ERROR},
        examples=[
            OpenApiExample(
                "Types", value=["conversation.closed", "message.created"], response_only=True
            )
        ],
    )
    def get(self, request: Request) -> Response:
        return Response(event_types(public_only=True))
