"""The flow's ``http`` node (contract §8) against a real HTTP service on 127.0.0.1: the signed
request, the answer's reply / collected values / hand-over, every failure taking the fallback,
and the private-address rule."""

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connections
from django.urls import reverse

from botflows import engine, services
from botflows.http_node import parse_answer
from botflows.models import BotSession, BotTurn, Flow, FlowNode, FlowVersion, NodeKind
from conversations.models import ConversationEvent, ConversationStatus
from conversations.services import conversation_route_to_department
from integrations.addresses import UnsafeAddress, url_resolve_public
from integrations.signing import sign

from .conftest import Chat

pytestmark = pytest.mark.django_db

SECRET = "node-secret-123"


class FakeService:
    """Scripted answers (status, raw body, delay) for ``POST /hook``; records what it got."""

    def __init__(self) -> None:
        self.script: deque[tuple[int, bytes, float]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self.on_request: Any = None

    def answer(self, status: int = 200, *, delay: float = 0.0, **body: Any) -> None:
        self.raw(status, json.dumps(body).encode(), delay=delay)

    def raw(self, status: int, body: bytes, *, delay: float = 0.0) -> None:
        self.script.append((status, body, delay))


def _handler(service: FakeService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            service.requests.append(
                {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            )
            if service.on_request is not None:
                service.on_request()
            status, data, delay = service.script.popleft() if service.script else (500, b"", 0.0)
            if delay:
                time.sleep(delay)
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
def service(settings: Any) -> Iterator[FakeService]:
    fake = FakeService()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = True  # the service listens on loopback
    settings.OUTGOING_WEBHOOK_TIMEOUT = 2.0
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def _http_flow(service: FakeService, *, fallback: bool = False, next_node: bool = True) -> Flow:
    """name (collected) → crm (http) → done (message); the fallback, when asked for: sorry."""
    flow = Flow.objects.create(name="CRM", is_default=True)
    done = FlowNode.objects.create(flow=flow, key="done", kind=NodeKind.MESSAGE, text="Thanks!")
    sorry = (
        FlowNode.objects.create(
            flow=flow, key="sorry", kind=NodeKind.MESSAGE, text="Our system is down."
        )
        if fallback
        else None
    )
    crm = FlowNode.objects.create(
        flow=flow,
        key="crm",
        kind=NodeKind.HTTP,
        url=service.url,
        secret=SECRET,
        next_node=done if next_node else None,
        fallback_node=sorry,
    )
    flow.start_node = FlowNode.objects.create(
        flow=flow,
        key="name",
        kind=NodeKind.COLLECT,
        text="Your name?",
        field_name="name",
        next_node=crm,
    )
    flow.save()
    services.flow_publish(flow=flow, actor=None)
    return flow


def _bodies(replies: list[Any]) -> list[str]:
    return [r.body for r in replies]


def _last_outcome(chat: Chat) -> str:
    return BotTurn.objects.filter(session__conversation=chat.conversation).latest("id").outcome


def test_reply_and_collected_values_are_merged_then_the_flow_goes_on(service, chat):
    _http_flow(service)
    chat.say("oi")
    service.answer(
        reply="Hello Maria, your plan is Gold.", handoff=None, collected={"plan": "gold"}
    )
    # when
    replies = chat.say("Maria Silva")
    # then
    assert _bodies(replies) == ["Hello Maria, your plan is Gold.", "Thanks!"]
    session = BotSession.objects.get(conversation=chat.conversation)
    assert session.collected == {"name": "Maria Silva", "plan": "gold"}
    assert chat.conversation.status == ConversationStatus.BOT
    assert _last_outcome(chat) == "http:message"
    # what the service got: the §4 resources and what the flow had collected
    sent = json.loads(service.requests[0]["body"])
    assert set(sent) == {"conversation", "customer", "message", "collected"}
    assert sent["conversation"]["id"] == chat.conversation.pk
    assert sent["conversation"]["status"] == "bot"
    assert sent["customer"]["phone"] == chat.conversation.customer.phone
    assert sent["message"]["body"] == "Maria Silva"
    assert sent["message"]["direction"] == "in"
    assert sent["collected"] == {"name": "Maria Silva"}
    assert service.requests[0]["headers"]["X-SupportDesk-Event"] == "bot.http"
    assert service.requests[0]["headers"]["Content-Type"] == "application/json"


def test_the_request_is_signed_with_the_nodes_secret(service, chat):
    _http_flow(service)
    chat.say("oi")
    service.answer(reply=None, handoff=None, collected={})
    chat.say("Maria Silva")
    request = service.requests[0]
    header = request["headers"]["X-SupportDesk-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    # then: the receiver's check, written from the contract
    expected = hmac.new(
        SECRET.encode(), f"{parts['t']}.".encode() + request["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(int(parts["t"]) - time.time()) < 60
    assert header == sign(SECRET, request["body"], int(parts["t"]))
    wrong = hmac.new(b"other", f"{parts['t']}.".encode() + request["body"], hashlib.sha256)
    assert parts["v1"] != wrong.hexdigest()


def test_a_handoff_goes_to_the_named_department(service, chat, departments):
    _http_flow(service)
    chat.say("oi")
    service.answer(reply="Passing you to sales.", handoff={"department": "vendas"}, collected={})
    # when
    replies = chat.say("Maria Silva")
    # then
    assert replies[0].body == "Passing you to sales."
    assert chat.conversation.status == ConversationStatus.PENDING
    assert chat.conversation.department == departments["Vendas"]
    assert _last_outcome(chat) == "handoff:http"


def test_an_unknown_department_takes_the_fallback(service, chat, departments):
    _http_flow(service, fallback=True)
    chat.say("oi")
    service.answer(reply=None, handoff={"department": "Nowhere"}, collected={})
    replies = chat.say("Maria Silva")
    assert _bodies(replies) == ["Our system is down."]
    assert _last_outcome(chat) == "http_failed:unknown_department"


def test_a_timeout_hands_over_to_the_general_queue_and_is_logged(
    service, chat, settings, caplog, departments
):
    settings.OUTGOING_WEBHOOK_TIMEOUT = 0.3
    _http_flow(service)
    chat.say("oi")
    service.answer(reply="too late", delay=1.5)
    # when
    with caplog.at_level(logging.WARNING, logger="botflows.engine"):
        replies = chat.say("Maria Silva")
    # then
    assert "too late" not in _bodies(replies)
    assert chat.conversation.status == ConversationStatus.PENDING
    assert chat.conversation.department is None  # the general queue
    assert _last_outcome(chat) == "http_failed:timeout"
    assert any(
        "timeout" in r.getMessage() and str(chat.conversation.pk) in r.getMessage()
        for r in caplog.records
    )
    # the conversation's history says why the bot handed over
    assert ConversationEvent.objects.filter(
        conversation=chat.conversation, after__reason="http_failed"
    ).exists()


def test_a_server_error_takes_the_fallback_node(service, chat):
    _http_flow(service, fallback=True)
    chat.say("oi")
    service.answer(500, reply="ignored")
    replies = chat.say("Maria Silva")
    assert _bodies(replies) == ["Our system is down."]
    assert chat.conversation.status == ConversationStatus.BOT
    assert _last_outcome(chat) == "http_failed:status_500"
    # nothing the failed service said was kept
    assert BotSession.objects.get(conversation=chat.conversation).collected == {
        "name": "Maria Silva"
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>not json</html>", "invalid_json"),
        (b"[1, 2]", "malformed"),
        (b'{"reply": 5}', "malformed"),
        (b'{"reply": "hi", "handoff": "Vendas"}', "malformed"),
        (b'{"reply": "hi", "collected": ["a"]}', "malformed"),
    ],
)
def test_a_malformed_answer_takes_the_fallback(service, chat, body, reason):
    _http_flow(service, fallback=True)
    chat.say("oi")
    service.raw(200, body)
    replies = chat.say("Maria Silva")
    assert _bodies(replies) == ["Our system is down."]
    assert _last_outcome(chat) == f"http_failed:{reason}"


def test_a_connection_error_takes_the_fallback(service, chat, departments):
    flow = _http_flow(service, fallback=True)
    FlowNode.objects.filter(flow=flow, key="crm").update(url="http://127.0.0.1:9/closed")
    services.flow_publish(flow=flow, actor=None)
    chat.say("oi")
    assert _bodies(chat.say("Maria Silva")) == ["Our system is down."]
    assert _last_outcome(chat) == "http_failed:connection_error"


def test_a_private_url_is_refused_without_the_setting(service, chat, settings):
    settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE = False
    _http_flow(service, fallback=True)
    chat.say("oi")
    service.answer(reply="should not be asked")
    # when
    replies = chat.say("Maria Silva")
    # then
    assert service.requests == []
    assert _bodies(replies) == ["Our system is down."]
    assert _last_outcome(chat) == "http_failed:private_url"


def test_no_transaction_is_open_while_the_service_thinks(service, chat):
    """The call is made outside the engine's transactions, so no row lock is held meanwhile."""
    _http_flow(service)
    chat.say("oi")
    engine_connection = connections["default"]  # this thread's: the one the engine uses
    baseline = len(engine_connection.atomic_blocks)  # the test's own transaction
    seen: list[int] = []
    service.on_request = lambda: seen.append(len(engine_connection.atomic_blocks))
    service.answer(reply="ok")
    chat.say("Maria Silva")
    assert seen == [baseline]


def test_without_a_next_node_the_service_answers_every_message(service, chat):
    _http_flow(service, next_node=False)
    chat.say("oi")
    service.answer(reply="Hi! Ask me anything.")
    assert _bodies(chat.say("Maria Silva")) == ["Hi! Ask me anything."]
    service.answer(reply="Your order ships tomorrow.", collected={"order": "123"})
    # when
    replies = chat.say("where is my order 123?")
    # then
    assert _bodies(replies) == ["Your order ships tomorrow."]
    assert json.loads(service.requests[1]["body"])["message"]["body"] == "where is my order 123?"
    session = BotSession.objects.get(conversation=chat.conversation)
    assert session.collected == {"name": "Maria Silva", "order": "123"}
    assert session.node_key == "crm"


def test_an_answer_arriving_after_the_conversation_moved_on_is_dropped(service, chat, monkeypatch):
    _http_flow(service)
    chat.say("oi")
    service.answer(reply="late answer")
    before = chat.outbound().count()
    apply_http = engine._apply_http

    def moved_on_meanwhile(run, key, answer):  # type: ignore[no-untyped-def]
        # while the service was thinking, the conversation went to the queue (e.g. a keyword)
        conversation_route_to_department(
            conversation=chat.conversation, department=None, reason="test"
        )
        return apply_http(run, key, answer)

    monkeypatch.setattr(engine, "_apply_http", moved_on_meanwhile)
    # when
    chat.say("Maria Silva")
    # then
    assert len(service.requests) == 1
    assert chat.outbound().count() == before  # the late answer was not sent
    assert _last_outcome(chat) == "http_dropped"


# --- The answer's shape and the address rule -----------------------------------------------


def test_parse_answer_accepts_missing_keys_and_trims():
    answer = parse_answer(b'{"reply": "  hi  "}')
    assert answer.ok and answer.reply == "hi" and answer.department is None
    assert answer.collected == {}
    assert parse_answer(b'{"reply": null, "handoff": null, "collected": null}').ok


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://127.0.0.1:8000/x", False),
        ("http://localhost/x", False),
        ("http://10.1.2.3/x", False),
        ("http://192.168.0.10/x", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://[::1]/x", False),
        ("http://[::ffff:127.0.0.1]/x", False),
        ("ftp://8.8.8.8/x", False),
        ("not a url", False),
        ("https://8.8.8.8/hook", True),
        ("http://1.1.1.1:8080/hook", True),
    ],
)
def test_only_public_addresses_are_called(url, public):
    try:
        url_resolve_public(url)
    except UnsafeAddress:
        assert not public
    else:
        assert public


# --- The editor --------------------------------------------------------------------------------


def test_an_admin_adds_an_http_node_in_the_editor(client, admin_user, service):
    flow = Flow.objects.create(name="Ext", is_default=True)
    sorry = FlowNode.objects.create(flow=flow, key="sorry", kind=NodeKind.MESSAGE, text="Sorry")
    client.force_login(admin_user)
    fields = {
        "key": "crm",
        "kind": NodeKind.HTTP,
        "validation": "text",
        "url": "https://crm.example.com/bot",
        "secret": "s3cr3t-value",
        "fallback_node": str(sorry.pk),
    }
    # when
    response = client.post(reverse("botflows:node_create", args=[flow.pk]), fields)
    # then
    assert response.status_code in (200, 302)
    node = FlowNode.objects.get(flow=flow, key="crm")
    assert (node.url, node.secret, node.fallback_node) == (
        "https://crm.example.com/bot",
        "s3cr3t-value",
        sorry,
    )
    html = client.get(reverse("botflows:flow_editor", args=[flow.pk])).content.decode()
    assert "Calls https://crm.example.com/bot" in html
    assert "If it fails: sorry" in html
    # editing without typing a secret keeps it; the secret is never written into the page
    edit = reverse("botflows:node_edit", args=[flow.pk, node.pk])
    assert "s3cr3t-value" not in client.get(edit).content.decode()
    client.post(edit, {**fields, "secret": "", "url": "https://crm.example.com/v2"})
    node.refresh_from_db()
    assert (node.url, node.secret) == ("https://crm.example.com/v2", "s3cr3t-value")
    # the published version carries what the engine needs
    flow.start_node = node
    flow.save()
    version = services.flow_publish(flow=flow, actor=admin_user)
    crm = FlowVersion.objects.get(pk=version.pk).definition["nodes"]["crm"]
    assert (crm["url"], crm["secret"], crm["fallback"]) == (
        "https://crm.example.com/v2",
        "s3cr3t-value",
        "sorry",
    )


def test_an_http_node_needs_a_url(client, admin_user):
    flow = Flow.objects.create(name="Ext", is_default=True)
    client.force_login(admin_user)
    response = client.post(
        reverse("botflows:node_create", args=[flow.pk]),
        {"key": "crm", "kind": NodeKind.HTTP, "validation": "text"},
        headers={"HX-Request": "true"},
    )
    assert "needs the URL it calls" in response.content.decode()
    assert not FlowNode.objects.filter(flow=flow, key="crm").exists()


def test_the_audit_log_never_holds_the_secret(admin_user):
    from accounts.models import AuditLogEntry

    flow = Flow.objects.create(name="Ext", is_default=True)
    services.flow_node_create(
        actor=admin_user,
        flow=flow,
        key="crm",
        kind=NodeKind.HTTP,
        url="https://crm.example.com/bot",
        secret="top-secret",
    )
    assert "top-secret" not in json.dumps(list(AuditLogEntry.objects.values("before", "after")))
