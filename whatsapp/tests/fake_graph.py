"""A fake Meta Graph API for everyone's tests — a pytest plugin (see the root ``conftest.py``).

Fixtures
--------
``fake_graph``
    A real HTTP server on ``127.0.0.1`` (random port, ``http.server`` in a thread) reached through
    our real client (``requests``). The fixture also sets ``settings.WHATSAPP_API_URL`` to it,
    ``WHATSAPP_ACCESS_TOKEN = fake_graph.token``, ``WHATSAPP_PHONE_NUMBER_ID``,
    ``WHATSAPP_APP_SECRET`` and ``WEBHOOK_VERIFY_TOKEN``, and creates the ``WhatsAppAccount``
    (``fake_graph.account``). It records and answers:

    * ``POST /{phone_number_id}/messages`` → ``fake_graph.sends`` (the JSON bodies, in order);
      answers ``{"messages": [{"id": "wamid.FAKE…"}]}`` (or ``{"success": true}`` for
      mark-as-read), unless scripted with ``fake_graph.fail_next(code, times=1)``: Meta's real
      error bodies for 130429, 131056, 131047, 131026 (HTTP 400), 131000 (500), 190 (401), …
    * ``POST /{phone_number_id}/media`` → ``fake_graph.uploads`` (``{"content", "mime_type",
      "content_type"}``); answers ``{"id": "media-…"}``.
    * ``GET /{media_id}`` for media added with ``fake_graph.add_media(media_id, content,
      mime_type)`` → ``{url, mime_type, sha256, file_size, id}``, the ``url`` on this same server;
      ``GET`` that URL with the bearer token → the bytes (401 without it);
      ``fake_graph.fail_media(media_id, times=n)`` makes the next lookups answer HTTP 500.
    * ``GET /{waba_id}/message_templates`` → ``fake_graph.templates`` (a list you fill).
    Every request is in ``fake_graph.requests`` as ``(method, path, headers)``.

``signed_webhook``
    The function :func:`signed_webhook` as a fixture.

Helpers
-------
``signed_webhook(payload, secret=None) -> (body: bytes, headers: dict)``
    The bytes and the ``X-Hub-Signature-256`` header Meta would send, for Django's test client::

        body, headers = signed_webhook(sandbox.text_delivery(wa_id="5511987650002", body="Oi"))
        client.post("/api/v1/webhooks/whatsapp", body, content_type="application/json",
                    headers=headers)

``whatsapp.services.sandbox`` builds Meta-shaped deliveries: ``delivery()``, ``message()``,
``contact()``, ``status()``, ``text_delivery()``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

TOKEN = "fake-graph-token"
PHONE_NUMBER_ID = "106540352242922"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"

# Meta's real error answers (HTTP status, code, message, details).
META_ERRORS: dict[int, tuple[int, str, str]] = {
    130429: (400, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
    131056: (
        400,
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time.",
    ),
    131047: (
        400,
        "(#131047) Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
    ),
    131026: (400, "(#131026) Message undeliverable", "Message failed to send."),
    131000: (
        500,
        "(#131000) Something went wrong",
        "Message failed to send due to an unknown error.",
    ),
    131016: (500, "(#131016) Service unavailable", "A service is temporarily unavailable."),
    100: (400, "(#100) Invalid parameter", "Parameter value is not valid."),
    132001: (404, "(#132001) Template name does not exist in the translation", "template name"),
    190: (
        401,
        "Error validating access token: Session has expired on Tuesday, 24-Nov-26.",
        "",
    ),
}


def meta_error_body(code: int) -> tuple[int, dict[str, Any]]:
    http_status, message, details = META_ERRORS.get(code, (400, f"(#{code}) Error", ""))
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGhIjKlMnOp",
    }
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if code == 190:
        error["error_subcode"] = 463
    return http_status, {"error": error}


def signed_webhook(
    payload: dict[str, Any] | bytes, *, secret: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery signed like Meta signs it."""
    from whatsapp.services.intake import sign
    from whatsapp.services.sandbox import encode

    body = payload if isinstance(payload, bytes) else encode(payload)
    return body, {"X-Hub-Signature-256": sign(body, secret=secret)}


