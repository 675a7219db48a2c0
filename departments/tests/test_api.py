"""``/api/v1/departments``: CRUD by admins, reads for everyone, audited, safe deletion."""

from typing import Any

import pytest

from accounts.models import AuditAction, AuditLogEntry
from conversations.tests.factories import ConversationFactory
from departments.models import Department
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


def test_admin_creates_changes_and_lists_departments(admin_user: Any, agent: Any) -> None:
    client = bearer(admin_user)
    created = client.post(
        "/api/v1/departments/", {"name": "Financeiro", "description": "Boletos"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body == {
        "id": body["id"],
        "name": "Financeiro",
        "description": "Boletos",
        "is_active": True,
        "assignment": "manual",
        "auto_close_minutes": None,
        "auto_close_message": "",
    }
    changed = client.patch(
        f"/api/v1/departments/{body['id']}", {"is_active": False}, format="json"
    ).json()
    assert changed["is_active"] is False
    listed = bearer(agent).get("/api/v1/departments").json()
    assert [d["name"] for d in listed["results"]] == ["Financeiro", "Suporte"]
    entries = AuditLogEntry.objects.filter(action=AuditAction.CONFIG_CHANGED).order_by("id")
    assert [e.after for e in entries] == [
        {
            "created": {
                "name": "Financeiro",
                "description": "Boletos",
                "is_active": True,
                "assignment": "manual",
                "auto_close_minutes": None,
                "auto_close_message": "",
            }
        },
        {"is_active": False},
    ]


def test_duplicate_and_missing_names_are_field_errors(admin_user: Any, support: Any) -> None:
    client = bearer(admin_user)
    missing = assert_error_shape(client.post("/api/v1/departments", {}, format="json"), 400)
    assert list(missing["errors"]) == ["name"]
    duplicate = client.post("/api/v1/departments", {"name": "suporte"}, format="json")
    body = assert_error_shape(duplicate, 400)
    assert list(body["errors"]) == ["name"]


def test_delete_removes_an_unused_department(admin_user: Any, sales: Any) -> None:
    assert bearer(admin_user).delete(f"/api/v1/departments/{sales.pk}").status_code == 204
    assert not Department.objects.filter(pk=sales.pk).exists()


def test_delete_deactivates_a_department_with_conversations(admin_user: Any, sales: Any) -> None:
    conversation = ConversationFactory(department=sales)
    assert bearer(admin_user).delete(f"/api/v1/departments/{sales.pk}").status_code == 204
    sales.refresh_from_db()
    assert sales.is_active is False
    conversation.refresh_from_db()
    assert conversation.department_id == sales.pk


def test_unknown_department_is_a_json_404(admin_user: Any) -> None:
    assert_error_shape(bearer(admin_user).get("/api/v1/departments/999999"), 404, "not_found")


def test_list_query_count_is_constant(agent: Any, django_assert_num_queries: Any) -> None:
    from departments.tests.factories import DepartmentFactory

    client = bearer(agent)
    for n in range(12):
        DepartmentFactory(name=f"Fila {n}")
    with django_assert_num_queries(3):  # auth user, count, page
        assert client.get("/api/v1/departments").json()["count"] == 13
