"""Helpers shared by the API tests of every app (import the fixtures you need)."""

from typing import Any

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api_env(settings: Any) -> None:
    """Argon2 is deliberately slow and tables of tests create many users: a fast hasher. The
    test client speaks plain HTTP: no redirect to HTTPS (production sits behind a TLS proxy)."""
    settings.PASSWORD_HASHERS = FAST_HASHERS
    settings.SECURE_SSL_REDIRECT = False


def bearer(user: Any | None) -> APIClient:
    """An API client authenticated with a fresh access token of ``user`` (None: anonymous)."""
    client = APIClient()
    if user is not None:
        token = RefreshToken.for_user(user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_error_shape(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["code"], str)
    if code is not None:
        assert body["code"] == code, body
    return body
