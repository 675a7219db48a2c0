"""PostgreSQL unreachable is a 503 with Retry-After, never a 500 (issue 16 §1): the API (DRF
views and the rest under /api/) and the console. The database "goes away" at the driver edge
(Django's execute_wrapper): every statement fails as a lost connection does."""

from typing import Any

import pytest
from django.db import OperationalError, connection
from django.test import Client

from supportdesk.tests.api_support import bearer

pytestmark = pytest.mark.django_db(transaction=True)


def _unavailable(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    raise OperationalError("connection failed: Connection refused")


@pytest.fixture(autouse=True)
def _plain_http(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = False
    settings.DEBUG = False


def test_the_api_answers_503_json_while_the_database_is_down(agent: Any) -> None:
    api = bearer(agent)
    api.raise_request_exception = False
    with connection.execute_wrapper(_unavailable):
        listing = api.get("/api/v1/conversations")
        sent = api.post("/api/v1/messages", {"conversation": 1, "body": "Oi"}, format="json")
    for response in (listing, sent):
        assert response.status_code == 503, response.content[:300]
        assert response["Retry-After"] == "5"
        assert response.json()["code"] == "service_unavailable"


def test_the_console_answers_503_while_the_database_is_down(agent: Any) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(agent)
    with connection.execute_wrapper(_unavailable):
        inbox = client.get("/")
        login = Client(raise_request_exception=False).post(
            "/login/", {"username": agent.email, "password": "x"}
        )
    assert inbox.status_code == 503
    assert inbox["Retry-After"] == "5"
    assert login.status_code == 503


def test_other_errors_stay_a_500(agent: Any, monkeypatch: Any) -> None:
    from conversations import apis

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(apis.ConversationListApi, "get", broken)
    api = bearer(agent)
    api.raise_request_exception = False
    response = api.get("/api/v1/conversations")
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
