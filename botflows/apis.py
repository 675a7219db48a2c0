"""``/api/v1/bot/...`` (contract §4): bot settings and flows. Administrators only."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import DeskPagination, IsAdminRole

from . import selectors, services
from .models import Flow, FlowNode, MenuOption

ERROR = inline_serializer(
    name="BotError", fields={"detail": serializers.CharField(), "code": serializers.CharField()}
)


class BotSettingSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    value = serializers.JSONField()
    default = serializers.JSONField(allow_null=True)
    description = serializers.CharField()
    is_default = serializers.BooleanField(help_text="True when no admin stored a value yet.")
    updated_at = serializers.DateTimeField(allow_null=True)


class BotSettingWriteSerializer(serializers.Serializer[Any]):
    value = serializers.JSONField()
    description = serializers.CharField(required=False, allow_blank=True, max_length=255)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "value" not in self.initial_data:
            raise serializers.ValidationError({"value": ["This field is required."]})
        return attrs


class BotConfigListApi(APIView):
    permission_classes = (IsAdminRole,)

    @extend_schema(
        tags=["bot"],
        summary="Bot settings (admins): stored values and the defaults of the others",
        responses={200: BotSettingSerializer(many=True), 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request) -> Response:
        paginator = DeskPagination()
        rows = selectors.bot_config_list()
        page = paginator.paginate_queryset(rows, request, view=self)  # type: ignore[arg-type]
        return paginator.get_paginated_response(BotSettingSerializer(page, many=True).data)


class BotConfigDetailApi(APIView):
    permission_classes = (IsAdminRole,)

    @extend_schema(
        tags=["bot"],
        summary="Set one bot setting (admins)",
        request=BotSettingWriteSerializer,
        responses={200: BotSettingSerializer, 400: ERROR, 401: ERROR, 403: ERROR},
        examples=[
            OpenApiExample(
                "Hand-off words",
                value={"value": ["atendente", "humano", "falar com alguém"]},
                request_only=True,
            )
        ],
    )
    def put(self, request: Request, key: str) -> Response:
        serializer = BotSettingWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.bot_config_set(
            key=key,
            value=serializer.validated_data["value"],
            description=serializer.validated_data.get("description"),
            actor=request.user,  # type: ignore[arg-type]
        )
        row = next(row for row in selectors.bot_config_list() if row["key"] == key)
        return Response(BotSettingSerializer(row).data)


class _Ref(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class MenuOptionSerializer(serializers.ModelSerializer[MenuOption]):
    target_node = serializers.SlugRelatedField[FlowNode](slug_field="key", read_only=True)
    department = _Ref(read_only=True, allow_null=True)

    class Meta:
        model = MenuOption
        fields = (
            "number",
            "title",
            "description",
            "keywords",
            "action",
            "target_node",
            "department",
        )
        read_only_fields = fields


class FlowNodeSerializer(serializers.ModelSerializer[FlowNode]):
    next_node = serializers.SlugRelatedField[FlowNode](slug_field="key", read_only=True)
    fallback_node = serializers.SlugRelatedField[FlowNode](slug_field="key", read_only=True)
    department = _Ref(read_only=True, allow_null=True)
    options = MenuOptionSerializer(many=True, read_only=True)

    class Meta:
        model = FlowNode
        fields = (
            "key",
            "kind",
            "text",
            "position",
            "next_node",
            "department",
            "field_name",
            "validation",
            "pattern",
            "error_text",
            "url",
            "fallback_node",
            "options",
        )
        read_only_fields = fields


class FlowSerializer(serializers.ModelSerializer[Flow]):
    whatsapp_account = serializers.SerializerMethodField()
    start_node = serializers.SlugRelatedField[FlowNode](slug_field="key", read_only=True)
    published_version = serializers.SerializerMethodField()
    nodes = FlowNodeSerializer(many=True, read_only=True)

    class Meta:
        model = Flow
        fields = (
            "id",
            "name",
            "whatsapp_account",
            "is_default",
            "is_active",
            "start_node",
            "published_version",
            "nodes",
            "updated_at",
        )
        read_only_fields = fields

    def get_whatsapp_account(self, obj: Flow) -> dict[str, Any] | None:
        account = obj.whatsapp_account
        if account is None:
            return None
        return {"id": account.pk, "name": account.name, "phone_number_id": account.phone_number_id}

    def get_published_version(self, obj: Flow) -> dict[str, Any] | None:
        versions = list(obj.versions.all())  # prefetched, newest first
        if not versions:
            return None
        return {"number": versions[0].number, "published_at": versions[0].created_at}


class BotFlowListApi(ListAPIView[Flow]):
    permission_classes = (IsAdminRole,)
    serializer_class = FlowSerializer

    def get_queryset(self) -> Any:
        return selectors.flow_list()

    @extend_schema(
        tags=["bot"],
        summary="Bot flows (admins): nodes, menu options and the published version",
        responses={200: FlowSerializer(many=True), 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
