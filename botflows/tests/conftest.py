"""Bot test fixtures: demo departments and flow, a customer talking to the bot, a fake model."""

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import translation

from botflows import engine, services
from conversations.models import ConversationStatus, Direction, Message
from conversations.services import message_record_inbound
from conversations.tests.factories import ConversationFactory
from departments.tests.factories import DepartmentFactory


@pytest.fixture
def departments(db) -> dict[str, Any]:
    return {name: DepartmentFactory(name=name) for name in ("Suporte", "Vendas", "Financeiro")}


@pytest.fixture
def demo_flow(departments):
    return services.flow_ensure_demo()


@pytest.fixture
def conversation(db):
    return ConversationFactory(status=ConversationStatus.BOT)


class Chat:
    """Plays the customer: stores an inbound message, runs the bot task, returns its replies."""

    def __init__(self, conversation) -> None:
        self.conversation = conversation
        self.count = 0

    def say(self, body: str = "", *, raw: dict[str, Any] | None = None, now=None, **kw):
        self.count += 1
        message, _created = message_record_inbound(
            conversation=self.conversation,
            type=kw.pop("type", "text"),
            body=body,
            wa_message_id=kw.pop("wa_message_id", f"wamid.chat{self.conversation.pk}.{self.count}"),
            raw_payload=raw,
        )
        self.last_inbound = message
        before = set(self.outbound().values_list("pk", flat=True))
        if now is None:
            from botflows.tasks import bot_handle_message

            bot_handle_message.delay(message.pk)
        else:
            engine.bot_handle_inbound(message_id=message.pk, now=now)
        self.conversation.refresh_from_db()
        return list(self.outbound().exclude(pk__in=before).order_by("id"))

    def outbound(self):
        return Message.objects.filter(conversation=self.conversation, direction=Direction.OUT)


@pytest.fixture
def chat(conversation) -> Chat:
    return Chat(conversation)


# --- A fake OpenAI-compatible server --------------------------------------------------------


class FakeModel:
    """Scripted answers for ``POST /v1/chat/completions``; records the requests it got."""

    def __init__(self) -> None:
        self.script: deque[tuple[int, Any, float]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def reply(self, content: str, *, status: int = 200, delay: float = 0.0, usage=None) -> None:
        body = {
            "id": f"chatcmpl-{len(self.script)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage or {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
        }
        self.script.append((status, body, delay))

    def answer(self, answer: str, *, intent="answer", department=None, confidence=0.9, **kw):
        self.reply(
            json.dumps(
                {
                    "answer": answer,
                    "intent": intent,
                    "department": department,
                    "confidence": confidence,
                }
            ),
            **kw,
        )

    def fail(self, status: int = 500, *, delay: float = 0.0) -> None:
        self.script.append(
            (status, {"error": {"message": "boom", "type": "server_error", "code": None}}, delay)
        )


def _handler(model: FakeModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            model.requests.append(
                {"path": self.path, "json": request, "auth": self.headers.get("Authorization")}
            )
            if self.path != "/v1/chat/completions":
                status, body, delay = 404, {"error": {"message": "not found"}}, 0.0
            elif model.script:
                status, body, delay = model.script.popleft()
            else:
                status, body, delay = 500, {"error": {"message": "no scripted answer"}}, 0.0
            if delay:
                time.sleep(delay)
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture
def fake_openai(settings) -> Iterator[FakeModel]:
    model = FakeModel()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(model))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    model.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = model.url
    settings.OPENAI_MODEL = "fake-model"
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _english(settings) -> Iterator[None]:
    """Assertions read the English texts; one test checks the pt-BR catalogue on purpose."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _ai_off_by_default(settings) -> None:
    """Tests opt in to AI through ``fake_openai``; a developer's .env must not switch it on."""
    settings.OPENAI_API_KEY = ""
    settings.SECURE_SSL_REDIRECT = False  # the admin and API over plain http in tests
