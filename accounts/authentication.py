"""Bearer-token authentication for the API (simplejwt), refusing revoked tokens.

A token stops working when:
- its user is deactivated (``is_active`` false), or
- its user's password changed after it was issued: every token carries a hash of the password
  hash (simplejwt's ``CHECK_REVOKE_TOKEN``), compared at each request, or
- for refresh tokens, it was rotated out or logged out (blacklist; see ``accounts.apis``).
"""

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from .models import User


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
