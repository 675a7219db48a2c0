"""``/api/v1/auth/...``, ``/api/v1/users/...`` (contract §4) and ``/api/v1/api-keys`` (§8)."""

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import exceptions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from common.api import (
    ID_MAX,
    IsAdminRole,
    LoginAccountThrottle,
    LoginIpThrottle,
    error_body,
)
from common.api_docs import ERROR, LIST_ERRORS, VALIDATION_ERROR, page_of
from departments.models import Department

from . import selectors, services
from .authentication import token_is_current
from .models import API_KEY_ROLE_CHOICES, ApiKey, AuditAction, Availability, Role, User
from .presence import is_online, online_user_ids

USER_EXAMPLE = {
    "id": 3,
    "email": "agente1@suporte.com",
    "name": "Ana",
    "role": "agent",
    "departments": [{"id": 1, "name": "Suporte"}],
    "is_active": True,
    "online": False,
    "availability": "available",
    "max_conversations": 5,
}


# --- Serializers -------------------------------------------------------------------------------


class DepartmentRefSerializer(serializers.ModelSerializer[Department]):
    class Meta:
        model = Department
        fields = ("id", "name")


class UserSerializer(serializers.ModelSerializer[User]):
    """A user as every endpoint shows it; ``online`` comes from the presence counters;
    ``availability`` and ``max_conversations`` drive automatic assignment (contract §10)."""

    departments = DepartmentRefSerializer(many=True, read_only=True)
    online = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = (
            "id",
            "email",
            "name",
            "role",
            "departments",
            "is_active",
            "online",
            "availability",
            "max_conversations",
        )
        read_only_fields = fields

    def get_online(self, obj: User) -> bool:
        online_ids = self.context.get("online_ids")
        if online_ids is not None:
            return obj.pk in online_ids
        return is_online(user_id=obj.pk)


class UserUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=150, required=False)
    email = serializers.EmailField(required=False)
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    departments = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.all(), many=True, required=False
    )
    is_active = serializers.BooleanField(required=False)
    max_conversations = serializers.IntegerField(min_value=1, max_value=1000, required=False)


class MeUpdateSerializer(serializers.Serializer[Any]):
    availability = serializers.ChoiceField(choices=Availability.choices)


class LoginSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField()
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class TokensSerializer(serializers.Serializer[Any]):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LoginResponseSerializer(TokensSerializer):
    user = UserSerializer()


class RefreshSerializer(serializers.Serializer[Any]):
    refresh = serializers.CharField()


