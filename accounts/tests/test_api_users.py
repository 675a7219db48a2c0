"""``/api/v1/users...``: what each role sees and may change, pagination, presence, audit."""

from typing import Any

import pytest

from accounts.models import AuditAction, AuditLogEntry, User
from accounts.presence import presence_connect, presence_disconnect
from accounts.tests.factories import UserFactory
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


def test_list_is_paginated_with_the_contract_shape(admin_user: Any, support: Any) -> None:
    for n in range(7):
        UserFactory(name=f"Pessoa {n:02d}", departments=[support])
    client = bearer(admin_user)
    # when
    first = client.get("/api/v1/users?page_size=3").json()
    last = client.get("/api/v1/users?page_size=3&page=3").json()
    # then
    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 8
    assert len(first["results"]) == 3
    assert first["previous"] is None
    assert "page=2" in first["next"]
    assert last["next"] is None
    assert len(last["results"]) == 2
    assert_error_shape(client.get("/api/v1/users?page=99"), 404)


def test_list_costs_the_same_queries_for_3_or_30_users(
    admin_user: Any, support: Any, sales: Any, django_assert_num_queries: Any
) -> None:
    client = bearer(admin_user)

    def fetch() -> int:
        # auth user, count, page, departments prefetch
        with django_assert_num_queries(4):
            return len(client.get("/api/v1/users?page_size=50").json()["results"])

    for _ in range(2):
        UserFactory(departments=[support, sales])
    assert fetch() == 3
    for _ in range(27):
        UserFactory(departments=[support, sales])
    assert fetch() == 30


def test_agents_see_active_colleagues_only(agent: Any, other_agent: Any) -> None:
    gone = UserFactory(name="Zé Antigo", is_active=False)
    client = bearer(agent)
    names = {u["name"] for u in client.get("/api/v1/users").json()["results"]}
    assert names == {agent.name, other_agent.name}
    assert_error_shape(client.get(f"/api/v1/users/{gone.pk}"), 404, "not_found")


def test_filters_by_role_department_and_activity(
    admin_user: Any, supervisor: Any, agent: Any, other_agent: Any, support: Any
) -> None:
    client = bearer(admin_user)

    def ids(query: str) -> set[int]:
        return {u["id"] for u in client.get(f"/api/v1/users?{query}").json()["results"]}

    assert ids("role=agent") == {agent.pk, other_agent.pk}
    assert ids(f"department={support.pk}") == {agent.pk}
    assert ids("is_active=false") == set()
    body = assert_error_shape(client.get("/api/v1/users?role=boss"), 400)
    assert "role" in body["errors"]


def test_online_field_and_online_list_follow_presence(admin_user: Any, agent: Any) -> None:
    client = bearer(admin_user)
    presence_connect(user_id=agent.pk)
    try:
        online = client.get("/api/v1/users/online").json()
        assert [u["id"] for u in online["results"]] == [agent.pk]
        assert online["results"][0]["online"] is True
        assert client.get(f"/api/v1/users/{agent.pk}").json()["online"] is True
        listed = {u["id"]: u["online"] for u in client.get("/api/v1/users").json()["results"]}
        assert listed == {agent.pk: True, admin_user.pk: False}
    finally:
        presence_disconnect(user_id=agent.pk)
    assert client.get("/api/v1/users/online").json()["count"] == 0


def test_admin_changes_role_and_departments_and_it_is_audited(
    admin_user: Any, agent: Any, support: Any, sales: Any
) -> None:
    response = bearer(admin_user).patch(
        f"/api/v1/users/{agent.pk}",
        {"role": "supervisor", "departments": [support.pk, sales.pk], "name": "Ana Souza"},
        format="json",
        REMOTE_ADDR="198.51.100.20",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["role"] == "supervisor"
    assert body["name"] == "Ana Souza"
    assert [d["name"] for d in body["departments"]] == ["Suporte", "Vendas"]
    role_entry = AuditLogEntry.objects.get(action=AuditAction.ROLE_CHANGED)
    assert (role_entry.actor, role_entry.target_id) == (admin_user, str(agent.pk))
    assert (role_entry.before, role_entry.after) == ({"role": "agent"}, {"role": "supervisor"})
    assert role_entry.ip == "198.51.100.20"
    update = AuditLogEntry.objects.get(action=AuditAction.USER_UPDATED)
    assert set(update.after) == {"name", "departments"}


def test_anyone_may_rename_themselves_but_nothing_more(agent: Any) -> None:
    client = bearer(agent)
    renamed = client.patch(f"/api/v1/users/{agent.pk}", {"name": "Ana B."}, format="json")
    assert renamed.json()["name"] == "Ana B."
    assert_error_shape(
        client.patch(f"/api/v1/users/{agent.pk}", {"role": "admin"}, format="json"),
        403,
        "permission_denied",
    )
    agent.refresh_from_db()
    assert agent.role == "agent"


def test_validation_errors_carry_field_messages(admin_user: Any, agent: Any) -> None:
    response = bearer(admin_user).patch(
        f"/api/v1/users/{agent.pk}",
        {"role": "boss", "email": "nope", "departments": [9999]},
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    body = assert_error_shape(response, 400)
    assert set(body["errors"]) == {"role", "email", "departments"}
    assert body["errors"]["role"] == ['"boss" is not a valid choice.']


def test_admin_cannot_lock_themselves_out(admin_user: Any) -> None:
    client = bearer(admin_user)
    assert_error_shape(client.delete(f"/api/v1/users/{admin_user.pk}"), 400, "self_change")
    patch = client.patch(f"/api/v1/users/{admin_user.pk}", {"role": "agent"}, format="json")
    assert_error_shape(patch, 400, "self_change")


def test_delete_deactivates_and_keeps_the_user(admin_user: Any, agent: Any) -> None:
    response = bearer(admin_user).delete(f"/api/v1/users/{agent.pk}/")
    assert response.status_code == 204
    assert User.objects.get(pk=agent.pk).is_active is False
    assert AuditLogEntry.objects.filter(
        action=AuditAction.USER_DEACTIVATED, target_id=str(agent.pk)
    ).exists()


def test_online_list_query_count_is_constant(
    admin_user: Any, support: Any, django_assert_num_queries: Any
) -> None:
    client = bearer(admin_user)
    users = [UserFactory(departments=[support]) for _ in range(6)]
    for user in users:
        presence_connect(user_id=user.pk)
    try:
        # auth user, candidates' ids, count, page, departments prefetch
        with django_assert_num_queries(5):
            assert client.get("/api/v1/users/online").json()["count"] == 6
    finally:
        for user in users:
            presence_disconnect(user_id=user.pk)


def test_passwords_are_hashed_with_argon2_and_validated() -> None:
    from supportdesk import settings as project_settings

    assert project_settings.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
    assert len(project_settings.AUTH_PASSWORD_VALIDATORS) >= 4
