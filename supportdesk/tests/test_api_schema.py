"""Our own OpenAPI schema, fuzzed against our own API with Schemathesis: no 5xx, and every
response matches what the schema promises. Bounded: few examples per operation, fixed seed."""

import json
from typing import Any

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis import checks

from conversations.tests.factories import ConversationFactory, MessageFactory
from supportdesk.tests.api_support import api_env, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


def _our_schema() -> Any:
    """The schema ``/api/v1/schema`` serves, generated in-process (bot and webhook routes belong
    to their own suites)."""
    raw = SchemaGenerator().get_schema(request=None, public=True)
    document = json.loads(OpenApiJsonRenderer().render(raw))
    document["paths"] = {
        path: item
        for path, item in document["paths"].items()
        if not path.startswith(("/api/v1/bot", "/api/v1/webhooks"))
    }
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = _app
    return loaded


def _app(environ: dict[str, Any], start_response: Any) -> Any:
    """Django's WSGI handler, built per request so it sees the test's settings. Like Django's
    test client, it keeps the test's database connection (and its transaction) open."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = get_wsgi_application()(environ, start_response)
        body = b"".join(response)
        response.close()
        return [body]
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = _our_schema()


@pytest.fixture
def admin_headers(settings: Any, admin_user: Any, support: Any, tmp_path: Any) -> dict[str, str]:
    """An admin's bearer, and a little data for the ids the fuzzer may hit."""
    settings.MEDIA_ROOT = tmp_path
    conversation = ConversationFactory(department=support, assigned_to=admin_user, status="open")
    MessageFactory(conversation=conversation)
    return {"Authorization": bearer(admin_user)._credentials["HTTP_AUTHORIZATION"]}


@schema.parametrize()
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_honours_its_schema(case: Any, admin_headers: dict[str, str]) -> None:
    case.call_and_validate(
        headers=admin_headers,
        checks=[
            checks.not_a_server_error,
            checks.response_schema_conformance,
            checks.content_type_conformance,
            checks.status_code_conformance,
        ],
    )


def test_schema_generates_without_warnings(tmp_path: Any) -> None:
    """A warning (say, two ``status`` enums sharing a name) renames types in generated clients
    and fails ``check --deploy --fail-level WARNING``: the schema must build clean."""
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    assert "ConversationStatusEnum" in out.read_text()
