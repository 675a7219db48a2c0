"""Integration keys (contract §8) see conversations with their role: the visibility rules of
``conversation_list_visible_to`` apply to the key's service account like to any user."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.services import api_key_create, api_key_revoke
from conversations.tests.factories import ConversationFactory
from supportdesk.tests.api_support import api_env, assert_error_shape

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


def with_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.mark.parametrize("role", ["admin", "supervisor"])
def test_a_key_sees_every_conversation_and_the_metrics(
    admin_user: Any, support: Any, sales: Any, role: str
) -> None:
    conversations = [ConversationFactory(department=support), ConversationFactory(department=sales)]
    _api_key, key = api_key_create(actor=admin_user, name="BI", role=role)
    client = with_key(key)
    # when
    listed = client.get("/api/v1/conversations")
    # then
    assert listed.status_code == 200, listed.content
    assert {row["id"] for row in listed.json()["results"]} == {c.pk for c in conversations}
    assert client.get(f"/api/v1/conversations/{conversations[1].pk}").status_code == 200
    assert client.get("/api/v1/conversations/stats").status_code == 200


def test_a_revoked_key_sees_nothing(admin_user: Any, support: Any) -> None:
    ConversationFactory(department=support)
    api_key, key = api_key_create(actor=admin_user, name="BI", role="supervisor")
    api_key_revoke(actor=admin_user, api_key=api_key)
    assert_error_shape(with_key(key).get("/api/v1/conversations"), 401, "invalid_api_key")
