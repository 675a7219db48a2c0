"""The webhook as the ASGI servers reach it (``supportdesk.asgi.application``): Meta's POSTs are
answered by ``whatsapp.asgi.WebhookIntake`` ahead of Django, with the same answers as the view."""

import pytest
from django.db import OperationalError, connection
from django.db.backends.signals import connection_created

from conversations.models import Message
from supportdesk.tests.asgi import AsgiRequest, asgi_call
from whatsapp.models import WebhookEvent
from whatsapp.services import sandbox
from whatsapp.tests.fake_graph import VERIFY_TOKEN

URL = "/api/v1/webhooks/whatsapp"

# The ASGI endpoint stores on threads of its own, with their own database connections: the rows
# must really be committed for the test to see them.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def asgi():
    def call(
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: str = "",
        chunks: list[bytes] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        answer = asgi_call(AsgiRequest(method, path, body, headers or {}, query, chunks))
        return answer.status, answer.headers, answer.body

    return call


def _signed(signed_webhook, payload) -> tuple[bytes, dict[str, str]]:
    body, headers = signed_webhook(payload)
    return body, {**headers, "Content-Type": "application/json"}


@pytest.mark.parametrize("url", [URL, URL + "/"])
def test_a_signed_delivery_is_stored_and_becomes_the_customers_message(
    asgi, fake_graph, signed_webhook, url
):
    payload = sandbox.text_delivery(wa_id="5511987650002", body="Oi pela borda", name="Ana")
    body, headers = _signed(signed_webhook, payload)

    status, answer_headers, content = asgi("POST", url, body=body, headers=headers)

    assert status == 200
    event = WebhookEvent.objects.get()
    assert content == f"ok {event.pk}".encode()
    assert answer_headers["content-type"].startswith("text/plain")
    assert event.raw_body == body.decode()
    assert event.phone_number_id == fake_graph.phone_number_id
    message = Message.objects.get(body="Oi pela borda")  # tasks run eagerly in the test settings
    assert message.conversation.customer.name == "Ana"


def test_a_body_sent_in_several_chunks_is_stored_whole(asgi, fake_graph, signed_webhook):
    body, headers = _signed(
        signed_webhook, sandbox.text_delivery(wa_id="5511987650002", body="em pedaços")
    )
    third = len(body) // 3
    chunks = [body[:third], body[third : 2 * third], body[2 * third :]]

    status, _headers, _content = asgi("POST", URL, headers=headers, chunks=chunks)

    assert status == 200
    assert WebhookEvent.objects.get().raw_body == body.decode()


def test_a_wrong_signature_is_refused_and_nothing_is_stored(asgi, fake_graph, signed_webhook):
    body, headers = _signed(signed_webhook, sandbox.text_delivery(wa_id="5511987650002", body="x"))
    headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64

    status, _headers, content = asgi("POST", URL, body=body, headers=headers)

    assert (status, content) == (403, b"invalid signature")
    assert not WebhookEvent.objects.exists()


def test_a_missing_signature_is_refused(asgi, fake_graph):
    body = sandbox.encode(sandbox.text_delivery(wa_id="5511987650002", body="x"))
    status, _headers, _content = asgi("POST", URL, body=body)
    assert status == 403
    assert not WebhookEvent.objects.exists()


def test_signed_but_not_json_is_a_400_and_kept_as_not_understood(asgi, fake_graph, signed_webhook):
    body, headers = _signed(signed_webhook, b"{not json")
    status, _headers, content = asgi("POST", URL, body=body, headers=headers)
    assert (status, content) == (400, b"invalid JSON")
    assert WebhookEvent.objects.get().status == "unknown"


def test_deliveries_up_to_3_mb_are_accepted(asgi, fake_graph, signed_webhook):
    payload = sandbox.text_delivery(wa_id="5511987650002", body="y" * (2 * 1024 * 1024 + 700_000))
    body, headers = _signed(signed_webhook, payload)
    assert 2.5 * 1024 * 1024 < len(body) < 3 * 1024 * 1024  # above Django's default upload limit

    status, _headers, _content = asgi("POST", URL, body=body, headers=headers)

    assert status == 200
    assert len(WebhookEvent.objects.get().raw_body) == len(body)


def test_a_body_over_3_mb_is_a_413_by_its_declared_length(asgi, fake_graph, signed_webhook):
    body, headers = _signed(
        signed_webhook, sandbox.text_delivery(wa_id="5511987650002", body="x" * (3 * 1024 * 1024))
    )
    headers["Content-Length"] = str(len(body))
    status, _headers, content = asgi("POST", URL, body=body, headers=headers)
    assert (status, content) == (413, b"payload too large")
    assert not WebhookEvent.objects.exists()


def test_a_body_over_3_mb_is_a_413_when_it_streams_without_a_length(
    asgi, fake_graph, signed_webhook
):
    body, headers = _signed(
        signed_webhook, sandbox.text_delivery(wa_id="5511987650002", body="x" * (3 * 1024 * 1024))
    )
    chunks = [body[i : i + 1024 * 1024] for i in range(0, len(body), 1024 * 1024)]
    status, _headers, _content = asgi("POST", URL, headers=headers, chunks=chunks)
    assert status == 413
    assert not WebhookEvent.objects.exists()


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="SQLite's in-memory test database never really closes a connection, so no new one "
    "is opened for the hook to catch (test_webhook.py covers the view on SQLite)",
)
def test_database_down_answers_503_so_meta_retries(asgi, fake_graph, signed_webhook):
    # Every connection the endpoint opens refuses every statement (at the driver edge).
    def unavailable(execute, sql, params, many, context):
        raise OperationalError("could not connect to server: Connection refused")

    def refuse(sender, connection, **kwargs):
        connection.execute_wrappers.append(unavailable)

    body, headers = _signed(signed_webhook, sandbox.text_delivery(wa_id="5511987650002", body="x"))
    connection_created.connect(refuse)
    try:
        status, _headers, content = asgi("POST", URL, body=body, headers=headers)
    finally:
        connection_created.disconnect(refuse)

    assert (status, content) == (503, b"temporarily unavailable")
    assert not WebhookEvent.objects.exists()


def test_the_verification_get_still_goes_through_django(asgi, fake_graph):
    status, _headers, content = asgi(
        "GET",
        URL,
        query=f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444",
    )
    assert (status, content) == (200, b"1158201444")


def test_other_urls_are_django_s(asgi, fake_graph):
    status, _headers, content = asgi(
        "POST",
        "/api/v1/auth/login",
        body=b'{"email": "ninguem@example.com", "password": "x"}',
        headers={"Content-Type": "application/json"},
    )
    assert status in (400, 401)  # the login's refusal, not the webhook's
    assert b"signature" not in content
