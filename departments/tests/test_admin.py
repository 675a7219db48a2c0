"""The departments back office writes through ``departments.services`` (audited)."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditLogEntry
from conversations.tests.factories import ConversationFactory
from departments.models import Department
from departments.tests.factories import DepartmentFactory

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


def _form(**values):  # type: ignore[no-untyped-def]
    return {
        "description": "",
        "is_active": "on",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        **values,
    }


def test_admin_creates_a_department_with_members(admin_browser, admin_user, agent) -> None:
    response = admin_browser.post(
        reverse("admin:departments_department_add"),
        _form(
            name="Financeiro",
            **{"memberships-TOTAL_FORMS": "1", "memberships-0-user": agent.pk},
        ),
    )

    assert response.status_code == 302
    department = Department.objects.get(name="Financeiro")
    assert list(department.members.all()) == [agent]
    assert AuditLogEntry.objects.filter(
        actor=admin_user, target_type="departments.department", target_id=str(department.pk)
    ).exists()


def test_a_name_differing_only_in_case_is_refused(admin_browser, support) -> None:
    response = admin_browser.post(
        reverse("admin:departments_department_add"), _form(name="SUPORTE"), follow=True
    )

    assert "A department with this name already exists." in [
        str(m) for m in response.context["messages"]
    ]
    assert Department.objects.count() == 1


def test_admin_renames_and_deactivates(admin_browser, support) -> None:
    url = reverse("admin:departments_department_change", args=[support.pk])

    response = admin_browser.post(url, _form(name="Suporte Técnico", is_active=""))

    assert response.status_code == 302
    support.refresh_from_db()
    assert (support.name, support.is_active) == ("Suporte Técnico", False)


def test_deleting_a_department_with_conversations_deactivates_it(admin_browser) -> None:
    used = DepartmentFactory(name="Vendas")
    ConversationFactory(department=used)
    unused = DepartmentFactory(name="Marketing")

    admin_browser.post(
        reverse("admin:departments_department_delete", args=[unused.pk]), {"post": "yes"}
    )
    response = admin_browser.post(
        reverse("admin:departments_department_delete", args=[used.pk]),
        {"post": "yes"},
        follow=True,
    )

    assert not Department.objects.filter(pk=unused.pk).exists()
    used.refresh_from_db()
    assert used.is_active is False
    assert "Vendas has conversations: it was deactivated instead of deleted." in [
        str(m) for m in response.context["messages"]
    ]
