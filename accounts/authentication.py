"""Bearer-token authentication for the API (simplejwt), refusing revoked tokens.

A token stops working when:
- its user is deactivated (``is_active`` false), or
- its user's password changed after it was issued: every token carries a hash of the password
  hash (simplejwt's ``CHECK_REVOKE_TOKEN``), compared at each request, or
- for refresh tokens, it was rotated out or logged out (blacklist; see ``accounts.apis``).

Integration keys (contract §8): ``Authorization: Api-Key <key>`` authenticates as the key's
service account (:class:`ApiKeyAuthentication`), so every permission and visibility check sees an
ordinary admin or supervisor ``request.user``.
"""

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from . import selectors, services
from .models import ApiKey, User

API_KEY_KEYWORD = "Api-Key"


def token_is_current(*, token: Token, user: User) -> bool:
    """The token was issued for the user's current password and the user is active."""
    if not user.is_active:
        return False
    return bool(token.get(api_settings.REVOKE_TOKEN_CLAIM) == get_md5_hash_password(user.password))


class DeskJWTAuthentication(JWTAuthentication):
    """simplejwt's authentication with the revocation rules above always on."""

    def get_user(self, validated_token: Token) -> Any:
        user = super().get_user(validated_token)
        if not isinstance(user, User) or not token_is_current(token=validated_token, user=user):
            raise AuthenticationFailed(str(_("This token was revoked.")), code="token_revoked")
        return user


class DeskJWTScheme(SimpleJWTScheme):
    """OpenAPI: the bearer scheme of :class:`DeskJWTAuthentication`."""

    target_class = "accounts.authentication.DeskJWTAuthentication"


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Api-Key <key>``: the request acts as the key's service account.

    Another scheme (``Bearer``) or no header: not ours (None). A key that is unknown, revoked or
    malformed: 401 ``invalid_api_key``. ``request.auth`` is the :class:`ApiKey`."""

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != API_KEY_KEYWORD.lower().encode():
            return None
        if len(parts) != 2:  # the keyword and the key
            raise exceptions.AuthenticationFailed(
                str(_("Send the key as: Authorization: Api-Key <key>.")), code="invalid_api_key"
            )
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            key = ""
        api_key = selectors.api_key_get_usable(key_hash=services.api_key_hash(key)) if key else None
        if api_key is None:
            raise exceptions.AuthenticationFailed(
                str(_("Invalid or revoked API key.")), code="invalid_api_key"
            )
        services.api_key_touch(api_key=api_key)
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{API_KEY_KEYWORD} realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """OpenAPI: the integration-key scheme of :class:`ApiKeyAuthentication`."""

    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Integration key: `Authorization: Api-Key <key>` (contract §8).",
        }
