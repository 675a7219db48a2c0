"""``/api/v1/departments`` (contract §4): everyone signed in reads, admins write."""

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import AdminWriteAuthenticatedRead
from common.api_docs import ERROR, LIST_ERRORS, VALIDATION_ERROR, page_of

from . import services
from .models import AssignmentMode, Department

DEPARTMENT_EXAMPLE = {
    "id": 1,
    "name": "Suporte",
    "description": "Technical help",
    "is_active": True,
    "assignment": "manual",
    "auto_close_minutes": 120,
    "auto_close_message": "Encerramos este atendimento por falta de resposta. É só escrever!",
}


class DepartmentSerializer(serializers.ModelSerializer[Department]):
    class Meta:
        model = Department
        fields = (
            "id",
            "name",
            "description",
            "is_active",
            "assignment",
            "auto_close_minutes",
            "auto_close_message",
        )
        read_only_fields = ("id",)


class DepartmentWriteSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    is_active = serializers.BooleanField(required=False)
    assignment = serializers.ChoiceField(choices=AssignmentMode.choices, required=False)
    auto_close_minutes = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=60 * 24 * 30,
        help_text="close a conversation idle this long while waiting for the customer; null: never",
    )
    auto_close_message = serializers.CharField(
        required=False, allow_blank=True, max_length=4096, help_text="sent just before closing"
    )

    def validate_name(self, value: str) -> str:
        others = Department.objects.filter(name__iexact=value.strip())
        if instance := self.context.get("instance"):
            others = others.exclude(pk=instance.pk)
        if others.exists():
            raise serializers.ValidationError(
                _("A department with this name already exists."), code="unique"
            )
        return value.strip()


class DepartmentListApi(ListAPIView[Department]):
    permission_classes = (AdminWriteAuthenticatedRead,)
    serializer_class = DepartmentSerializer
    queryset = Department.objects.order_by("name")

    @extend_schema(
        tags=["departments"],
        summary="Departments",
        responses={200: DepartmentSerializer(many=True), **LIST_ERRORS},
        examples=[
            OpenApiExample(
                "Page",
                value=page_of([DEPARTMENT_EXAMPLE]),
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["departments"],
        summary="Create a department (admins)",
        request=DepartmentWriteSerializer,
        responses={201: DepartmentSerializer, 400: VALIDATION_ERROR, 403: ERROR},
        examples=[
            OpenApiExample(
                "New", value={"name": "Financeiro", "description": "Boletos"}, request_only=True
            ),
            OpenApiExample("Created", value=DEPARTMENT_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = DepartmentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        department = services.department_create(actor=request.user, **serializer.validated_data)  # type: ignore[arg-type]
        return Response(DepartmentSerializer(department).data, status=status.HTTP_201_CREATED)


class DepartmentDetailApi(APIView):
    permission_classes = (AdminWriteAuthenticatedRead,)

    def _get(self, pk: int) -> Department:
        return Department.objects.get(pk=pk)

    @extend_schema(
        tags=["departments"],
        summary="One department",
        responses={200: DepartmentSerializer, 401: ERROR, 404: ERROR},
        examples=[OpenApiExample("Department", value=DEPARTMENT_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(DepartmentSerializer(self._get(pk)).data)

    @extend_schema(
        tags=["departments"],
        summary="Change a department (admins)",
        request=DepartmentWriteSerializer(partial=True),
        responses={200: DepartmentSerializer, 400: VALIDATION_ERROR, 403: ERROR, 404: ERROR},
        examples=[
            OpenApiExample("Rename", value={"name": "Suporte técnico"}, request_only=True),
            OpenApiExample("Department", value=DEPARTMENT_EXAMPLE, response_only=True),
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        department = self._get(pk)
        serializer = DepartmentWriteSerializer(
            data=request.data, partial=True, context={"instance": department}
        )
        serializer.is_valid(raise_exception=True)
        department = services.department_update(
            department=department,
            actor=request.user,  # type: ignore[arg-type]
            **serializer.validated_data,
        )
        return Response(DepartmentSerializer(department).data)

    @extend_schema(
        tags=["departments"],
        summary="Delete a department (admins)",
        description=(
            "A department that never had a conversation is deleted. One with conversations is "
            "deactivated instead (`is_active` false), so its history stays intact. Both answer 204."
        ),
        responses={204: None, 403: ERROR, 404: ERROR},
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.department_delete(department=self._get(pk), actor=request.user)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)
