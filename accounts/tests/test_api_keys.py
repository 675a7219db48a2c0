"""``/api/v1/api-keys`` and ``Authorization: Api-Key <key>`` (contract §8): who may manage keys,
what is stored, revocation, last use, the audit log, and that service accounts stay out of sight."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditAction, AuditLogEntry, User
from accounts.services import api_key_create, api_key_hash, api_key_touch
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


def with_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def create(client: APIClient, name: str = "n8n", role: str = "supervisor") -> Any:
    return client.post("/api/v1/api-keys", {"name": name, "role": role}, format="json")


def test_an_admin_creates_a_key_shown_once_that_authenticates(admin_user: Any) -> None:
    # when
    response = create(bearer(admin_user), role="supervisor")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    key = body["key"]
    assert key.startswith(body["prefix"])
    assert body["role"] == "supervisor"
    assert body["revoked"] is False
    assert body["last_used_at"] is None
    assert body["created_by"] == {"id": admin_user.pk, "name": admin_user.name}
    me = with_key(key).get("/api/v1/auth/me")
    assert me.status_code == 200, me.content
    assert me.json()["role"] == "supervisor"
    assert me.json()["name"] == "API key: n8n"
    # the key is never shown again
    listed = bearer(admin_user).get("/api/v1/api-keys").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]
    assert "key" not in listed[0]
    assert "key" not in bearer(admin_user).get(f"/api/v1/api-keys/{body['id']}").json()


def test_only_the_hash_of_the_key_is_stored(admin_user: Any) -> None:
    api_key, key = api_key_create(actor=admin_user, name="CRM", role="admin")
    stored = ApiKey.objects.values().get(pk=api_key.pk)
    assert key not in {str(value) for value in stored.values()}
    assert stored["key_hash"] == api_key_hash(key)
    assert len(key) > 40  # a high-entropy value, not a guessable one
    user = User.objects.get(pk=api_key.user_id)
    assert not user.has_usable_password()
    assert user.is_service_account


def test_the_service_account_cannot_log_in(admin_user: Any) -> None:
    api_key, _key = api_key_create(actor=admin_user, name="CRM", role="admin")
    response = APIClient().post(
        "/api/v1/auth/login", {"email": api_key.user.email, "password": ""}, format="json"
    )
    assert response.status_code in (400, 401)


def test_an_admin_key_acts_as_an_admin(admin_user: Any) -> None:
    _api_key, key = api_key_create(actor=admin_user, name="Ops", role="admin")
    # an admin key may even manage keys
    assert create(with_key(key), name="another").status_code == 201


def test_a_supervisor_key_cannot_manage_keys(admin_user: Any) -> None:
    api_key, key = api_key_create(actor=admin_user, name="BI", role="supervisor")
    client = with_key(key)
    assert_error_shape(create(client), 403)
    assert_error_shape(client.get("/api/v1/api-keys"), 403)
    assert_error_shape(client.delete(f"/api/v1/api-keys/{api_key.pk}"), 403)


@pytest.mark.parametrize("who", ["agent", "supervisor"])
def test_agents_and_supervisors_cannot_list_or_create_keys(who: str, request: Any) -> None:
    client = bearer(request.getfixturevalue(who))
    assert_error_shape(client.get("/api/v1/api-keys"), 403)
    assert_error_shape(create(client), 403)


def test_anonymous_callers_get_401(db: Any) -> None:
    assert_error_shape(APIClient().get("/api/v1/api-keys"), 401)


def test_keys_act_only_as_admins_or_supervisors(admin_user: Any) -> None:
    body = assert_error_shape(create(bearer(admin_user), role="agent"), 400)
    assert "role" in body["errors"]
    assert not ApiKey.objects.exists()


def test_a_revoked_key_answers_401_and_stays_listed(admin_user: Any) -> None:
    api_key, key = api_key_create(actor=admin_user, name="Old", role="admin")
    assert with_key(key).get("/api/v1/auth/me").status_code == 200
    # when
    response = bearer(admin_user).delete(f"/api/v1/api-keys/{api_key.pk}")
    # then
    assert response.status_code == 204
    assert_error_shape(with_key(key).get("/api/v1/auth/me"), 401, "invalid_api_key")
    listed = bearer(admin_user).get("/api/v1/api-keys").json()["results"]
    assert listed[0]["revoked"] is True
    assert listed[0]["revoked_at"] is not None
    # revoking again changes nothing; an unknown key is a 404
    assert bearer(admin_user).delete(f"/api/v1/api-keys/{api_key.pk}").status_code == 204
    assert_error_shape(bearer(admin_user).delete("/api/v1/api-keys/999999"), 404)
    assert AuditLogEntry.objects.filter(action=AuditAction.API_KEY_REVOKED).count() == 1


@pytest.mark.parametrize(
    "header",
    ["Api-Key sdk_00000000_wrong", "Api-Key", "Api-Key two parts", "api-key ïñválid"],
)
def test_a_wrong_or_malformed_key_answers_401(admin_user: Any, header: str) -> None:
    api_key_create(actor=admin_user, name="Real", role="admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/auth/me")
    assert_error_shape(response, 401, "invalid_api_key")


def test_a_wrong_key_with_a_real_prefix_answers_401(admin_user: Any) -> None:
    _api_key, key = api_key_create(actor=admin_user, name="Real", role="admin")
    assert_error_shape(with_key(key[:-2] + "xx").get("/api/v1/auth/me"), 401, "invalid_api_key")


def test_last_used_at_is_written_at_most_once_a_minute(
    admin_user: Any, django_assert_num_queries: Any
) -> None:
    api_key, key = api_key_create(actor=admin_user, name="Poller", role="supervisor")
    client = with_key(key)
    # when
    assert client.get("/api/v1/auth/me").status_code == 200
    # then
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None
    # a second request within the minute: the key (with its user), /auth/me (user, departments);
    # no write
    with django_assert_num_queries(3):
        assert client.get("/api/v1/auth/me").status_code == 200
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first
    # a minute later it moves on
    api_key.refresh_from_db()
    later = first + timedelta(seconds=61)
    assert api_key_touch(api_key=api_key, now=later)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == later
    assert not api_key_touch(api_key=api_key, now=later + timedelta(seconds=5))


def test_creation_and_revocation_are_audited(admin_user: Any) -> None:
    client = bearer(admin_user)
    key_id = create(client, name="Zapier", role="admin").json()["id"]
    client.delete(f"/api/v1/api-keys/{key_id}")
    created = AuditLogEntry.objects.get(action=AuditAction.API_KEY_CREATED)
    revoked = AuditLogEntry.objects.get(action=AuditAction.API_KEY_REVOKED)
    for entry in (created, revoked):
        assert entry.actor == admin_user
        assert entry.target_type == "accounts.apikey"
        assert entry.target_id == str(key_id)
    assert created.after == {"name": "Zapier", "role": "admin", "prefix": created.after["prefix"]}
    assert revoked.after == {"revoked": True}


def test_the_key_list_costs_the_same_queries_for_2_or_20_keys(
    admin_user: Any, django_assert_num_queries: Any
) -> None:
    client = bearer(admin_user)

    def fetch() -> int:
        # auth user, count, page (with the creator joined)
        with django_assert_num_queries(3):
            return len(client.get("/api/v1/api-keys?page_size=50").json()["results"])

    for n in range(2):
        api_key_create(actor=admin_user, name=f"k{n}", role="admin")
    assert fetch() == 2
    for n in range(18):
        api_key_create(actor=admin_user, name=f"more{n}", role="supervisor")
    assert fetch() == 20


def test_service_accounts_are_not_users_of_the_desk(admin_user: Any, agent: Any) -> None:
    api_key, key = api_key_create(actor=admin_user, name="Bot", role="admin")
    for caller in (bearer(admin_user), bearer(agent), with_key(key)):
        ids = {row["id"] for row in caller.get("/api/v1/users?page_size=100").json()["results"]}
        assert api_key.user_id not in ids
        assert caller.get(f"/api/v1/users/{api_key.user_id}").status_code == 404
    assert api_key.user_id not in User.objects.people().values_list("pk", flat=True)


def test_revoking_deactivates_the_service_account(admin_user: Any) -> None:
    api_key, _key = api_key_create(actor=admin_user, name="Gone", role="admin")
    bearer(admin_user).delete(f"/api/v1/api-keys/{api_key.pk}")
    assert not User.objects.get(pk=api_key.user_id).is_active
    assert timezone.now() >= ApiKey.objects.get(pk=api_key.pk).revoked_at


def test_admins_list_and_revoke_keys_in_the_back_office(client: Any, admin_user: Any) -> None:
    api_key, key = api_key_create(actor=admin_user, name="Legacy", role="admin")
    client.force_login(admin_user)
    changelist = "/admin/accounts/apikey/"
    html = client.get(changelist).content.decode()
    assert "Legacy" in html and api_key.prefix in html
    assert key not in html
    # when
    response = client.post(changelist, {"action": "revoke", "_selected_action": [api_key.pk]})
    # then
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=api_key.pk).revoked
    assert with_key(key).get("/api/v1/auth/me").status_code == 401
    assert AuditLogEntry.objects.filter(action=AuditAction.API_KEY_REVOKED).count() == 1


def test_supervisors_do_not_see_keys_in_the_back_office(client: Any, supervisor: Any) -> None:
    client.force_login(supervisor)
    assert client.get("/admin/accounts/apikey/").status_code == 403
