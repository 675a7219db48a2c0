"""Password guessing on the console's and the admin's login forms is throttled per account and IP,
with a higher per-account ceiling, so a guesser elsewhere cannot lock the real user out."""

import pytest

from accounts.models import AuditAction, AuditLogEntry
from accounts.tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

GUESSER = "203.0.113.9"
OFFICE = "198.51.100.20"


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.LANGUAGE_CODE = "en"


def _login(client, path, email, password, ip):
    return client.post(path, {"username": email, "password": password}, REMOTE_ADDR=ip)


def test_console_refuses_even_the_right_password_after_five_failures_from_one_ip(client, agent):
    for _ in range(5):
        assert _login(client, "/login/", agent.email, "wrong", GUESSER).status_code == 200

    response = _login(client, "/login/", agent.email, DEFAULT_PASSWORD, GUESSER)

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert client.get("/").status_code == 302  # not signed in
    refused = AuditLogEntry.objects.get(action=AuditAction.LOGIN_THROTTLED)
    assert refused.ip == GUESSER
    assert refused.after["via"] == "console"


def test_the_real_user_elsewhere_still_signs_in_while_a_guesser_is_locked_out(client, agent):
    for _ in range(6):
        _login(client, "/login/", agent.email, "wrong", GUESSER)

    response = _login(client, "/login/", agent.email, DEFAULT_PASSWORD, OFFICE)

    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_a_guesser_over_many_ips_meets_the_per_account_ceiling(client, agent, settings):
    settings.LOGIN_FAILURES_ACCOUNT = (8, 3600)
    for n in range(8):
        _login(client, "/login/", agent.email, "wrong", f"192.0.2.{n + 1}")

    response = _login(client, "/login/", agent.email, DEFAULT_PASSWORD, OFFICE)

    assert response.status_code == 429


def test_one_ip_guessing_many_accounts_is_stopped(client, agent, other_agent, settings):
    settings.LOGIN_FAILURES_IP = (3, 900)
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        _login(client, "/login/", email, "wrong", GUESSER)

    assert _login(client, "/login/", agent.email, DEFAULT_PASSWORD, GUESSER).status_code == 429
    assert _login(client, "/login/", agent.email, DEFAULT_PASSWORD, OFFICE).status_code == 302


def test_a_successful_sign_in_forgets_earlier_failures_from_that_ip(client, agent):
    for _ in range(4):
        _login(client, "/login/", agent.email, "wrong", OFFICE)
    assert _login(client, "/login/", agent.email, DEFAULT_PASSWORD, OFFICE).status_code == 302
    client.post("/logout/")

    for _ in range(4):
        _login(client, "/login/", agent.email, "wrong", OFFICE)

    assert _login(client, "/login/", agent.email, DEFAULT_PASSWORD, OFFICE).status_code == 302


def test_the_admin_login_is_throttled_too(client, admin_user):
    for _ in range(5):
        _login(client, "/admin/login/", admin_user.email, "wrong", GUESSER)

    response = _login(client, "/admin/login/", admin_user.email, DEFAULT_PASSWORD, GUESSER)

    assert "Too many failed sign-in attempts" in response.content.decode()
    assert client.get("/admin/").status_code == 302  # still not signed in
    assert AuditLogEntry.objects.get(action=AuditAction.LOGIN_THROTTLED).after["via"] == "admin"
    elsewhere = _login(client, "/admin/login/", admin_user.email, DEFAULT_PASSWORD, OFFICE)
    assert elsewhere.status_code == 302
