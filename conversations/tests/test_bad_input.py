"""Bad input from outside answers a clear 4xx, never a 500 (issue 16 §2): huge integers in query
strings, NUL bytes in form fields. Most of these only broke on PostgreSQL (integer range, NUL in
text), so run them there too."""

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"


@pytest.fixture(autouse=True)
def _plain_http(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def agent_client(client: Client, agent: Any) -> Client:
    client.force_login(agent)
    return client


@pytest.fixture
def api(agent: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(agent)
    return client


@pytest.mark.parametrize(
    "query",
    [
        f"page={HUGE}",
        f"department={HUGE}",
        f"agent={HUGE}",
        f"number={HUGE}",
        f"tag={HUGE}",
        "q=%00",
        "q=abc%00def",
    ],
)
def test_console_inbox_answers_bad_query_strings_without_a_500(
    agent_client: Client, query: str
) -> None:
    for path in ("/", "/inbox/"):
        response = agent_client.get(f"{path}?{query}")
        assert response.status_code < 500, (path, query, response.status_code)


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/conversations?department={HUGE}",
        f"/api/v1/conversations?assigned_to={HUGE}",
        f"/api/v1/conversations?whatsapp_account={HUGE}",
        f"/api/v1/conversations?tag={HUGE}",
        f"/api/v1/conversations?page={HUGE}",
        "/api/v1/conversations?search=%00",
        f"/api/v1/users?department={HUGE}",
        f"/api/v1/conversations/{HUGE}",
        f"/api/v1/contacts?tag={HUGE}",
    ],
)
def test_api_answers_huge_integers_and_nul_with_a_4xx(api: APIClient, path: str) -> None:
    response = api.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert response["Content-Type"].startswith("application/json")


def test_nul_bytes_in_console_forms_are_refused_or_stored_clean(
    agent_client: Client, agent: Any, support: Any
) -> None:
    conversation = ConversationFactory(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    base = f"/c/{conversation.pk}"
    for path, data in (
        (f"{base}/note/", {"body": "nota\x00secreta"}),
        (f"{base}/send/", {"body": "olá\x00cliente"}),
        (f"{base}/transfer/", {"to_department": str(support.pk), "note": "vai\x00"}),
        (f"{base}/transfer/", {"to_user": HUGE}),
        (f"{base}/send/", {"body": "oi", "reply_to": HUGE}),
    ):
        response = agent_client.post(path, data, headers={"HX-Request": "true"})
        assert response.status_code < 500, (path, data, response.status_code)
    for text in conversation.messages.values_list("body", flat=True):
        assert "\x00" not in text
