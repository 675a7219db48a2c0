"""End to end: real agents in headless Chromium against a live daphne server (contract §6, §7).

The server runs in a thread of the test process (daphne's Twisted reactor on its own event loop),
so it shares the test database and, without ``REDIS_URL``, the in-memory channel layer. Anything
the test itself changes goes through :meth:`LiveServer.call`, which runs the service inside the
server's loop exactly like a view would, so its after-commit broadcasts reach the browsers' sockets
on either channel layer.

Set ``UPDATE_SCREENSHOTS=1`` to refresh ``docs/screenshots/*.png``.
"""

import asyncio
import base64
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.backends.signals import connection_created
from django.test import override_settings
from django.utils import timezone

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from conversations import services
from conversations.models import Conversation, ConversationStatus, Direction, Message, Tag
from conversations.tests.factories import CustomerFactory
from departments.tests.factories import DepartmentFactory
from whatsapp.services import sandbox
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
WAIT_MS = 10_000
# Test instrumentation, injected before the page's scripts: lets the test cut every WebSocket and
# keep new ones from reaching the consumer (they go to a path with no route) until it is lifted.
SOCKET_CUTTER = """
(() => {
  const Native = window.WebSocket;
  const sockets = [];
  let cut = false;
  function Cuttable(url, protocols) {
    const ws = new Native(cut ? url.replace("/ws/", "/ws-cut/") : url, protocols);
    sockets.push(ws);
    return ws;
  }
  Cuttable.prototype = Native.prototype;
  for (const k of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Cuttable[k] = Native[k];
  window.WebSocket = Cuttable;
  window.__cutSockets = (on) => {
    cut = on;
    if (on) sockets.forEach((ws) => ws.close());
  };
})();
"""


