"""Signing in and out of the console, changing the password, switching the language."""

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.LANGUAGE_CODE = "en"  # assertions read the English texts


def test_login_with_email_and_password_opens_the_console(client, agent) -> None:
    page = client.get("/login/")
    assert page.status_code == 200
    assert 'name="username"' in page.content.decode()

    response = client.post(
        "/login/?next=/", {"username": agent.email, "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_is_refused_with_a_message(client, agent) -> None:
    response = client.post("/login/", {"username": agent.email, "password": "nope"})
    assert response.status_code == 200
    assert 'class="alert alert-error"' in response.content.decode()
    assert client.get("/").status_code == 302


def test_inactive_user_cannot_log_in(client) -> None:
    user = UserFactory(is_active=False)
    client.post("/login/", {"username": user.email, "password": DEFAULT_PASSWORD})
    assert client.get("/").status_code == 302


def test_logout_needs_a_post_and_ends_the_session(client, agent) -> None:
    client.force_login(agent)
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_password_change(client, agent) -> None:
    client.force_login(agent)
    response = client.post(
        "/password/",
        {
            "old_password": DEFAULT_PASSWORD,
            "new_password1": "Outra-Senha-456!",
            "new_password2": "Outra-Senha-456!",
        },
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # still signed in here
    agent.refresh_from_db()
    assert agent.check_password("Outra-Senha-456!")


def test_language_switch_is_remembered(client, agent) -> None:
    client.force_login(agent)
    response = client.post("/language/", {"language": "en", "next": "/board/"})
    assert response.status_code == 302
    assert response["Location"] == "/board/"
    cookie = response.cookies["django_language"]
    assert cookie.value == "en"
    assert int(cookie["max-age"]) >= 30 * 24 * 3600
    html = client.get("/").content.decode()
    assert '<html lang="en">' in html

    client.post("/language/", {"language": "pt-br"})
    assert '<html lang="pt-br">' in client.get("/").content.decode()


def test_language_switch_never_redirects_off_site(client) -> None:
    response = client.post("/language/", {"language": "en", "next": "https://evil.example/"})
    assert response["Location"] == "/"


# --- availability (automatic assignment, issue 13 §2) --------------------------------------------


def test_an_agent_switches_to_away_and_back_from_the_console(client, agent) -> None:
    client.force_login(agent)
    page = client.get("/").content.decode()
    assert 'id="availability"' in page and 'data-availability="available"' in page

    response = client.post(
        "/availability/", {"availability": "away"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert 'data-availability="away"' in response.content.decode()
    assert "Away" in response.content.decode()
    agent.refresh_from_db()
    assert agent.availability == "away"
    assert 'data-availability="away"' in client.get("/").content.decode()

    back = client.post("/availability/", {"availability": "available", "next": "/?tab=queue"})
    assert back.status_code == 302
    assert back["Location"] == "/?tab=queue"
    agent.refresh_from_db()
    assert agent.availability == "available"


def test_the_availability_switch_refuses_nonsense_and_strangers(client, agent) -> None:
    client.force_login(agent)
    assert client.post("/availability/", {"availability": "busy"}).status_code == 400
    agent.refresh_from_db()
    assert agent.availability == "available"
    client.logout()
    assert client.post("/availability/", {"availability": "away"}).status_code == 302  # login


def test_supervisors_have_no_availability_switch(client, supervisor) -> None:
    client.force_login(supervisor)
    assert 'id="availability"' not in client.get("/").content.decode()
