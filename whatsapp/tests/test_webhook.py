"""Webhook intake (contract §5): verification, signature, durable storage, status codes."""

import json

import pytest
from django.db import OperationalError, connection

from conversations.models import Message
from whatsapp.models import WebhookEvent, WebhookStatus
from whatsapp.services import sandbox
from whatsapp.tests.fake_graph import VERIFY_TOKEN

URL = "/api/v1/webhooks/whatsapp"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP


@pytest.mark.parametrize("url", [URL, URL + "/"])
def test_verification_answers_the_challenge_when_the_token_matches(client, fake_graph, url):
    response = client.get(
        url,
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
    )
    assert response.status_code == 200
    assert response.content == b"1158201444"


def test_verification_refuses_a_wrong_token(client, fake_graph):
    response = client.get(
        URL, {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize("url", [URL, URL + "/"])
def test_signed_delivery_is_stored_and_processed(client, fake_graph, signed_webhook, url):
    # given a text from a new customer, signed like Meta does
    payload = sandbox.text_delivery(
        wa_id="5511987650002", body="Olá, preciso de ajuda", name="Maria Silva"
    )
    body, headers = signed_webhook(payload)
    # when Meta delivers it
    with_capture = client.post(url, body, content_type="application/json", headers=headers)
    # then
    assert with_capture.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.raw_body == body.decode()
    assert event.phone_number_id == fake_graph.phone_number_id


def test_delivery_is_processed_after_commit(
    client, fake_graph, signed_webhook, django_capture_on_commit_callbacks
):
    payload = sandbox.text_delivery(wa_id="5511987650002", body="Olá", name="Maria Silva")
    body, headers = signed_webhook(payload)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 200
    message = Message.objects.get(direction="in")
    assert message.body == "Olá"
    assert message.conversation.customer.name == "Maria Silva"
    assert WebhookEvent.objects.get().status == WebhookStatus.PROCESSED


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "garbage"},
    ],
)
def test_missing_or_wrong_signature_is_refused_and_nothing_stored(client, fake_graph, headers):
    body = sandbox.encode(sandbox.text_delivery(wa_id="5511987650002", body="Oi"))
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()
    assert not Message.objects.exists()


def test_signature_of_another_secret_is_refused(client, fake_graph, signed_webhook):
    body, headers = signed_webhook(
        sandbox.text_delivery(wa_id="5511987650002", body="Oi"), secret="other-secret"
    )
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


def test_the_signature_covers_the_raw_bytes_not_reserialised_json(
    client, fake_graph, signed_webhook
):
    # Meta escapes non-ASCII ("\u00e9"); re-serialising would change the bytes and the HMAC.
    raw = json.dumps(
        sandbox.text_delivery(wa_id="5511987650002", body="Olá é"), ensure_ascii=True, indent=1
    ).encode()
    body, headers = signed_webhook(raw)
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 200
    assert WebhookEvent.objects.get().raw_body == raw.decode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "Expecting property name"),
        (b"[1, 2]", "not a JSON object"),
        # valid JSON, but UTF-16: Meta sends UTF-8, and json.loads would have taken it
        (json.dumps({"object": "whatsapp_business_account"}).encode("utf-16"), "utf-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
        (b"\x00\xff{", "utf-8"),
    ],
)
def test_signed_but_unparseable_is_400_and_kept_as_not_understood(
    client, fake_graph, signed_webhook, raw, reason
):
    body, headers = signed_webhook(raw)
    response = client.post(URL, body, content_type="application/json", headers=headers)
    # 400, not 503: Meta would retry a 5xx for a week
    assert response.status_code == 400
    kept = WebhookEvent.objects.get()
    assert kept.status == WebhookStatus.UNKNOWN
    assert reason in kept.error
    assert kept.raw_body  # readable: undecodable bytes and NUL as \\xNN escapes
    assert not Message.objects.exists()


def test_a_customer_message_and_name_with_nul_are_stored_without_it(
    client, fake_graph, signed_webhook, django_capture_on_commit_callbacks
):
    payload = sandbox.text_delivery(
        wa_id="5511987650002", body="Olá\u0000 mundo", name="Ma\u0000ria", wamid="wamid.NUL1"
    )
    body, headers = signed_webhook(payload)
    assert b"\\u0000" in body  # JSON-escaped, as Meta would send it
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 200
    message = Message.objects.get(wa_message_id="wamid.NUL1")
    assert message.body == "Olá mundo"
    assert message.conversation.customer.name == "Maria"
    assert WebhookEvent.objects.get().status == WebhookStatus.PROCESSED


def test_bodies_up_to_3_mb_are_accepted(client, fake_graph, signed_webhook, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # Django's default
    payload = sandbox.text_delivery(wa_id="5511987650002", body="x" * (2_900_000))
    body, headers = signed_webhook(payload)
    assert 2_621_440 < len(body) < 3 * 1024 * 1024
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1


def test_bodies_over_3_mb_are_refused(client, fake_graph, signed_webhook):
    payload = sandbox.text_delivery(wa_id="5511987650002", body="x" * (3 * 1024 * 1024))
    body, headers = signed_webhook(payload)
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_database_down_answers_503_so_meta_retries(client, fake_graph, signed_webhook):
    # The database refuses every statement (Django's execute_wrapper hook, at the driver edge).
    def unavailable(execute, sql, params, many, context):
        raise OperationalError("could not connect to server: Connection refused")

    body, headers = signed_webhook(sandbox.text_delivery(wa_id="5511987650002", body="Oi"))
    with connection.execute_wrapper(unavailable):
        response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 503
    assert not WebhookEvent.objects.exists()


def test_without_an_app_secret_everything_is_refused(client, settings, db):
    settings.WHATSAPP_APP_SECRET = ""
    settings.SANDBOX_ENABLED = False
    body = sandbox.encode(sandbox.text_delivery(wa_id="5511987650002", body="Oi"))
    from whatsapp.services.intake import sign

    response = client.post(
        URL,
        body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": sign(body, secret="")},
    )
    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_while_the_database_is_down_the_next_deliveries_answer_503_at_once(
    client, fake_graph, signed_webhook
):
    # Issue 16 §1: one delivery finds the database down; those right after answer 503 without
    # waiting for a connection (DB_POOL_TIMEOUT), until one delivery at a time finds it back.
    from common.breaker import DATABASE

    tried = []

    def unavailable(execute, sql, params, many, context):
        tried.append(sql)
        raise OperationalError("could not connect to server: Connection refused")

    body, headers = signed_webhook(sandbox.text_delivery(wa_id="5511987650002", body="Oi"))
    with connection.execute_wrapper(unavailable):
        first = client.post(URL, body, content_type="application/json", headers=headers)
        assert len(tried) == 1
        after = [
            client.post(URL, body, content_type="application/json", headers=headers)
            for _ in range(3)
        ]
    assert first.status_code == 503
    assert [a.status_code for a in after] == [503] * 3
    assert len(tried) == 1  # the database was not asked again
    DATABASE._down_until = 1.0  # the cooldown is over: the next delivery tries the database
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1
    assert not DATABASE.is_open
