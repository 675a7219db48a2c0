"""End to end: the ASGI server is killed and restarted under an open console (issue 16 §1).

daphne runs as a real subprocess (``python -m daphne supportdesk.asgi:application``, as production
runs it) on this test's PostgreSQL database and Redis, so it can be killed and started again on the
same port; Redis is also the channel layer this process broadcasts on, so what the test does through
the services reaches the browser live, as a change made by a Celery worker would. Chromium has an
agent's console open on a conversation. The server is SIGKILLed (no socket is told goodbye), the
customer writes and the desk changes while it is down, daphne comes back: the console reconnects by
itself and shows every missed message once and in order, and the changes, without a reload, and
then keeps receiving live frames.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.db import connection

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from conversations import services
from conversations.models import Direction, Message, MessageStatus, SenderKind
from conversations.tests.factories import MessageFactory
from conversations.tests.test_e2e_console import CHROMIUM, CHROMIUM_ARGS, _customer_writes
from departments.tests.factories import DepartmentFactory
from whatsapp.tests.factories import WhatsAppAccountFactory

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is unset"),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="daphne needs the shared PostgreSQL database"
    ),
]

WAIT_MS = 10_000
# Long enough for the backoff's attempts to find the server back (its jitter is random).
RECONNECT_MS = 25_000

# Counts the sockets that opened (test instrumentation, before the page's own scripts).
SOCKET_COUNTER = """
(() => {
  const Native = window.WebSocket;
  window.__socketOpens = 0;
  function Counted(url, protocols) {
    const ws = new Native(url, protocols);
    ws.addEventListener("open", () => { window.__socketOpens += 1; });
    return ws;
  }
  Counted.prototype = Native.prototype;
  for (const k of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Counted[k] = Native[k];
  window.WebSocket = Counted;
})();
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daphne:
    """The desk in a daphne process that can be killed and started again on the same port."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.queue = f"e2e-restart-{os.getpid()}-{self.port}"
        db = connection.settings_dict
        user = quote(db["USER"] or "", safe="")
        password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test",
            "DATABASE_URL": (
                f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
                f"/{db['NAME']}"
            ),
            "REDIS_URL": settings.REDIS_URL,
            # DEBUG serves the static files (no collected manifest) and keeps the cookies usable
            # on plain http://127.0.0.1; everything else is the production ASGI application.
            "DEBUG": "true",
            # whatever the server queues waits in a queue of its own (no worker in this test),
            # dropped at the end (``forget_queue``)
            "CELERY_QUEUE": self.queue,
            "PYTHONPATH": str(ROOT),
        }

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "supportdesk.asgi:application",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, f"daphne did not start:\n{self.tail()}"
            try:
                if requests.get(f"{self.url}/health", timeout=5).status_code < 500:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"daphne did not answer:\n{self.tail()}"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no close frame; the browser's sockets just drop."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def forget_queue(self) -> None:
        """The tasks the server queued (marking messages read on WhatsApp) that nobody ran."""
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match=f"*{self.queue}*"):
            client.delete(key)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def daphne() -> Iterator[Daphne]:
    with tempfile.TemporaryDirectory() as folder:
        server = Daphne(Path(folder) / "daphne.log")
        server.start()
        try:
            yield server
        finally:
            server.stop()
            server.forget_queue()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which Django's ORM guard
    # takes for an async context; the test's own ORM calls are plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                args=CHROMIUM_ARGS,
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _inbound(conversation: Any, body: str, key: str) -> Message:
    message, _ = services.message_record_inbound(
        conversation=conversation, body=body, wa_message_id=f"wamid.restart.{key}"
    )
    return message


def test_the_console_catches_up_after_the_server_is_killed_and_restarted(
    daphne: Daphne, chromium: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana.restart@example.com", departments=[support])
    carla = UserFactory(
        name="Carla Costa", email="carla.restart@example.com", departments=[support]
    )
    sofia = UserFactory(role="supervisor", name="Sofia", email="sofia.restart@example.com")
    account = WhatsAppAccountFactory()
    conversation = _customer_writes(
        account=account,
        department=support,
        name="Cliente Um",
        body="m0 Olá, preciso de ajuda",
        wa_id="5511987650301",
    )
    bot = MessageFactory(
        conversation=conversation,
        direction=Direction.OUT,
        sender=SenderKind.BOT,
        body="bot Um momento, vou chamar alguém",
        status=MessageStatus.SENT,
    )
    # Carla's: Ana looking at it does not mark it read (nothing she does tells the server)
    conversation = services.conversation_assign(
        conversation=conversation, actor=sofia, to_user=carla
    )

    # given: Ana's console (pt-BR) open on her colleague's conversation, the queue beside it
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="pt-BR")
    context.add_cookies([{"name": "django_language", "value": "pt-br", "url": daphne.url}])
    problems: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.add_init_script(SOCKET_COUNTER)
    page.set_default_timeout(WAIT_MS)
    # expect() has its own 5 s default: the same patience as the page's on a busy machine
    expect.set_options(timeout=WAIT_MS)
    try:
        page.goto(f"{daphne.url}/c/{conversation.pk}/?tab=queue")
        page.fill("input[name=username]", ana.email)
        page.fill("input[name=password]", DEFAULT_PASSWORD)
        page.click("button[type=submit]")
        state = page.locator("#connection")
        expect(state).to_have_attribute("data-state", "online")
        expect(state).to_have_text("Ao vivo")
        texts = page.locator("#message-list .msg .msg-text")
        before = ["m0 Olá, preciso de ajuda", "bot Um momento, vou chamar alguém"]
        expect(texts).to_have_text(before)
        expect(page.locator(f"#message-{bot.pk} .tick-sent")).to_be_visible()
        expect(page.locator("#conversation-header")).to_contain_text("com Carla Costa")
        expect(page.locator("#composer-body")).to_have_count(0)  # not hers
        expect(page.locator(".conversation-row")).to_have_count(0)  # nobody waits
        page.evaluate("() => { window.__samePage = true; }")

        # when: the server is killed
        daphne.kill()
        # then: the console says so, in Portuguese
        expect(state).to_have_attribute("data-state", "offline")
        expect(state).to_have_text("Reconectando…")

        # while it is down: the customer writes three times, the bot's message is read, a
        # supervisor gives the conversation to Ana, and a new customer lands in the queue
        missed = [
            _inbound(conversation, "m1 Meu pedido não chegou", "1"),
            _inbound(conversation, "m2 É o pedido 4521", "2"),
            _inbound(conversation, "m3 Alguém aí?", "3"),
        ]
        services.message_update_status(message=bot, status=MessageStatus.READ)
        services.conversation_assign(conversation=conversation, actor=sofia, to_user=ana)
        newcomer = _customer_writes(
            account=account,
            department=support,
            name="Cliente Dois",
            body="Oi, bom dia",
            wa_id="5511987650302",
        )
        page.wait_for_timeout(500)
        expect(state).to_have_attribute("data-state", "offline")  # nobody is there to answer

        # when: daphne comes back on the same port, and nothing else happens
        daphne.start()
        page.wait_for_function("() => window.__socketOpens >= 2", timeout=RECONNECT_MS)

        # then: the console caught up by itself (no frame told it anything), without a reload
        expect(state).to_have_attribute("data-state", "online")
        expect(state).to_have_text("Ao vivo")
        assert page.evaluate("() => window.__samePage") is True
        seen = [*before, *(m.body for m in missed)]
        expect(texts).to_have_text(seen)  # each once, in order
        # the bot's message was read meanwhile
        expect(page.locator(f"#message-{bot.pk} .tick-read")).to_be_visible()
        # it is Ana's now: the header says so and the composer is there
        expect(page.locator("#conversation-header")).to_contain_text("com Ana Agente")
        expect(page.locator("#composer-body")).to_be_visible()
        # the queue tab: the newcomer waits there; the conversation is in Ana's "Mine"
        newcomer_row = page.locator(f'.conversation-row[data-conversation-id="{newcomer.pk}"]')
        expect(newcomer_row).to_be_visible()
        expect(newcomer_row).to_contain_text("Cliente Dois")
        expect(page.locator(".conversation-row")).to_have_count(1)
        expect(page.locator('[data-count="mine"]')).to_have_text("1")

        # and it keeps receiving live frames
        seen.append(_inbound(conversation, "m4 Voltou?", "4").body)
        expect(texts).to_have_text(seen)

        # when: killed again; the customer writes meanwhile, and once more the moment the
        # console's new socket is open (its catch-up may or may not have fetched the list yet)
        daphne.kill()
        expect(state).to_have_attribute("data-state", "offline")
        seen.append(_inbound(conversation, "m5 Oi?", "5").body)
        daphne.start()
        page.wait_for_function("() => window.__socketOpens >= 3", timeout=RECONNECT_MS)
        seen.append(_inbound(conversation, "m6 Agora sim", "6").body)

        # then: each shows once, in order, and the console is live again
        expect(texts).to_have_text(seen)
        expect(state).to_have_attribute("data-state", "online")
        seen.append(_inbound(conversation, "m7 Obrigado!", "7").body)
        expect(texts).to_have_text(seen)
        ids = page.eval_on_selector_all(
            "#message-list [data-message-id]", "els => els.map(e => e.dataset.messageId)"
        )
        assert len(ids) == len(set(ids)) == len(seen), ids
        assert page.evaluate("() => window.__samePage") is True
        assert problems == [], problems
    except Exception:
        print(daphne.tail())
        raise
    finally:
        context.close()
