"""The connection goes to the addresses that were checked, under the receiver's own name: the
``Host`` header, and for https the TLS server name and certificate check."""

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from integrations import outbox
from integrations.models import DeliveryStatus, WebhookDelivery

from .factories import OutgoingEventFactory, WebhookSubscriptionFactory
from .receiver import Receiver

pytestmark = pytest.mark.django_db


def _deliver_to(url: str) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.create(
        subscription=WebhookSubscriptionFactory(url=url),
        event="conversation.closed",
        outgoing_event=OutgoingEventFactory(type="conversation.closed"),
        next_attempt_at=timezone.now(),
    )
    outbox.delivery_attempt(delivery_id=str(delivery.pk))
    delivery.refresh_from_db()
    return delivery


def test_a_name_is_connected_to_by_its_checked_addresses(receiver: Receiver) -> None:
    # localhost may resolve to ::1 first, where nobody listens: the next address is tried
    delivery = _deliver_to(f"http://localhost:{receiver.port}/hook")
    assert delivery.status == DeliveryStatus.SUCCEEDED, delivery.last_error
    (request,) = receiver.requests
    assert request.headers["Host"] == f"localhost:{receiver.port}"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_checks_the_certificate_of_the_name_not_of_the_address(
    settings: Any, monkeypatch: Any, certificate: tuple[Path, Path]
) -> None:
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = True
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust this test's certificate
    receiver = Receiver(tls=context).start()
    try:
        # given a certificate for "localhost" only: connecting to 127.0.0.1 must still verify
        delivery = _deliver_to(f"https://localhost:{receiver.port}/hook")
        assert delivery.status == DeliveryStatus.SUCCEEDED, delivery.last_error
        assert receiver.requests[0].headers["Host"] == f"localhost:{receiver.port}"
        # and a name the certificate does not hold is refused
        refused = _deliver_to(f"https://127.0.0.1:{receiver.port}/hook")
        assert refused.status == DeliveryStatus.PENDING
        assert "connection failed" in refused.last_error
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()