class FakeGraph:
    def __init__(self) -> None:
        self.token = TOKEN
        self.phone_number_id = PHONE_NUMBER_ID
        self.sends: list[dict[str, Any]] = []
        self.uploads: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.media: dict[str, tuple[bytes, str, str]] = {}
        self.templates: list[dict[str, Any]] = []
        self.script: deque[tuple[int, dict[str, Any]]] = deque()
        self.media_failures: dict[str, int] = {}
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.base_url = f"{self.origin}/v25.0"
        self.account: Any = None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- scripting ---------------------------------------------------------------------------
    def fail_next(self, code: int, *, times: int = 1) -> None:
        """The next ``times`` sends answer Meta's error ``code``."""
        for _ in range(times):
            self.script.append(meta_error_body(code))

    def answer_next(self, http_status: int, body: dict[str, Any]) -> None:
        self.script.append((http_status, body))

    def add_media(
        self, media_id: str, content: bytes, mime_type: str = "image/jpeg", sha256: str = ""
    ) -> str:
        self.media[media_id] = (content, mime_type, sha256 or hashlib.sha256(content).hexdigest())
        return media_id

    def fail_media(self, media_id: str, *, times: int = 1) -> None:
        """The next ``times`` lookups of ``media_id`` answer Meta's HTTP 500 (code 131000)."""
        self.media_failures[media_id] = times

    @property
    def message_sends(self) -> list[dict[str, Any]]:
        """Sends that are messages (not mark-as-read)."""
        return [s for s in self.sends if "type" in s]

    # --- server ------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(
                self, status: int, body: Any, content_type: str = "application/json"
            ) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {fake.token}":
                    return True
                self._reply(*meta_error_body(190))
                return False

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                fake.requests.append(("GET", self.path, dict(self.headers)))
                if not self._authorised():
                    return
                parts = path.strip("/").split("/")
                if parts[0] == "download" and len(parts) == 2 and parts[1] in fake.media:
                    self._reply(200, fake.media[parts[1]][0], fake.media[parts[1]][1])
                    return
                if len(parts) == 3 and parts[2] == "message_templates":
                    self._reply(200, {"data": fake.templates, "paging": {}})
                    return
                if fake.media_failures.get(parts[-1], 0) > 0:
                    fake.media_failures[parts[-1]] -= 1
                    self._reply(*meta_error_body(131000))
                    return
                if len(parts) == 2 and parts[1] in fake.media:
                    content, mime_type, sha256 = fake.media[parts[1]]
                    self._reply(
                        200,
                        {
                            "messaging_product": "whatsapp",
                            "url": f"{fake.origin}/download/{parts[1]}",
                            "mime_type": mime_type,
                            "sha256": sha256,
                            "file_size": len(content),
                            "id": parts[1],
                        },
                    )
                    return
                self._reply(*meta_error_body(100))

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                body = self._body()
                fake.requests.append(("POST", self.path, dict(self.headers)))
                if not self._authorised():
                    return
                parts = path.strip("/").split("/")
                if len(parts) == 3 and parts[2] == "media":
                    with fake.lock:
                        media_id = f"media-{next(fake._ids)}"
                        fake.uploads.append(
                            {
                                "id": media_id,
                                "content": body,
                                "content_type": self.headers.get("Content-Type", ""),
                            }
                        )
                    self._reply(200, {"id": media_id})
                    return
                if len(parts) == 3 and parts[2] == "messages":
                    payload = json.loads(body or b"{}")
                    with fake.lock:
                        scripted = fake.script.popleft() if fake.script else None
                        fake.sends.append(payload)
                        number = next(fake._ids)
                    if scripted:
                        self._reply(*scripted)
                    elif payload.get("status") == "read":
                        self._reply(200, {"success": True})
                    else:
                        recipient = payload.get("to") or payload.get("recipient")
                        self._reply(
                            200,
                            {
                                "messaging_product": "whatsapp",
                                "contacts": [{"input": recipient, "wa_id": recipient}],
                                "messages": [{"id": f"wamid.FAKE{number:06d}"}],
                            },
                        )
                    return
                self._reply(*meta_error_body(100))

        return Handler

    def start(self) -> FakeGraph:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_graph(settings: Any, db: Any) -> Iterator[FakeGraph]:
    from whatsapp.models import WhatsAppAccount

    fake = FakeGraph().start()
    settings.WHATSAPP_API_URL = fake.base_url
    settings.WHATSAPP_ACCESS_TOKEN = fake.token
    settings.WHATSAPP_PHONE_NUMBER_ID = fake.phone_number_id
    settings.WHATSAPP_APP_SECRET = APP_SECRET
    settings.WEBHOOK_VERIFY_TOKEN = VERIFY_TOKEN
    fake.account, _created = WhatsAppAccount.objects.get_or_create(
        phone_number_id=fake.phone_number_id,
        defaults={
            "name": "Fake Graph",
            "display_phone_number": "15550001111",
            "waba_id": "102290129340398",
        },
    )
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(name="signed_webhook")
def signed_webhook_fixture() -> Any:
    return signed_webhook