class DeskTokenRefreshSerializer(TokenRefreshSerializer):
    """Rotation with blacklist (simplejwt), refusing tokens of deactivated users and tokens issued
    before the user's last password change."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = RefreshToken(attrs["refresh"])  # expired or blacklisted: TokenError
        user = _token_user(refresh)
        if user is None or not token_is_current(token=refresh, user=user):
            raise exceptions.AuthenticationFailed(
                _("This token was revoked."), code="token_revoked"
            )
        return super().validate(attrs)


def _token_user(token: RefreshToken) -> User | None:
    user_id = str(token.payload.get("user_id", ""))
    return User.objects.filter(pk=int(user_id)).first() if user_id.isdigit() else None


def _users_payload(users: list[User], *, many: bool = True) -> Any:
    online = online_user_ids(candidates=[u.pk for u in users])
    return UserSerializer(users, many=many, context={"online_ids": online}).data


def _user_payload(user: User) -> dict[str, Any]:
    return dict(UserSerializer(user).data)


# --- Auth --------------------------------------------------------------------------------------


@extend_schema(
    tags=["auth"],
    summary="Log in with e-mail and password",
    request=LoginSerializer,
    responses={
        200: LoginResponseSerializer,
        400: VALIDATION_ERROR,
        401: ERROR,
        429: OpenApiResponse(ERROR, description="Too many attempts; see Retry-After."),
    },
    auth=[],
    examples=[
        OpenApiExample(
            "Credentials",
            value={"email": "agente1@suporte.com", "password": "Agente@123"},
            request_only=True,
        ),
        OpenApiExample(
            "Tokens",
            value={"access": "eyJhbGciOi...", "refresh": "eyJhbGciOi...", "user": USER_EXAMPLE},
            response_only=True,
        ),
    ],
)
# Token endpoints take no bearer themselves, yet a refused token is a 401 (not 403). (A comment,
# not a docstring: drf-spectacular would publish it as every token endpoint's description.)
class TokenEndpoint(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class LoginApi(TokenEndpoint):
    throttle_classes = (LoginIpThrottle, LoginAccountThrottle)

    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"].strip().lower()
        user = authenticate(
            request._request, email=email, password=serializer.validated_data["password"]
        )  # a failure sends user_login_failed: the audit log records it (accounts.signals)
        if not isinstance(user, User):
            for throttle in self.get_throttles():
                if isinstance(throttle, LoginAccountThrottle):
                    throttle.record_failure(request, self)
            return Response(
                error_body(_("Invalid e-mail or password."), "invalid_credentials"),
                status=status.HTTP_401_UNAUTHORIZED,
            )
        refresh = RefreshToken.for_user(user)
        update_last_login(None, user)  # type: ignore[arg-type]
        services.audit_log_record(
            actor=user, action=AuditAction.LOGIN_SUCCEEDED, target=user, after={"via": "api"}
        )
        return Response(
            {
                "access": str(refresh.access_token),
                "refresh": str(refresh),
                "user": _user_payload(user),
            }
        )

    def get_throttles(self) -> list[Any]:
        if not hasattr(self, "_throttles"):
            self._throttles = super().get_throttles()
        return self._throttles


@extend_schema(
    tags=["auth"],
    summary="Exchange a refresh token for new tokens (the old refresh stops working)",
    request=RefreshSerializer,
    responses={200: TokensSerializer, 400: VALIDATION_ERROR, 401: ERROR},
    auth=[],
    examples=[
        OpenApiExample("Refresh", value={"refresh": "eyJhbGciOi..."}, request_only=True),
        OpenApiExample(
            "Rotated",
            value={"access": "eyJhbGciOi...", "refresh": "eyJhbGciOi..."},
            response_only=True,
        ),
    ],
)
class RefreshTokenApi(TokenEndpoint):
    def post(self, request: Request) -> Response:
        serializer = DeskTokenRefreshSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        return Response(serializer.validated_data)


@extend_schema(
    tags=["auth"],
    summary="Log out: the given refresh token stops working",
    request=RefreshSerializer,
    responses={204: None, 400: VALIDATION_ERROR, 401: ERROR},
    auth=[],
    examples=[OpenApiExample("Refresh", value={"refresh": "eyJhbGciOi..."}, request_only=True)],
)
class LogoutApi(TokenEndpoint):
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            refresh = RefreshToken(serializer.validated_data["refresh"])
            refresh.blacklist()
        except TokenError as exc:
            raise InvalidToken(exc.args[0]) from exc
        user = _token_user(refresh)
        services.audit_log_record(actor=user, action=AuditAction.LOGOUT, target=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    tags=["auth"],
    summary="The signed-in user",
    responses={200: UserSerializer, 401: ERROR},
    examples=[OpenApiExample("Me", value=USER_EXAMPLE, response_only=True)],
)
class MeApi(APIView):
    permission_classes = (IsAuthenticated,)

    def get(self, request: Request) -> Response:
        user = selectors.user_get_me(user=request.user)  # type: ignore[arg-type]
        return Response(_user_payload(user))

    @extend_schema(
        tags=["auth"],
        summary="Switch the signed-in user's availability (away: no automatic assignments)",
        request=MeUpdateSerializer,
        responses={200: UserSerializer, 400: VALIDATION_ERROR, 401: ERROR},
        examples=[
            OpenApiExample("Away", value={"availability": "away"}, request_only=True),
            OpenApiExample(
                "Me", value={**USER_EXAMPLE, "availability": "away"}, response_only=True
            ),
        ],
    )
    def patch(self, request: Request) -> Response:
        serializer = MeUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.user_set_availability(
            user=request.user,  # type: ignore[arg-type]
            actor=request.user,  # type: ignore[arg-type]
            availability=serializer.validated_data["availability"],
        )
        return Response(_user_payload(selectors.user_get_me(user=request.user)))  # type: ignore[arg-type]


class PasswordChangeSerializer(serializers.Serializer[Any]):
    current_password = serializers.CharField(max_length=256, trim_whitespace=False)
    new_password = serializers.CharField(max_length=256, trim_whitespace=False)

    def validate_current_password(self, value: str) -> str:
        if not self.context["user"].check_password(value):
            raise serializers.ValidationError(
                _("Your current password is not correct."), code="wrong_password"
            )
        return value

    def validate_new_password(self, value: str) -> str:
        try:
            validate_password(value, user=self.context["user"])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(list(exc.messages), code="weak_password") from exc
        return value


@extend_schema(
    tags=["auth"],
    summary="Change the caller's password: every earlier token stops working, new ones come back",
    request=PasswordChangeSerializer,
    responses={200: TokensSerializer, 400: VALIDATION_ERROR, 401: ERROR},
    examples=[
        OpenApiExample(
            "Change",
            value={"current_password": "Agente@123", "new_password": "Outra-Senha-Forte-9"},
            request_only=True,
        ),
        OpenApiExample(
            "New tokens",
            value={"access": "eyJhbGciOi...", "refresh": "eyJhbGciOi..."},
            response_only=True,
        ),
    ],
)
class PasswordChangeApi(APIView):
    permission_classes = (IsAuthenticated,)

    def post(self, request: Request) -> Response:
        user = request.user
        serializer = PasswordChangeSerializer(data=request.data, context={"user": user})
        serializer.is_valid(raise_exception=True)
        user = services.user_set_password(
            user=user,  # type: ignore[arg-type]
            actor=user,  # type: ignore[arg-type]
            password=serializer.validated_data["new_password"],
        )
        refresh = RefreshToken.for_user(user)
        return Response({"access": str(refresh.access_token), "refresh": str(refresh)})


# --- Users -------------------------------------------------------------------------------------


class UserFilter(filters.FilterSet):
    role = filters.ChoiceFilter(choices=Role.choices)
    department = filters.NumberFilter(field_name="departments", distinct=True, max_value=ID_MAX)
    is_active = filters.BooleanFilter()

    class Meta:
        model = User
        fields = ("role", "department", "is_active")


class UserListApi(ListAPIView[User]):
    serializer_class = UserSerializer
    filterset_class = UserFilter

    def get_queryset(self) -> Any:
        return selectors.user_list_visible_to(user=self.request.user)  # type: ignore[arg-type]

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(_users_payload(list(page or [])))

    @extend_schema(
        tags=["users"],
        summary="Users (admins and supervisors: all; agents: active colleagues)",
        responses={200: UserSerializer(many=True), **LIST_ERRORS},
        examples=[
            OpenApiExample(
                "Page",
                value=page_of([USER_EXAMPLE]),
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class UserOnlineApi(UserListApi):
    filterset_class = None  # type: ignore[assignment]

    def get_queryset(self) -> Any:
        return selectors.user_list_online(user=self.request.user)  # type: ignore[arg-type]

    @extend_schema(
        tags=["users"],
        summary="Users with the console open right now",
        responses={200: UserSerializer(many=True), **LIST_ERRORS},
        examples=[
            OpenApiExample(
                "Page",
                value={
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "results": [{**USER_EXAMPLE, "online": True}],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class UserDetailApi(APIView):
    """Read anyone in reach; admins change and deactivate; anyone may rename themselves."""

    def get_permissions(self) -> list[Any]:
        if self.request.method == "DELETE":
            return [IsAuthenticated(), IsAdminRole()]
        return [IsAuthenticated()]

    def _get(self, request: Request, pk: int) -> User:
        return selectors.user_get_visible(user=request.user, pk=pk)  # type: ignore[arg-type]

    @extend_schema(
        tags=["users"],
        summary="One user",
        responses={200: UserSerializer, 401: ERROR, 404: ERROR},
        examples=[OpenApiExample("User", value=USER_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(_user_payload(self._get(request, pk)))

    @extend_schema(
        tags=["users"],
        summary="Change a user (admins; others only their own name). Role changes are audited.",
        request=UserUpdateSerializer,
        responses={200: UserSerializer, 400: VALIDATION_ERROR, 403: ERROR, 404: ERROR},
        examples=[
            OpenApiExample(
                "Promote", value={"role": "supervisor", "departments": [1, 2]}, request_only=True
            ),
            OpenApiExample("User", value=USER_EXAMPLE, response_only=True),
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        user = self._get(request, pk)
        serializer = UserUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=user, actor=request.user, **serializer.validated_data)  # type: ignore[arg-type]
        return Response(_user_payload(selectors.user_get_visible(user=request.user, pk=user.pk)))  # type: ignore[arg-type]

    @extend_schema(
        tags=["users"],
        summary="Deactivate a user (admins): no more logins, their tokens stop working",
        responses={204: None, 400: ERROR, 403: ERROR, 404: ERROR},
    )
    def delete(self, request: Request, pk: int) -> Response:
        user = self._get(request, pk)
        services.user_deactivate(user=user, actor=request.user)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Integration keys (contract §8) ------------------------------------------------------------

API_KEY_EXAMPLE = {
    "id": 1,
    "name": "n8n",
    "role": "supervisor",
    "prefix": "sdk_1a2b3c4d",
    "created_at": "2026-12-01T12:00:00-03:00",
    "last_used_at": None,
    "revoked": False,
    "revoked_at": None,
    "created_by": {"id": 1, "name": "Admin"},
}


class _UserRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    created_by = _UserRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = ApiKey
        fields: tuple[str, ...] = (
            "id",
            "name",
            "role",
            "prefix",
            "created_at",
            "last_used_at",
            "revoked",
            "revoked_at",
            "created_by",
        )
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The key itself: shown in this answer only.")

    class Meta(ApiKeySerializer.Meta):
        fields = (*ApiKeySerializer.Meta.fields, "key")
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=API_KEY_ROLE_CHOICES)


class ApiKeyListApi(ListAPIView[ApiKey]):
    permission_classes = (IsAuthenticated, IsAdminRole)
    serializer_class = ApiKeySerializer
    filterset_class = None

    def get_queryset(self) -> Any:
        return selectors.api_key_list()

    @extend_schema(
        tags=["api-keys"],
        summary="Integration keys (admins), newest first; the keys themselves are never shown",
        responses={200: ApiKeySerializer(many=True), **LIST_ERRORS, 403: ERROR},
        examples=[
            OpenApiExample(
                "Page",
                value=page_of([API_KEY_EXAMPLE]),
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["api-keys"],
        summary="Create an integration key (admins): the answer holds `key`, shown this once",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, 400: VALIDATION_ERROR, 401: ERROR, 403: ERROR},
        examples=[
            OpenApiExample(
                "New key", value={"name": "n8n", "role": "supervisor"}, request_only=True
            ),
            OpenApiExample(
                "Created",
                value={**API_KEY_EXAMPLE, "key": "sdk_1a2b3c4d_Vd3...q0"},
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, key = services.api_key_create(actor=request.user, **serializer.validated_data)  # type: ignore[arg-type]
        api_key = selectors.api_key_get(pk=api_key.pk)
        return Response(
            {**ApiKeySerializer(api_key).data, "key": key}, status=status.HTTP_201_CREATED
        )


class ApiKeyDetailApi(APIView):
    permission_classes = (IsAuthenticated, IsAdminRole)

    @extend_schema(
        tags=["api-keys"],
        summary="One integration key (admins)",
        responses={200: ApiKeySerializer, 401: ERROR, 403: ERROR, 404: ERROR},
        examples=[OpenApiExample("Key", value=API_KEY_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(ApiKeySerializer(selectors.api_key_get(pk=pk)).data)

    @extend_schema(
        tags=["api-keys"],
        summary="Revoke an integration key (admins): it stops working at once and stays listed",
        responses={204: None, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.api_key_revoke(actor=request.user, api_key=selectors.api_key_get(pk=pk))  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)