class LiveServer:
    def __init__(
        self, url: str, loop: asyncio.AbstractEventLoop, gate: asyncio.Lock | None
    ) -> None:
        self.url = url
        self.loop = loop
        self.gate = gate

    def call(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """Run ``fn`` in the server, as a request would (its broadcasts reach the sockets)."""

        def run() -> Any:
            try:
                return fn(**kwargs)
            finally:
                close_old_connections()

        async def in_server() -> Any:
            if self.gate is None:
                return await sync_to_async(run)()
            async with self.gate:
                return await sync_to_async(run)()

        return asyncio.run_coroutine_threadsafe(in_server(), self.loop).result(timeout=30)


def _sqlite_read_uncommitted(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = true")


@pytest.fixture(scope="module")
def live_server_e2e(django_db_setup: Any, django_db_blocker: Any) -> Iterator[LiveServer]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")
    # Plain HTTP on 127.0.0.1: no HTTPS redirect, cookies without the Secure flag.
    overrides = override_settings(
        SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False
    )
    overrides.enable()
    from channels.layers import channel_layers
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server, twisted_loop
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.asgi import get_asgi_application
    from twisted.internet import reactor

    from supportdesk.asgi import application as project_application

    # channels_redis binds a layer to the event loop that first receives on it: the server's loop
    # gets a layer of its own, and later tests get theirs.
    channel_layers.backends.clear()
    http = ASGIStaticFilesHandler(get_asgi_application())  # built after the overrides
    websocket = project_application.application_mapping["websocket"]
    # pytest-django's SQLite test database lives in memory with a shared cache, where two
    # threads writing at once get "table is locked" at once (no busy wait). With SQLite the
    # live server therefore handles one HTTP request at a time, and the sockets' reads skip
    # the table locks. PostgreSQL runs fully concurrent.
    sqlite = connection.vendor == "sqlite"
    gate = asyncio.Lock() if sqlite else None
    if sqlite:
        connection_created.connect(_sqlite_read_uncommitted)

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            return await websocket(scope, receive, send)
        if gate is None:
            return await http(scope, receive, send)
        async with gate:
            return await http(scope, receive, send)

    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host="127.0.0.1", port=0),
        signal_handlers=False,
    )
    thread = threading.Thread(target=server.run, name="daphne-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.listening_addresses and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.listening_addresses, "daphne did not start"
    port = server.listening_addresses[0][1]
    yield LiveServer(f"http://127.0.0.1:{port}", twisted_loop, gate)
    reactor.callFromThread(reactor.stop)  # type: ignore[attr-defined]
    thread.join(timeout=10)
    connection_created.disconnect(_sqlite_read_uncommitted)
    channel_layers.backends.clear()
    overrides.disable()


@pytest.fixture(scope="module")
def browser(live_server_e2e: LiveServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which Django's ORM guard
    # takes for an async context; the test's own ORM calls are plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            args=CHROMIUM_ARGS,
        )
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def open_console(browser: Any, live_server_e2e: LiveServer) -> Iterator[Callable[..., Any]]:
    """Log a user in, in a browser context of their own, and return the page on ``path``."""
    contexts = []
    problems: list[str] = []

    def login(
        user: Any,
        path: str = "/",
        language: str = "en",
        init_script: str = "",
        viewport: dict[str, int] | None = None,
    ) -> Any:
        context = browser.new_context(
            viewport=viewport or {"width": 1440, "height": 900},
            locale="en-US",
            has_touch=viewport is not None,
        )
        context.add_cookies(
            [{"name": "django_language", "value": language, "url": live_server_e2e.url}]
        )
        contexts.append(context)
        page = context.new_page()
        page.on(
            "console",
            lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on("pageerror", lambda error: problems.append(str(error)))
        if init_script:
            page.add_init_script(init_script)
        page.set_default_timeout(WAIT_MS)
        page.goto(live_server_e2e.url + path)
        page.fill("input[name=username]", user.email)
        page.fill("input[name=password]", DEFAULT_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"**{path}")
        page.wait_for_selector('#connection[data-state="online"]')
        return page

    yield login
    for context in contexts:
        context.close()
    assert problems == [], problems  # no script error, nothing refused by the CSP


def _customer_writes(
    *, account: Any, department: Any, name: str, body: str, wa_id: str
) -> Conversation:
    """What the webhook + bot do for a new customer: conversation, message, hand-over."""
    customer = CustomerFactory(name=name, wa_id=wa_id, phone=f"+{wa_id}")
    conversation, _ = services.conversation_open_for_customer(
        customer=customer, whatsapp_account_id=account.pk
    )
    # Queued first: a message stored while the conversation is with the bot would get the live
    # bot's own turn (it reacts to every message.created), racing this scripted hand-over.
    conversation = services.conversation_route_to_department(
        conversation=conversation, department=department, reason="menu"
    )
    services.message_record_inbound(
        conversation=conversation, body=body, wa_message_id=f"wamid.{wa_id}"
    )
    conversation.refresh_from_db()
    return conversation


def _post_webhook(
    live: LiveServer, fake_graph: Any, signed_webhook: Any, *, wa_id: str, body: str, name: str = ""
) -> None:
    """What Meta does: POST a signed delivery of one text message to our webhook."""
    payload, headers = signed_webhook(
        sandbox.text_delivery(
            wa_id=wa_id, name=name, body=body, phone_number_id=fake_graph.phone_number_id
        )
    )
    response = requests.post(
        f"{live.url}/api/v1/webhooks/whatsapp",
        data=payload,
        headers={**headers, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def _wait_for(probe: Callable[[], Any], what: str, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {seconds} s")


def test_agents_work_a_conversation_live(
    live_server_e2e: LiveServer, open_console: Any, fake_graph: Any, signed_webhook: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    sales = DepartmentFactory(name="Vendas")
    ana = UserFactory(name="Ana Agente", email="ana@example.com", departments=[support])
    carla = UserFactory(name="Carla Costa", email="carla@example.com", departments=[support])
    bruno = UserFactory(name="Bruno Vendas", email="bruno@example.com", departments=[sales])

    ana_page = open_console(ana, "/?tab=queue")
    carla_page = open_console(carla, "/?tab=mine")
    bruno_page = open_console(bruno, "/?tab=all")
    bruno_frames: list[str] = []
    # Bruno's socket is already open; listen on a second tab of his to record every frame.
    spy = bruno_page.context.new_page()
    spy.on("websocket", lambda ws: ws.on("framereceived", lambda f: bruno_frames.append(f)))  # noqa: PLW0108 - Playwright needs a Python function
    spy.goto(live_server_e2e.url + "/?tab=all")
    spy.wait_for_selector('#connection[data-state="online"]')
    expect(ana_page.locator(".empty-state")).to_contain_text("The queue is empty.")

    # given: a customer writes through Meta's signed webhook, with markup in the message...
    wa_id = "5511987650002"
    _post_webhook(
        live_server_e2e,
        fake_graph,
        signed_webhook,
        wa_id=wa_id,
        name="Cliente Teste",
        body="<script>window.__pwned = 1</script><b>Olá</b>, preciso de ajuda",
    )
    conversation = _wait_for(
        lambda: Conversation.objects.filter(customer__wa_id=wa_id).first(), "conversation"
    )
    # ...and the bot hands it over to Suporte (what its menu does when the customer picks it)
    conversation = live_server_e2e.call(
        services.conversation_route_to_department,
        conversation=conversation,
        department=support,
        reason="menu",
    )

    # then: it appears in Ana's queue without a reload, with a live count and unread badge
    row = ana_page.locator(f'.conversation-row[data-conversation-id="{conversation.pk}"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge-unread")).to_have_text("1")
    expect(ana_page.locator('[data-count="queue"]')).to_have_text("1")

    # when: Ana opens it, the markup is shown as text and never runs
    row.click()
    message = ana_page.locator("#message-list .msg-in .msg-text").first
    expect(message).to_have_text("<script>window.__pwned = 1</script><b>Olá</b>, preciso de ajuda")
    assert ana_page.evaluate("window.__pwned") is None
    assert ana_page.locator("#message-list b").count() == 0

    # when: she takes it over and replies with Enter
    ana_page.get_by_role("button", name="Take over").click()
    composer = ana_page.locator("#composer-body")
    expect(composer).to_be_visible()
    composer.fill("Bom dia! Já vou verificar.")
    composer.press("Shift+Enter")
    composer.type("Um momento, por favor.")
    composer.press("Enter")
    reply = ana_page.locator("#message-list .msg-out").last
    expect(reply).to_contain_text("Bom dia! Já vou verificar.")
    expect(reply.locator(".msg-sender")).to_have_text("Ana Agente")
    sent = Message.objects.get(conversation=conversation, direction=Direction.OUT, sender="agent")
    assert sent.body == "Bom dia! Já vou verificar.\nUm momento, por favor."
    assert sent.sender_user_id == ana.pk
    # the fake Graph API received it, addressed to the customer
    delivered = _wait_for(
        lambda: [s for s in fake_graph.message_sends if s.get("text", {}).get("body") == sent.body],
        "send to the Graph API",
    )
    assert delivered[0]["to"] == wa_id

    # when: a new customer message arrives, it shows in the open conversation at once
    _post_webhook(live_server_e2e, fake_graph, signed_webhook, wa_id=wa_id, body="Obrigado!")
    expect(ana_page.locator("#message-list .msg-in").last).to_contain_text("Obrigado!")

    # when: Ana transfers it to Carla with a note
    ana_page.locator("#transfer-popover summary").click()
    ana_page.select_option("#t-user", str(carla.pk))
    ana_page.fill("#t-note", "Cliente quer segunda via do boleto")
    ana_page.locator("#transfer-popover button[type=submit]").click()

    # then: Carla's open "Mine" tab shows it arrive, without a reload
    carla_row = carla_page.locator(f'.conversation-row[data-conversation-id="{conversation.pk}"]')
    expect(carla_row).to_be_visible()
    expect(carla_page.locator('[data-count="mine"]')).to_have_text("1")
    conversation.refresh_from_db()
    assert conversation.assigned_to_id == carla.pk
    assert conversation.transfers.get().note == "Cliente quer segunda via do boleto"

    # and Bruno, of another department, never saw any of it
    time.sleep(0.5)
    assert "Cliente Teste" not in bruno_page.content()
    assert "Cliente Teste" not in spy.content()
    leaked = [f for f in bruno_frames if str(conversation.pk) in f and "conversation" in f.lower()]
    assert leaked == [], leaked
    response = bruno_page.request.get(f"{live_server_e2e.url}/c/{conversation.pk}/")
    assert response.status == 404


def test_console_catches_up_after_the_socket_drops(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana2@example.com", departments=[support])
    account = WhatsAppAccountFactory()
    page = open_console(ana, "/?tab=queue", init_script=SOCKET_CUTTER)

    # the connection drops and stays down for a while; meanwhile a customer writes
    page.evaluate("() => window.__cutSockets(true)")
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    conversation = live_server_e2e.call(
        _customer_writes,
        account=account,
        department=support,
        name="Cliente Offline",
        body="Alguém aí?",
        wa_id="5511987650099",
    )
    row = page.locator(f'.conversation-row[data-conversation-id="{conversation.pk}"]')
    page.wait_for_timeout(1000)
    expect(row).to_have_count(0)  # nothing can reach the page while it is offline
    page.evaluate(
        "() => { window.__cutSockets(false); window.dispatchEvent(new Event('online')); }"
    )

    # then: after reconnecting, the console fetches what it missed
    expect(page.locator("#connection")).to_have_attribute("data-state", "online", timeout=20_000)
    expect(row).to_be_visible()


def test_screenshots_of_the_console(
    live_server_e2e: LiveServer, open_console: Any, tmp_path: Path
) -> None:
    """A realistic desk, photographed; the pictures go to docs/ with UPDATE_SCREENSHOTS=1."""
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    sales = DepartmentFactory(name="Vendas")
    ana = UserFactory(name="Ana Souza", email="ana3@example.com", departments=[support, sales])
    UserFactory(name="Carlos Lima", email="carlos@example.com", departments=[support])
    account = WhatsAppAccountFactory()
    people = [
        ("Mariana Alves", "Oi! Meu pedido 4821 ainda não chegou, podem verificar?"),
        ("João Pereira", "Gostaria de saber o valor do plano empresarial."),
        ("Fernanda Rocha", "A segunda via do boleto está vindo com valor errado."),
        ("Ricardo Gomes", "Vocês atendem aos sábados?"),
        ("Patrícia Nunes", "Consigo trocar o produto depois de 30 dias?"),
        ("Lucas Martins", "O aplicativo não abre desde ontem."),
    ]
    conversations = []
    for n, (name, body) in enumerate(people):
        conversations.append(
            live_server_e2e.call(
                _customer_writes,
                account=account,
                department=support if n % 3 else sales,
                name=name,
                body=body,
                wa_id=f"55119876510{n:02d}",
            )
        )
    featured = conversations[0]
    live_server_e2e.call(services.conversation_take_over, conversation=featured, actor=ana)
    live_server_e2e.call(
        services.message_create_outbound,
        conversation=featured,
        actor=ana,
        body="Olá, Mariana! Sou a Ana. Vou verificar o pedido 4821 agora mesmo.",
    )
    live_server_e2e.call(
        services.message_record_inbound,
        conversation=featured,
        body="Obrigada! Comprei no dia 12 e o prazo era de 5 dias úteis.",
        wa_message_id="wamid.shot-2",
    )
    live_server_e2e.call(
        services.conversation_note_create,
        conversation=featured,
        actor=ana,
        body="Pedido via transportadora Rápida; prazo vence amanhã.",
    )
    Message.objects.filter(conversation=featured, direction=Direction.OUT).update(status="read")
    Conversation.objects.filter(pk=featured.pk).update(
        created_at=timezone.now() - timedelta(minutes=20)
    )

    page = open_console(ana, "/")
    expect(page.locator(".conversation-row")).to_have_count(len(people))
    target = (
        SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else Path(settings.BASE_DIR) / ".e2e"
    )
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / "inbox.png"))

    page.locator(f'.conversation-row[data-conversation-id="{featured.pk}"]').click()
    expect(page.locator("#composer-body")).to_be_visible()
    page.locator("#composer-body").fill("Encontrei: a transportadora registrou")
    page.screenshot(path=str(target / "conversation.png"))
    assert Path(target / "conversation.png").stat().st_size > 10_000
    assert Conversation.objects.get(pk=featured.pk).status == ConversationStatus.OPEN


def test_language_switch_in_the_browser(live_server_e2e: LiveServer, browser: Any) -> None:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(live_server_e2e.url + "/login/")
    page.select_option("#language-auth", "pt-br")
    page.wait_for_selector("html[lang=pt-br]")
    page.goto(live_server_e2e.url + "/login/")  # remembered across visits
    assert page.get_attribute("html", "lang") == "pt-br"
    page.select_option("#language-auth", "en")
    page.wait_for_selector("html[lang=en]")
    context.close()


# A 2x2 red PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGP4z8AARAwQCgAf7gP9i18U1AAAAABJRU5ErkJggg=="
)


def test_images_open_in_a_viewer(
    live_server_e2e: LiveServer, open_console: Any, settings: Any, tmp_path: Path
) -> None:
    from django.core.files.base import ContentFile
    from playwright.sync_api import expect

    from conversations.tests.factories import ConversationFactory, MessageFactory

    settings.MEDIA_ROOT = tmp_path
    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana4@example.com", departments=[support])
    conversation = ConversationFactory(department=support, customer__name="Cliente Foto")
    message = MessageFactory(
        conversation=conversation, type="image", body="foto do produto", media_mime_type="image/png"
    )
    message.media_file.save("produto.png", ContentFile(PNG))

    page = open_console(ana, f"/c/{conversation.pk}/")
    page.locator(".msg-media-link").click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-image")).to_have_attribute("alt", "foto do produto")
    page.wait_for_function("document.getElementById('viewer-image').naturalWidth === 2")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()


PHONE = {"width": 390, "height": 844}


def _no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide in a {PHONE['width']} px screen"


def _reachable(page: Any, selector: str) -> None:
    """On screen, of a usable size, and the topmost element where a finger would touch it.

    htmx may be swapping the pane in at that moment (after a send, after a live update): the
    check is made on the element in place, looking again for up to five seconds."""
    deadline = time.monotonic() + 5
    while True:
        found = page.evaluate(
            """(sel) => {
                const el = document.querySelector(sel);
                if (!el || !el.isConnected) return null;
                const r = el.getBoundingClientRect();
                if (!r.width || !r.height) return null;
                const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                return {y: r.top, height: r.height, onTop: hit === el || el.contains(hit)};
            }""",
            selector,
        )
        if found is not None or time.monotonic() > deadline:
            break
        page.wait_for_timeout(100)
    assert found is not None, selector
    assert found["y"] >= 0 and found["y"] + found["height"] <= PHONE["height"], (selector, found)
    assert found["height"] >= 40, (selector, found)
    assert found["onTop"], f"{selector} is covered"


def test_a_whole_conversation_on_a_phone(
    live_server_e2e: LiveServer, open_console: Any, fake_graph: Any
) -> None:
    """390x844: list -> conversation -> take over -> reply -> transfer -> back, nothing wider
    than the screen, the reply box always at hand; the colleague reads the transfer note."""
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana-phone@example.com", departments=[support])
    carla = UserFactory(name="Carla Costa", email="carla-phone@example.com", departments=[support])
    conversation = live_server_e2e.call(
        _customer_writes,
        account=fake_graph.account,
        department=support,
        name="Cliente Celular",
        body="Olá, meu pedido não chegou",
        wa_id="5511987650301",
    )
    for n in range(25):  # a long history: the page must not grow, the messages scroll
        live_server_e2e.call(
            services.message_record_inbound,
            conversation=conversation,
            body=f"Mais um detalhe {n}",
            wa_message_id=f"wamid.phone.{n}",
        )

    page = open_console(ana, "/?tab=queue", viewport=PHONE)
    _no_horizontal_overflow(page)
    # the tabs scroll sideways instead of widening the page
    tabs = page.locator(".tabs")
    assert tabs.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert tabs.evaluate("el => el.scrollWidth > el.clientWidth")
    expect(page.locator(".conversation-row")).to_have_count(1)
    expect(page.locator(".pane-empty")).to_be_hidden()  # the list has the whole screen
    assert page.title().startswith("(1) ")  # the unread badge in the title

    # list -> conversation: the list makes way, a back link appears
    page.locator(f'.conversation-row[data-conversation-id="{conversation.pk}"]').click()
    expect(page.locator("#message-list")).to_be_visible()
    expect(page.locator(".conversation-list")).to_be_hidden()
    expect(page.locator(".back-link")).to_be_visible()
    assert page.url.endswith(f"/c/{conversation.pk}/?tab=queue")
    _no_horizontal_overflow(page)

    # take over: the reply box is there, focused, and nothing covers it
    page.get_by_role("button", name="Take over").click()
    composer = page.locator("#composer-body")
    expect(composer).to_be_focused()
    _no_horizontal_overflow(page)
    _reachable(page, "#composer-body")
    send = page.locator("#composer button[type=submit]")
    expect(send).to_be_disabled()  # nothing to send yet
    assert page.evaluate("document.documentElement.scrollHeight") <= PHONE["height"]

    composer.fill("Bom dia! Vou verificar o seu pedido.")
    expect(send).to_be_enabled()
    composer.press("Enter")
    expect(page.locator("#message-list .msg-out", has_text="Vou verificar")).to_be_visible()
    _reachable(page, "#composer-body")
    _no_horizontal_overflow(page)

    # the typing strip never covers the reply box
    page.evaluate("() => { document.getElementById('typing').textContent = 'Cliente is typing…'; }")
    _reachable(page, "#composer-body")

    # transfer to Carla with a note, from the phone
    page.locator("#transfer-popover summary").click()
    _no_horizontal_overflow(page)
    page.select_option("#t-user", str(carla.pk))
    page.fill("#t-note", "Cliente quer segunda via do boleto")
    page.locator("#transfer-popover button[type=submit]").click()
    expect(page.locator("#conversation-header")).to_contain_text("with Carla Costa")
    expect(page.locator(".system-transferred .system-note")).to_contain_text("segunda via")
    _no_horizontal_overflow(page)

    # back to the list, which is up to date
    page.locator(".back-link").click()
    expect(page.locator(".conversation-list")).to_be_visible()
    expect(page.locator("#message-list")).to_have_count(0)
    assert page.url.endswith("/?tab=queue")
    _no_horizontal_overflow(page)

    # Carla, on her phone, reads the note Ana left, as a system line of the timeline
    carla_page = open_console(carla, f"/c/{conversation.pk}/", viewport=PHONE, language="pt-br")
    note = carla_page.locator(".system-transferred")
    expect(note).to_contain_text("Observação para o próximo agente")
    expect(note).to_contain_text("Cliente quer segunda via do boleto")
    expect(carla_page.locator(".system-taken_over")).to_contain_text(
        "Ana Agente assumiu a conversa"
    )
    _no_horizontal_overflow(carla_page)
    _reachable(carla_page, "#composer-body")


def test_reading_history_is_not_interrupted_by_a_new_message(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana-scroll@example.com", departments=[support])
    account = WhatsAppAccountFactory()
    conversation = live_server_e2e.call(
        _customer_writes,
        account=account,
        department=support,
        name="Cliente Longo",
        body="Primeira mensagem",
        wa_id="5511987650302",
    )
    conversation = live_server_e2e.call(
        services.conversation_take_over, conversation=conversation, actor=ana
    )
    for n in range(30):
        live_server_e2e.call(
            services.message_record_inbound,
            conversation=conversation,
            body=f"Linha antiga {n}",
            wa_message_id=f"wamid.scroll.old.{n}",
        )
    live_server_e2e.call(services.conversation_mark_read, conversation=conversation, actor=ana)
    for n in range(3):
        live_server_e2e.call(
            services.message_record_inbound,
            conversation=conversation,
            body=f"Ainda não lida {n}",
            wa_message_id=f"wamid.scroll.new.{n}",
        )

    # opening it lands on the first unread message, not at the top nor past it
    page = open_console(ana, "/?tab=mine")
    page.locator(f'.conversation-row[data-conversation-id="{conversation.pk}"]').click()
    marker = page.locator("#first-unread")
    expect(marker).to_be_visible()
    expect(page.locator(".msg", has_text="Ainda não lida 0")).to_be_in_viewport()
    expect(page.locator(".msg", has_text="Linha antiga 0")).not_to_be_in_viewport()

    # scrolled up reading, a message arrives: the agent stays where they are, a pill says so
    page.evaluate("() => { document.getElementById('message-list').scrollTop = 0; }")
    page.wait_for_timeout(500)
    live_server_e2e.call(
        services.message_record_inbound,
        conversation=conversation,
        body="Chegou agora",
        wa_message_id="wamid.scroll.now",
    )
    expect(page.locator("#message-list .msg-in").last).to_contain_text("Chegou agora")
    pill = page.locator("#new-messages")
    expect(pill).to_be_visible()
    assert page.evaluate("document.getElementById('message-list').scrollTop") < 50
    pill.click()
    expect(page.locator(".msg", has_text="Chegou agora")).to_be_in_viewport()
    expect(pill).to_be_hidden()

    # at the bottom, a new message simply shows
    live_server_e2e.call(
        services.message_record_inbound,
        conversation=conversation,
        body="E mais esta",
        wa_message_id="wamid.scroll.more",
    )
    expect(page.locator(".msg", has_text="E mais esta")).to_be_in_viewport()
    expect(pill).to_be_hidden()


def test_attachments_are_checked_before_upload(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    from conversations.tests.factories import ConversationFactory

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana-files@example.com", departments=[support])
    conversation = ConversationFactory(
        department=support,
        assigned_to=ana,
        status=ConversationStatus.OPEN,
        customer__name="Cliente Arquivo",
        last_inbound_at=timezone.now(),
    )
    page = open_console(ana, f"/c/{conversation.pk}/")
    send = page.locator("#composer button[type=submit]")
    expect(send).to_be_disabled()

    # an .exe is refused at once, never uploaded
    page.set_input_files(
        "#composer-file",
        files=[{"name": "setup.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}],
    )
    expect(page.locator(".attachment-error")).to_contain_text("does not accept this kind of file")
    expect(send).to_be_disabled()
    assert page.evaluate("document.getElementById('composer-file').files.length") == 0

    # an image too big for WhatsApp (5 MB) as well
    page.set_input_files(
        "#composer-file",
        files=[
            {"name": "foto.jpg", "mimeType": "image/jpeg", "buffer": b"0" * (5 * 1024 * 1024 + 1)}
        ],
    )
    expect(page.locator(".attachment-error")).to_contain_text("up to 5 MB")

    # a PNG shows a preview and can be removed
    page.set_input_files(
        "#composer-file",
        files=[{"name": "recibo.png", "mimeType": "image/png", "buffer": PNG}],
    )
    expect(page.locator(".attachment-preview")).to_be_visible()
    expect(page.locator(".attachment-name")).to_have_text("recibo.png")
    expect(send).to_be_enabled()
    page.locator("[data-remove-attachment]").click()
    expect(page.locator("#composer-attachment")).to_be_hidden()
    expect(send).to_be_disabled()


def test_a_transfer_away_updates_every_tab_of_the_old_agent(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    sales = DepartmentFactory(name="Vendas")
    ana = UserFactory(name="Ana Agente", email="ana-away@example.com", departments=[support])
    conversation = live_server_e2e.call(
        _customer_writes,
        account=WhatsAppAccountFactory(),
        department=support,
        name="Cliente Vendas",
        body="Quero comprar",
        wa_id="5511987650303",
    )
    conversation = live_server_e2e.call(
        services.conversation_take_over, conversation=conversation, actor=ana
    )
    acting = open_console(ana, f"/c/{conversation.pk}/?tab=mine")
    watching = open_console(ana, f"/c/{conversation.pk}/?tab=mine")
    stale = open_console(ana, "/?tab=mine", init_script=SOCKET_CUTTER)
    stale.evaluate("() => window.__cutSockets(true)")  # a tab that hears nothing
    row = f'.conversation-row[data-conversation-id="{conversation.pk}"]'

    acting.locator("#transfer-popover summary").click()
    acting.select_option("#t-dept", str(sales.pk))
    acting.locator("#transfer-popover button[type=submit]").click()

    # the acting tab: told, and its list refreshed at once (no 60 s wait)
    # (the transfer's answer, or the pane refreshed by the transfer's frame if that came first)
    expect(acting.locator("#conversation-pane")).to_contain_text(
        re.compile("The conversation was handed over.|This conversation is no longer available")
    )
    expect(acting.locator(row)).to_have_count(0, timeout=3000)
    # another tab of hers hears the transfer: list and pane refresh at once
    expect(watching.locator(row)).to_have_count(0, timeout=3000)
    expect(watching.locator("#conversation-pane")).to_contain_text(
        "This conversation is no longer available to you.", timeout=3000
    )
    # a tab that missed it: clicking the stale row gives a friendly pane, not a raw 404 page
    stale.locator(row).click()
    expect(stale.locator("#conversation-pane")).to_contain_text(
        "This conversation is no longer available to you."
    )
    expect(stale.locator(row)).to_have_count(0)  # and the list catches up
    assert stale.locator("#inbox").count() == 1


NOTIFICATION_SPY = """
(() => {
  window.__asked = 0;
  window.__shown = [];
  window.__beeps = 0;
  function FakeNotification(title, options) { window.__shown.push(title); }
  FakeNotification.permission = "default";
  FakeNotification.requestPermission = () => {
    window.__asked += 1;
    FakeNotification.permission = "granted";
    return Promise.resolve("granted");
  };
  window.Notification = FakeNotification;
  window.AudioContext = function () {
    this.currentTime = 0;
    this.destination = {};
    this.createGain = () => ({ gain: {}, connect() {} });
    this.createOscillator = () => ({
      frequency: {}, connect() {}, start() { window.__beeps += 1; }, stop() {},
    });
  };
})();
"""


def test_an_agent_in_another_tab_is_told_a_customer_wrote(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana-notify@example.com", departments=[support])
    page = open_console(ana, "/?tab=inbox", init_script=NOTIFICATION_SPY)
    assert not page.title().startswith("(")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__asked") == 0  # never asked on load

    # the settings live in the user menu, kept on the user; desktop asks on the click
    page.locator(".usermenu summary").click()
    page.get_by_label("Play a sound").check()
    expect(page.locator("#notify-settings [role=status]")).to_have_text("Saved.")
    page.get_by_label("Desktop notifications").check()
    assert page.evaluate("window.__asked") == 1
    _wait_for(
        lambda: (
            type(ana).objects.filter(pk=ana.pk, notify_sound=True, notify_desktop=True).exists()
        ),
        "saved settings",
    )

    live_server_e2e.call(
        _customer_writes,
        account=WhatsAppAccountFactory(),
        department=support,
        name="Cliente Novo",
        body="Bom dia",
        wa_id="5511987650304",
    )
    expect(page).to_have_title("(1) Conversations · SupportDesk")
    _wait_for(lambda: page.evaluate("window.__shown.length") == 1, "a desktop notification")
    assert page.evaluate("window.__beeps") == 1

    # after a reload the settings are still there
    page.reload()
    page.locator(".usermenu summary").click()
    expect(page.get_by_label("Play a sound")).to_be_checked()
    expect(page.get_by_label("Desktop notifications")).to_be_checked()


# --- The supervisors' board (issue 12) ----------------------------------------------------


def test_the_board_counts_move_live_and_show_conversations_with_no_department(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    account = WhatsAppAccountFactory()
    supervisor = UserFactory(role="supervisor", name="Sofia")
    page = open_console(supervisor, "/board/")
    no_department = page.locator("#board-no-department td").nth(1)  # with the bot
    support_row = page.locator("tr", has_text="Suporte")
    expect(no_department).to_have_text("0")

    # A customer writes: a conversation with the bot, no department yet.
    customer = CustomerFactory(name="Rita", wa_id="5511987650077", phone="+5511987650077")
    conversation, _ = live_server_e2e.call(
        services.conversation_open_for_customer, customer=customer, whatsapp_account_id=account.pk
    )
    expect(no_department).to_have_text("1")

    # The bot hands over to Suporte: the board moves it to that queue, without a reload.
    live_server_e2e.call(
        services.conversation_route_to_department,
        conversation=conversation,
        department=support,
        reason="menu",
    )
    expect(no_department).to_have_text("0")
    expect(support_row.locator("td").first).to_have_text("1")


def test_an_agent_sets_priority_and_tags_and_the_queue_puts_the_urgent_first(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    # given: two customers waiting in Suporte's queue, the first one for longer; admins' tags
    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana.tags@example.com", departments=[support])
    account = WhatsAppAccountFactory()
    Tag.objects.create(name="Atraso", color="#f59e0b")
    vip = Tag.objects.create(name="<b>VIP</b>", color="#dc2626")
    first = _customer_writes(
        account=account, department=support, name="Primeira", body="oi", wa_id="5511900000101"
    )
    Conversation.objects.filter(pk=first.pk).update(
        last_inbound_at=timezone.now() - timedelta(minutes=20)
    )
    second = _customer_writes(
        account=account, department=support, name="Segunda", body="socorro", wa_id="5511900000102"
    )
    page = open_console(ana, "/?tab=queue")
    rows = page.locator(".conversation-row")
    expect(rows.first).to_have_attribute("data-conversation-id", str(first.pk))  # longest waiting

    # when: Ana marks the second one urgent and tags it
    page.click(f'.conversation-row[data-conversation-id="{second.pk}"]')
    page.click("#organise-popover summary")
    page.select_option("#o-priority", "urgent")
    page.check(f'#organise-popover input[name=tags][value="{vip.pk}"]')
    page.click("#organise-popover button[type=submit]")

    # then: the header and the row show them (the tag's markup as text), and it leads the queue
    header = page.locator("#conversation-header")
    expect(header.locator(".priority-urgent")).to_have_text("Urgent")
    expect(header.locator(".pane-sub .chip-tag")).to_have_text("<b>VIP</b>")
    row = page.locator(f'.conversation-row[data-conversation-id="{second.pk}"]')
    expect(row.locator(".priority-urgent")).to_be_visible()
    expect(row.locator(".chip-tag")).to_have_text("<b>VIP</b>")
    expect(rows.first).to_have_attribute("data-conversation-id", str(second.pk))
    expect(page.locator("#message-list")).to_contain_text("Ana Agente set the priority: Urgent")
    # the tag filter keeps it in the URL and lists only the tagged conversation
    page.select_option("#f-tag", str(vip.pk))
    expect(page).to_have_url(re.compile(rf"tag={vip.pk}"))
    expect(rows).to_have_count(1)

    # and on a phone, in Portuguese, the form fits the screen and its button is at hand
    phone = open_console(ana, f"/c/{second.pk}/", language="pt-br", viewport=PHONE)
    expect(phone.locator("#conversation-header .priority-urgent")).to_have_text("Urgente")
    phone.click("#organise-popover summary")
    expect(phone.locator("#organise-popover legend")).to_have_text("Etiquetas")
    _no_horizontal_overflow(phone)
    _reachable(phone, "#organise-popover button[type=submit]")
