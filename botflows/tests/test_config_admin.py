"""Bot settings in the back office are written by ``bot_config_set`` (type-checked per key)."""

import pytest
from django.test import Client
from django.urls import reverse

from botflows.models import BotConfiguration

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings):  # type: ignore[no-untyped-def]
    settings.LANGUAGE_CODE = "en"
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users


@pytest.fixture
def admin_browser(admin_user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(admin_user)
    return client


def test_admin_stores_a_setting_and_who_changed_it(admin_browser, admin_user) -> None:
    response = admin_browser.post(
        reverse("admin:botflows_botconfiguration_add"),
        {"key": "handoff_keywords", "value": '["atendente", "humano"]', "description": "x"},
    )

    assert response.status_code == 302
    row = BotConfiguration.objects.get(key="handoff_keywords")
    assert row.value == ["atendente", "humano"]
    assert row.updated_by == admin_user


def test_a_value_of_the_wrong_type_is_refused(admin_browser) -> None:
    row = BotConfiguration.objects.create(key="handoff_keywords", value=["atendente"])
    url = reverse("admin:botflows_botconfiguration_change", args=[row.pk])

    response = admin_browser.post(url, {"value": '"atendente"', "description": ""}, follow=True)

    assert "handoff_keywords must be a list of words." in [
        str(m) for m in response.context["messages"]
    ]
    row.refresh_from_db()
    assert row.value == ["atendente"]


def test_the_key_cannot_be_renamed(admin_browser) -> None:
    row = BotConfiguration.objects.create(key="greeting", value="Olá")
    url = reverse("admin:botflows_botconfiguration_change", args=[row.pk])

    admin_browser.post(url, {"key": "other", "value": '"Oi"', "description": ""})

    row.refresh_from_db()
    assert (row.key, row.value) == ("greeting", "Oi")
    assert BotConfiguration.objects.count() == 1
