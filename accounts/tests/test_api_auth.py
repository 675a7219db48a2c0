"""``/api/v1/auth/...``: login, rotation with blacklist, logout, expiry, revocation, throttling,
and the audit log entries they leave."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.utils import aware_utcnow

from accounts.models import AuditAction, AuditLogEntry
from accounts.services import user_set_password
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from departments.tests.factories import DepartmentFactory
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


def login(client: APIClient, email: str, password: str, ip: str = "203.0.113.9") -> Any:
    return client.post(
        "/api/v1/auth/login",
        {"email": email, "password": password},
        format="json",
        REMOTE_ADDR=ip,
    )


def me(access: str) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/v1/auth/me")


def refresh(token: str) -> Any:
    return APIClient().post("/api/v1/auth/refresh-token", {"refresh": token}, format="json")


def test_login_returns_tokens_and_the_user_and_is_audited(agent: Any, support: Any) -> None:
    # when
    response = login(APIClient(), "  " + agent.email.upper(), DEFAULT_PASSWORD)
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "refresh", "user"}
    assert body["user"] == {
        "id": agent.pk,
        "email": agent.email,
        "name": agent.name,
        "role": "agent",
        "departments": [{"id": support.pk, "name": "Suporte"}],
        "is_active": True,
        "online": False,
        "availability": "available",
        "max_conversations": 5,
    }
    assert me(body["access"]).json()["email"] == agent.email
    entry = AuditLogEntry.objects.get(action=AuditAction.LOGIN_SUCCEEDED)
    assert entry.actor == agent
    assert entry.ip == "203.0.113.9"


def test_wrong_password_is_401_and_recorded_as_a_failed_login(agent: Any) -> None:
    response = login(APIClient(), agent.email, "wrong-password")
    body = assert_error_shape(response, 401, "invalid_credentials")
    assert "access" not in body
    entry = AuditLogEntry.objects.get(action=AuditAction.LOGIN_FAILED)
    assert entry.actor is None
    assert entry.after == {"email": agent.email}
    assert entry.ip == "203.0.113.9"


def test_inactive_user_cannot_log_in(agent: Any) -> None:
    agent.is_active = False
    agent.save()
    assert_error_shape(login(APIClient(), agent.email, DEFAULT_PASSWORD), 401)


def test_login_validation_errors_name_the_fields() -> None:
    response = APIClient().post(
        "/api/v1/auth/login", {"email": "not-an-email"}, format="json", HTTP_ACCEPT_LANGUAGE="en"
    )
    body = assert_error_shape(response, 400)
    assert set(body["errors"]) == {"email", "password"}
    assert body["errors"]["password"] == ["This field is required."]
    assert body["detail"] in {*body["errors"]["email"], *body["errors"]["password"]}


def test_refresh_rotates_and_the_old_refresh_stops_working(agent: Any) -> None:
    first = login(APIClient(), agent.email, DEFAULT_PASSWORD).json()
    # when
    rotated = refresh(first["refresh"])
    # then
    assert rotated.status_code == 200, rotated.content
    pair = rotated.json()
    assert set(pair) == {"access", "refresh"}
    assert pair["refresh"] != first["refresh"]
    assert me(pair["access"]).status_code == 200
    # reusing the rotated-out refresh is refused
    assert_error_shape(refresh(first["refresh"]), 401, "token_not_valid")
    # the new one still works (once)
    assert refresh(pair["refresh"]).status_code == 200


def test_logout_revokes_that_refresh_token(agent: Any) -> None:
    tokens = login(APIClient(), agent.email, DEFAULT_PASSWORD).json()
    # when
    response = APIClient().post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, "json")
    # then
    assert response.status_code == 204
    assert_error_shape(refresh(tokens["refresh"]), 401, "token_not_valid")
    assert AuditLogEntry.objects.filter(action=AuditAction.LOGOUT, actor=agent).exists()
    # logging out twice, or with garbage, is a clean 401
    again = APIClient().post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, "json")
    assert_error_shape(again, 401)
    assert_error_shape(APIClient().post("/api/v1/auth/logout", {"refresh": "x"}, "json"), 401)


def test_access_tokens_last_15_minutes(agent: Any) -> None:
    fresh = AccessToken.for_user(agent)
    fresh.set_exp(from_time=aware_utcnow() - timedelta(minutes=14))
    stale = AccessToken.for_user(agent)
    stale.set_exp(from_time=aware_utcnow() - timedelta(minutes=16))
    assert me(str(fresh)).status_code == 200
    assert_error_shape(me(str(stale)), 401, "token_not_valid")


def test_refresh_tokens_last_7_days(agent: Any) -> None:
    fresh = RefreshToken.for_user(agent)
    fresh.set_exp(from_time=aware_utcnow() - timedelta(days=6, hours=23))
    stale = RefreshToken.for_user(agent)
    stale.set_exp(from_time=aware_utcnow() - timedelta(days=7, minutes=1))
    assert refresh(str(fresh)).status_code == 200
    assert_error_shape(refresh(str(stale)), 401, "token_not_valid")


def test_deactivated_user_loses_access_and_refresh_tokens(admin_user: Any, agent: Any) -> None:
    tokens = login(APIClient(), agent.email, DEFAULT_PASSWORD).json()
    # when an admin deactivates them through the API
    assert bearer(admin_user).delete(f"/api/v1/users/{agent.pk}").status_code == 204
    # then
    assert_error_shape(me(tokens["access"]), 401)
    assert_error_shape(refresh(tokens["refresh"]), 401)
    assert_error_shape(login(APIClient(), agent.email, DEFAULT_PASSWORD), 401)


@pytest.mark.parametrize("how", ["service", "model"])
def test_password_change_revokes_earlier_tokens(agent: Any, how: str) -> None:
    tokens = login(APIClient(), agent.email, DEFAULT_PASSWORD).json()
    # when the password changes (through our service, or anywhere else: admin, console)
    if how == "service":
        user_set_password(user=agent, actor=agent, password="Outra-Senha-456")
    else:
        agent.set_password("Outra-Senha-456")
        agent.save()
    # then
    assert_error_shape(me(tokens["access"]), 401)
    assert_error_shape(refresh(tokens["refresh"]), 401)
    new = login(APIClient(), agent.email, "Outra-Senha-456").json()
    assert me(new["access"]).status_code == 200


def test_logins_are_throttled_per_ip_with_retry_after(settings: Any, agent: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "login_ip": "3/min",
        },
    }
    client = APIClient()
    for n in range(3):
        assert login(client, f"nobody{n}@example.com", "x", ip="198.51.100.7").status_code == 401
    # when
    response = login(client, agent.email, DEFAULT_PASSWORD, ip="198.51.100.7")
    # then
    assert_error_shape(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    # another IP is not affected
    assert login(client, agent.email, DEFAULT_PASSWORD, ip="198.51.100.8").status_code == 200


def test_failed_logins_are_throttled_per_account_whatever_the_ip(settings: Any, agent: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "login_account": "2/min",
        },
    }
    client = APIClient()
    other = UserFactory()
    # successful logins do not count
    for _ in range(3):
        assert login(client, other.email, DEFAULT_PASSWORD, ip="192.0.2.50").status_code == 200
    assert login(client, agent.email, "bad", ip="192.0.2.1").status_code == 401
    assert login(client, agent.email.upper(), "bad", ip="192.0.2.2").status_code == 401
    # when: even the right password, from yet another IP
    response = login(client, agent.email, DEFAULT_PASSWORD, ip="192.0.2.3")
    # then
    assert_error_shape(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert login(client, other.email, DEFAULT_PASSWORD, ip="192.0.2.4").status_code == 200


def test_session_login_in_the_console_is_audited(client: Any, agent: Any) -> None:
    assert client.login(email=agent.email, password=DEFAULT_PASSWORD)
    entry = AuditLogEntry.objects.get(action=AuditAction.LOGIN_SUCCEEDED)
    assert entry.actor == agent
    assert entry.after == {"via": "session"}


def test_back_office_changes_are_audited_as_configuration_changes(admin_user: Any) -> None:
    department = DepartmentFactory(name="Financeiro")
    LogEntry.objects.log_actions(
        user_id=admin_user.pk,
        queryset=type(department).objects.filter(pk=department.pk),
        action_flag=CHANGE,
        change_message=[{"changed": {"fields": ["Description"]}}],
        single_object=True,
    )
    entry = AuditLogEntry.objects.get(action=AuditAction.CONFIG_CHANGED)
    assert entry.actor == admin_user
    assert entry.after["via"] == "admin"
    assert entry.after["action"] == "changed"
    assert entry.after["object_id"] == str(department.pk)
    assert "Financeiro" in entry.target_repr


def test_changing_the_password_through_the_api_revokes_and_reissues(agent: Any) -> None:
    old = login(APIClient(), agent.email, DEFAULT_PASSWORD).json()
    client = bearer(agent)
    weak = client.post(
        "/api/v1/auth/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": "123"},
        format="json",
    )
    assert list(assert_error_shape(weak, 400)["errors"]) == ["new_password"]
    # when
    response = client.post(
        "/api/v1/auth/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": "Outra-Senha-Forte-9"},
        format="json",
    )
    # then
    assert response.status_code == 200, response.content
    assert me(response.json()["access"]).status_code == 200
    assert_error_shape(me(old["access"]), 401)
    assert_error_shape(refresh(old["refresh"]), 401)
    assert login(APIClient(), agent.email, "Outra-Senha-Forte-9").status_code == 200
