"""Hardening of the API: JSON errors everywhere below /api/, rate limits, CORS, security headers
and CSP, request size limits, the OpenAPI docs, and a clean ``check --deploy`` in production."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from common.exceptions import NotPermitted, ServiceError
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

ROOT = Path(__file__).resolve().parents[2]


# A few failing endpoints, mounted beside the real ones for these tests only.
@api_view(["GET"])
@permission_classes([AllowAny])
def _drf_crash(request: Request) -> Response:
    raise RuntimeError("secret internals /srv/app/settings.py")


@api_view(["GET"])
@permission_classes([AllowAny])
def _service_error(request: Request) -> Response:
    raise ServiceError("That cannot be done now.", code="not_now")


@api_view(["GET"])
@permission_classes([AllowAny])
def _not_permitted(request: Request) -> Response:
    raise NotPermitted("Not yours.")


def _django_crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret internals /srv/app/settings.py")


urlpatterns = [
    path("api/v1/test/drf-crash", _drf_crash),
    path("api/v1/test/service-error", _service_error),
    path("api/v1/test/not-permitted", _not_permitted),
    path("api/v1/test/django-crash", _django_crash),
    path("", include("supportdesk.urls")),
]


@pytest.fixture
def crash_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__


# --- Errors --------------------------------------------------------------------------------------


def test_unknown_api_path_is_a_json_404(admin_user: Any) -> None:
    for client in (bearer(admin_user), bearer(None)):
        response = client.get("/api/v1/no-such-thing")
        assert_error_shape(response, 404, "not_found")


@pytest.mark.usefixtures("crash_urls")
@pytest.mark.parametrize("url", ["/api/v1/test/drf-crash", "/api/v1/test/django-crash"])
def test_crashes_are_a_json_500_without_trace(url: str) -> None:
    client = bearer(None)
    client.raise_request_exception = False
    response = client.get(url)
    assert_error_shape(response, 500, "server_error")
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content


@pytest.mark.usefixtures("crash_urls")
def test_service_errors_become_400_and_not_permitted_403() -> None:
    client = bearer(None)
    body = assert_error_shape(client.get("/api/v1/test/service-error"), 400, "not_now")
    assert body["detail"] == "That cannot be done now."
    body = assert_error_shape(client.get("/api/v1/test/not-permitted"), 403, "permission_denied")
    assert body["detail"] == "Not yours."


def test_malformed_json_is_a_400(admin_user: Any) -> None:
    response = bearer(admin_user).generic(
        "POST", "/api/v1/departments", "{not json", content_type="application/json"
    )
    assert_error_shape(response, 400, "parse_error")


def test_unsupported_method_is_a_json_405(admin_user: Any) -> None:
    assert_error_shape(bearer(admin_user).put("/api/v1/users"), 405, "method_not_allowed")


@pytest.mark.parametrize("suffix", ["", "/"])
def test_paths_answer_with_and_without_trailing_slash(admin_user: Any, suffix: str) -> None:
    client = bearer(admin_user)
    for route in ("/api/v1/auth/me", "/api/v1/users", "/api/v1/departments", "/api/v1/schema"):
        assert client.get(route + suffix).status_code == 200, route + suffix
    created = client.post("/api/v1/departments" + suffix, {"name": f"D{suffix}x"}, "json")
    assert created.status_code == 201


def test_request_bodies_over_the_limit_are_refused(settings: Any, admin_user: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"name": "x", "description": "y" * 4096})
    response = bearer(admin_user).generic(
        "POST", "/api/v1/departments", body, content_type="application/json"
    )
    assert_error_shape(response, 413, "request_too_large")


# --- Rate limits ---------------------------------------------------------------------------------


def _rates(settings: Any, **rates: str) -> None:
    """Lower some rates (tests then forget the history earlier tests left: ids and IPs repeat)."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_the_api_is_rate_limited_per_user(settings: Any, admin_user: Any, agent: Any) -> None:
    _rates(settings, user="3/min")
    for user in (admin_user, agent):
        cache.delete(f"throttle_user_{user.pk}")
    client = bearer(agent)
    for _ in range(3):
        assert client.get("/api/v1/auth/me").status_code == 200
    # when
    response = client.get("/api/v1/departments")
    # then
    assert_error_shape(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    assert bearer(admin_user).get("/api/v1/auth/me").status_code == 200  # others unaffected


def test_anonymous_callers_are_rate_limited_per_ip(settings: Any) -> None:
    """Open endpoints (schema, docs) count per IP; protected ones answer 401 before that."""
    _rates(settings, anon="2/min")
    for ip in ("198.51.100.77", "198.51.100.78"):
        cache.delete(f"throttle_anon_{ip}")
    client = bearer(None)
    for _ in range(2):
        assert client.get("/api/v1/schema", REMOTE_ADDR="198.51.100.77").status_code == 200
    response = client.get("/api/v1/schema", REMOTE_ADDR="198.51.100.77")
    assert_error_shape(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert client.get("/api/v1/schema", REMOTE_ADDR="198.51.100.78").status_code == 200


def test_requests_refused_for_bad_credentials_are_rate_limited_per_ip(
    settings: Any, agent: Any
) -> None:
    """DRF answers 401 before its throttles run: a flood of bad tokens still meets a limit,
    and it blocks only requests without valid credentials (an office shares one IP)."""
    _rates(settings, anon="3/min")
    for ip in ("198.51.100.90", "198.51.100.91"):
        cache.delete(f"throttle_unauthenticated_{ip}")
    anonymous = bearer(None)
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    for _ in range(3):
        response = anonymous.get("/api/v1/conversations", REMOTE_ADDR="198.51.100.90")
        assert_error_shape(response, 401)
    # when: the same address goes on with bad tokens, and a colleague there uses a good one
    blocked = anonymous.get("/api/v1/conversations", REMOTE_ADDR="198.51.100.90")
    colleague = bearer(agent).get("/api/v1/auth/me", REMOTE_ADDR="198.51.100.90")
    # then: the bad tokens meet the limit; the valid one behind the same NAT is not refused
    assert_error_shape(blocked, 429, "throttled")
    assert 0 < int(blocked["Retry-After"]) <= 60
    assert colleague.status_code == 200
    assert (
        bearer(agent).get("/api/v1/conversations", REMOTE_ADDR="198.51.100.90").status_code == 200
    )
    no_token = bearer(None).get("/api/v1/conversations", REMOTE_ADDR="198.51.100.90")
    assert_error_shape(no_token, 429, "throttled")


# --- Headers -------------------------------------------------------------------------------------


def test_security_headers_and_content_security_policy(admin_user: Any) -> None:
    response = bearer(admin_user).get("/api/v1/auth/me")
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-eval" not in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_cors_allows_the_configured_frontend_only(settings: Any, admin_user: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    client = bearer(admin_user)
    allowed = client.get("/api/v1/auth/me", HTTP_ORIGIN="https://app.example.com")
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    other = client.get("/api/v1/auth/me", HTTP_ORIGIN="https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in other
    preflight = client.options(
        "/api/v1/auth/login",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert preflight.status_code == 200
    assert "authorization" in preflight["Access-Control-Allow-Headers"]


# --- OpenAPI -------------------------------------------------------------------------------------


def test_schema_and_docs_are_served_without_third_party_assets() -> None:
    client = bearer(None)
    schema = client.get("/api/v1/schema?format=json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/conversations/{id}/transfer" in document["paths"]
    assert not any(p.endswith("/") for p in document["paths"])  # slash twins are not listed
    assert "jwtAuth" in document["components"]["securitySchemes"]
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert login["requestBody"]["content"]["application/json"]["examples"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr.net" not in html
    assert "static/drf_spectacular_sidecar" in html
    redoc = client.get("/api/v1/docs/redoc")
    assert redoc.status_code == 200
    assert "cdn.jsdelivr.net" not in redoc.content.decode()


def test_every_operation_documents_responses_and_examples() -> None:
    document = bearer(None).get("/api/v1/schema?format=json").json()
    missing = []
    for route, item in document["paths"].items():
        if route.startswith(("/api/v1/bot", "/api/v1/webhooks")):
            continue
        for method, operation in item.items():
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            has_example = any(
                "examples" in content
                for code in success
                for content in responses[code].get("content", {}).values()
            ) or any(
                "examples" in content
                for content in operation.get("requestBody", {}).get("content", {}).values()
            )
            if not operation.get("summary") or not success:
                missing.append(f"{method} {route}: summary/success")
            if not has_example and "204" not in responses:
                missing.append(f"{method} {route}: example")
            if not any(code.startswith("4") for code in responses):
                missing.append(f"{method} {route}: errors")
    assert missing == []


# --- Production settings -------------------------------------------------------------------------


def test_check_deploy_is_clean_under_production_settings() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
        and not k.startswith("RATE_LIMIT_")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="supportdesk.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="desk.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
