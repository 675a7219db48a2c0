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
from conversations.services import organise
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
        self.requests_in_flight = 0  # HTTP requests the server is still answering

    def settle(self, seconds: float = 10) -> None:
        """Wait for the requests still being answered (a closed page's last fetches run to their
        end on the server) before the test's database is flushed under them."""
        deadline = time.monotonic() + seconds
        while self.requests_in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        # a request given up on by its browser may still run in the server's one thread for
        # synchronous code: a no-op queued there returns once it has finished
        self.call(lambda: None)

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
        live.requests_in_flight += 1
        try:
            if gate is None:
                return await http(scope, receive, send)
            async with gate:
                return await http(scope, receive, send)
        finally:
            live.requests_in_flight -= 1

    live = LiveServer("", twisted_loop, gate)
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
    live.url = f"http://127.0.0.1:{port}"
    yield live
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
        # expect() has its own 5 s default: the same patience as the page's on a busy machine
        from playwright.sync_api import expect

        expect.set_options(timeout=WAIT_MS)
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
    live_server_e2e.settle()
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
    _open_popover(ana_page, "#transfer-popover")
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
    live_server_e2e: LiveServer, open_console: Any, settings: Any
) -> None:
    """The README's pictures, on the demo desk (``seed_demo``): the inbox, a conversation with its
    system lines, the phone view, the reports page. They go to docs/screenshots/ with
    UPDATE_SCREENSHOTS=1 (emoji need an emoji font, e.g. Debian's fonts-noto-color-emoji)."""
    from django.core.management import call_command
    from playwright.sync_api import expect

    from accounts.models import User

    settings.DEBUG = True  # seed_demo refuses to run without it
    call_command("seed_demo", verbosity=0)
    settings.DEBUG = False
    ana = User.objects.get(email="agente1@suporte.com")
    supervisor = User.objects.get(email="supervisor@suporte.com")
    for person in (ana, supervisor):
        person.set_password(DEFAULT_PASSWORD)
        person.save(update_fields=["password"])
    featured = Conversation.objects.get(customer__name="Carla Mendes")
    # a little more of a working day: the customer answers, Ana leaves a note for the team
    live_server_e2e.call(
        services.message_record_inbound,
        conversation=featured,
        body="Comprei no dia 12 e o prazo era de 5 dias úteis.",
        wa_message_id="wamid.shot-2",
    )
    live_server_e2e.call(
        services.conversation_note_create,
        conversation=featured,
        actor=ana,
        body="Pedido 48213 via transportadora Rápida; prazo vence amanhã.",
    )
    Message.objects.filter(conversation=featured, direction=Direction.OUT).update(status="read")
    live_server_e2e.call(services.conversation_mark_read, conversation=featured, actor=ana)

    target = (
        SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else Path(settings.BASE_DIR) / ".e2e"
    )
    target.mkdir(parents=True, exist_ok=True)
    desk = {"width": 1280, "height": 800}
    board = open_console(supervisor, "/?tab=all", language="pt-br", viewport=desk)
    expect(board.locator(".conversation-row")).to_have_count(3)  # bot, queue, open
    board.screenshot(path=str(target / "inbox.png"))

    page = open_console(ana, "/", language="pt-br", viewport=desk)
    page.locator(f'.conversation-row[data-conversation-id="{featured.pk}"]').click()
    expect(page.locator("#composer-body")).to_be_visible()
    expect(page.locator(".system-taken_over")).to_be_visible()  # a system line of the timeline
    page.locator("#composer-body").fill("Encontrei: a transportadora registrou")
    page.screenshot(path=str(target / "conversation.png"))

    phone = open_console(ana, f"/c/{featured.pk}/", language="pt-br", viewport=PHONE)
    expect(phone.locator(".system-taken_over")).to_be_visible()
    phone.screenshot(path=str(target / "phone.png"))

    reports = open_console(supervisor, "/reports/", language="pt-br", viewport=desk)
    expect(reports.locator(".chart-bars svg rect.bar")).not_to_have_count(0)
    reports.screenshot(path=str(target / "reports.png"), full_page=True)
    for name in ("inbox.png", "conversation.png", "phone.png", "reports.png"):
        size = (target / name).stat().st_size
        assert 10_000 < size < 400_000, (name, size)
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
    wide = page.evaluate(
        "() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect()"
        ".right > innerWidth + 1).slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)"
    )
    assert width <= PHONE["width"], (
        f"the page is {width} px wide in a {PHONE['width']} px screen: {wide}"
    )


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
    send = page.locator("#composer-send")
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
    _open_popover(page, "#transfer-popover")
    _no_horizontal_overflow(page)
    page.select_option("#t-user", str(carla.pk))
    page.fill("#t-note", "Cliente quer segunda via do boleto")
    # a supervisor raises the priority meanwhile: the header is drawn again live, and the form
    # stays open with the agent and the note chosen
    boss = UserFactory(name="Sofia Supervisora", email="sofia-phone@example.com", role="supervisor")
    live_server_e2e.call(
        organise.conversation_priority_set, conversation=conversation, actor=boss, priority="urgent"
    )
    expect(page.locator("#conversation-header .priority-urgent")).to_be_visible()
    expect(page.locator("#transfer-popover")).to_have_attribute("open", "")
    expect(page.locator("#t-user")).to_have_value(str(carla.pk))
    expect(page.locator("#t-note")).to_have_value("Cliente quer segunda via do boleto")
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
    send = page.locator("#composer-send")
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

    _open_popover(acting, "#transfer-popover")
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


# --- issue 14: several numbers, the bot's settings page, the composer's emoji, reply, react ---


def test_with_several_numbers_the_console_says_which_and_filters_by_it(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana-numbers@example.com", departments=[support])
    shop = WhatsAppAccountFactory(name="Loja Centro", display_phone_number="+55 11 4000-1000")
    billing = WhatsAppAccountFactory(name="Cobranças", display_phone_number="+55 11 4000-2000")
    at_shop = live_server_e2e.call(
        _customer_writes,
        account=shop,
        department=support,
        name="Cliente Loja",
        body="Quero trocar um produto",
        wa_id="5511987650401",
    )
    at_billing = live_server_e2e.call(
        _customer_writes,
        account=billing,
        department=support,
        name="Cliente Boleto",
        body="Meu boleto venceu",
        wa_id="5511987650402",
    )

    page = open_console(ana, "/?tab=queue")
    shop_row = page.locator(f'.conversation-row[data-conversation-id="{at_shop.pk}"]')
    billing_row = page.locator(f'.conversation-row[data-conversation-id="{at_billing.pk}"]')
    expect(shop_row.locator(".chip-number")).to_have_text("Loja Centro")
    expect(billing_row.locator(".chip-number")).to_have_text("Cobranças")

    # filtering by the number keeps only its conversations, and the address says so
    page.select_option("#f-number", str(billing.pk))
    expect(shop_row).to_have_count(0)
    expect(billing_row).to_be_visible()
    page.wait_for_url(f"**/?tab=queue&number={billing.pk}")

    # the conversation's header names the number it came through
    billing_row.click()
    expect(page.locator("#conversation-header .chip-number")).to_have_text(
        "via Cobranças · +55 11 4000-2000"
    )
    # a reload keeps the filter
    page.reload()
    expect(page.locator("#f-number")).to_have_value(str(billing.pk))
    expect(page.locator(".conversation-row")).to_have_count(1)


def test_the_bot_settings_page_in_pt_br(
    live_server_e2e: LiveServer, open_console: Any, settings: Any
) -> None:
    from playwright.sync_api import expect

    from botflows.models import BotConfiguration

    settings.OPENAI_API_KEY = ""  # no AI on this desk
    DepartmentFactory(name="Suporte")
    admin = UserFactory(name="Alice Admin", email="alice-bot@example.com", role="admin")
    page = open_console(admin, "/", language="pt-br")

    # the console's top bar leads to the bot's page
    page.locator(".topnav").get_by_role("link", name="Bot").click()
    page.wait_for_url("**/bot/")
    expect(page.locator(".topnav a[aria-current=page]")).to_have_text("Bot")
    # no live indicator stuck on "Conectando…": the page has no live updates
    expect(page.locator("#connection")).to_have_count(0)
    assert "Conectando" not in page.content()

    # fields of their kind, in Portuguese
    form = page.locator("#bot-settings-form")
    expect(form.locator("legend").first).to_have_text("Passagem para um atendente")
    expect(page.get_by_label("Respostas inválidas permitidas")).to_have_attribute("type", "number")
    ai = page.get_by_label("Responder texto livre com IA")
    expect(ai).to_be_disabled()
    expect(ai).not_to_be_checked()
    expect(page.locator("#field-ai_enabled")).to_contain_text("IA indisponível")
    assert "JSON" not in form.inner_text()

    # a wrong value is refused next to its field, in Portuguese, keeping what was typed
    page.get_by_label("Respostas inválidas permitidas").fill("99")
    page.get_by_label("Palavras que chamam um atendente").fill("gerente\nhumano")
    page.get_by_role("button", name="Salvar configurações").click()
    expect(page.locator("#field-max_invalid_attempts .field-error")).to_contain_text("20")
    expect(page.locator(".alert-error").first).to_contain_text("não foram salvas")
    expect(page.get_by_label("Palavras que chamam um atendente")).to_have_value("gerente\nhumano")
    assert not BotConfiguration.objects.exists()

    # fixed, it is saved
    page.get_by_label("Respostas inválidas permitidas").fill("4")
    page.get_by_label("Departamento das transferências").select_option("Suporte")
    page.get_by_role("button", name="Salvar configurações").click()
    expect(page.locator(".alert").first).to_contain_text("Configurações salvas.")
    stored = dict(BotConfiguration.objects.values_list("key", "value"))
    assert stored["max_invalid_attempts"] == 4
    assert stored["handoff_keywords"] == ["gerente", "humano"]
    assert stored["handoff_department"] == "Suporte"
    assert "ai_enabled" not in stored

    # and it fits a phone
    page.set_viewport_size(PHONE)
    _no_horizontal_overflow(page)


def _open_popover(page: Any, selector: str) -> Any:
    """Open the popover ``selector`` (a ``<details>``) by its summary, again if a live update
    drew it afresh while the click was on its way (as a person would), and return it."""
    from playwright.sync_api import expect

    details = page.locator(selector)
    for attempt in range(5):
        if details.get_attribute("open") is None:
            details.locator("summary").click()
        try:
            expect(details).to_have_attribute("open", "", timeout=2000)
            return details
        except AssertionError:
            if attempt == 4:
                raise
    return details


def _react(page: Any, message_pk: int, button: str) -> None:
    """Press ``button`` in a message's reaction picker. The reaction's own answer draws the
    message again: a picker opened just before it closes, and is opened again."""
    for attempt in range(5):
        picker = _open_popover(page, f"#message-{message_pk} .react-picker")
        try:
            picker.get_by_role("button", name=button).click(timeout=3000)
            return
        except Exception:
            if attempt == 4:
                raise


def test_composer_emoji_reply_with_a_quote_and_react(
    live_server_e2e: LiveServer, open_console: Any, fake_graph: Any
) -> None:
    from playwright.sync_api import expect

    from conversations.models import MessageReaction

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana-emoji@example.com", departments=[support])
    wa_id = "5511987650501"
    conversation = live_server_e2e.call(
        _customer_writes,
        account=fake_graph.account,
        department=support,
        name="Cliente Emoji",
        body="Qual o prazo de entrega?",
        wa_id=wa_id,
    )
    live_server_e2e.call(services.conversation_take_over, conversation=conversation, actor=ana)
    asked = Message.objects.get(conversation=conversation, direction=Direction.IN)

    page = open_console(ana, f"/c/{conversation.pk}/")
    composer = page.locator("#composer-body")

    # the emoji picker, by keyboard, puts the emoji where the caret is
    composer.fill("Bom dia")
    composer.evaluate("el => el.setSelectionRange(3, 3)")
    picker = page.locator("#emoji-picker")
    picker.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(picker.locator(".emoji-grid")).to_be_visible()
    page.keyboard.press("Tab")
    expect(picker.locator("[data-emoji]").first).to_be_focused()
    page.keyboard.press("Tab")  # the second one: 😂
    page.keyboard.press("Enter")
    expect(composer).to_have_value("Bom😂 dia")
    expect(composer).to_be_focused()
    expect(picker.locator(".emoji-grid")).to_be_hidden()
    # Escape closes it too, back on its button
    picker.locator("summary").click()
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")
    expect(picker.locator(".emoji-grid")).to_be_hidden()
    expect(picker.locator("summary")).to_be_focused()

    # reply with a quote: shown above the composer, can be cancelled
    customer_message = page.locator(f"#message-{asked.pk}")
    customer_message.get_by_role("button", name="Reply").click()
    preview = page.locator("#reply-preview")
    expect(preview).to_be_visible()
    expect(preview).to_contain_text("Qual o prazo de entrega?")
    page.locator("#reply-cancel").click()
    expect(preview).to_be_hidden()
    customer_message.get_by_role("button", name="Reply").click()
    composer.fill("Chega amanhã 😊")
    composer.press("Enter")

    reply = page.locator("#message-list .msg-out").last
    expect(reply).to_contain_text("Chega amanhã 😊")
    expect(reply.locator(".msg-quote")).to_have_text("Qual o prazo de entrega?")
    expect(page.locator("#reply-preview")).to_be_hidden()
    sent = Message.objects.get(conversation=conversation, direction=Direction.OUT)
    assert sent.reply_to_id == asked.pk
    delivered = _wait_for(
        lambda: [s for s in fake_graph.message_sends if s.get("type") == "text"], "the reply"
    )
    assert delivered[0]["context"] == {"message_id": f"wamid.{wa_id}"}

    # react to the customer's message
    _react(page, asked.pk, "❤️")
    expect(page.locator(f"#message-{asked.pk} .msg-reactions")).to_have_text("❤️")
    assert MessageReaction.objects.get(message=asked).emoji == "❤️"
    reaction = _wait_for(
        lambda: [s for s in fake_graph.message_sends if s.get("type") == "reaction"],
        "the reaction",
    )
    assert reaction[0]["reaction"] == {"message_id": f"wamid.{wa_id}", "emoji": "❤️"}

    # and take it back
    _react(page, asked.pk, "Remove ❤️")
    expect(page.locator(f"#message-{asked.pk} .msg-reactions")).to_have_count(0)
    assert not MessageReaction.objects.filter(message=asked).exists()


# --- The supervisors' reports page (issue 12 §3) --------------------------------------------


def test_the_reports_page_draws_filters_and_counts_live(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    sales = DepartmentFactory(name="Vendas")
    account = WhatsAppAccountFactory()
    live_server_e2e.call(
        _customer_writes,
        account=account,
        department=support,
        name="Rita",
        body="Oi, preciso de ajuda",
        wa_id="5511987650081",
    )
    supervisor = UserFactory(role="supervisor", name="Sofia")
    page = open_console(supervisor, "/reports/")
    waiting = page.locator('#live-counters [data-figure="waiting"] .figure-value')
    total = page.locator('[data-figure="total"] .figure-value')
    expect(waiting).to_have_text("1")
    expect(total).to_have_text("1")
    # The charts are inline SVG: today's bar is drawn, with its tooltip.
    bars = page.locator(".chart-bars svg rect.bar")
    expect(bars).to_have_count(1)
    # Drawn to scale: the bar of 1 conversation reaches the axis' "1" grid line (0 is the first).
    bar = bars.first.bounding_box()
    one = page.locator(".chart-bars svg line.grid").nth(1).bounding_box()
    assert bar["height"] > 10
    assert abs(bar["y"] - one["y"]) < 2
    assert "1 conversation" in bars.first.locator("title").text_content()

    # A filter: the URL keeps it, the figures follow.
    page.select_option("#id_department", str(sales.pk))
    page.click("#report-filters button[type=submit]")
    page.wait_for_url(f"**department={sales.pk}**")
    expect(total).to_have_text("0")
    expect(page.locator(".chart-bars")).to_contain_text("No data in this period.")
    expect(waiting).to_have_text("0")  # the live counters follow the department too
    page.reload()
    expect(page.locator("#id_department")).to_have_value(str(sales.pk))
    page.goto(live_server_e2e.url + "/reports/")
    page.wait_for_selector('#connection[data-state="online"]')
    expect(waiting).to_have_text("1")

    # A customer writes: "waiting now" moves without a reload.
    live_server_e2e.call(
        _customer_writes,
        account=account,
        department=support,
        name="Caio",
        body="Bom dia",
        wa_id="5511987650082",
    )
    expect(waiting).to_have_text("2")
    expect(page.locator('#live-counters [data-figure="today"] .figure-value')).to_have_text("2")
    assert page.evaluate("document.querySelectorAll('#live-counters').length") == 1

    # Printed: no top bar, no filters, no buttons; the figures and the charts stay.
    page.emulate_media(media="print")
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.locator("#report-filters")).to_be_hidden()
    expect(page.locator("#csv-download")).to_be_hidden()
    expect(page.locator(".chart-bars svg")).to_be_visible()
    expect(waiting).to_be_visible()
    page.emulate_media(media="screen")

    # On a phone: nothing wider than the screen; the tables scroll inside their box.
    phone = open_console(supervisor, "/reports/", viewport=PHONE)
    expect(phone.locator(".chart-bars svg rect.bar")).to_have_count(1)
    _no_horizontal_overflow(phone)
    box = phone.locator("#by-department .table-scroll").bounding_box()
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]

    # And it is reached on a phone too: the top bar's links are in the user's menu there.
    phone.goto(live_server_e2e.url + "/")
    expect(phone.locator(".topnav")).to_be_hidden()
    phone.locator(".usermenu summary").click()
    phone.locator(".menu-nav").get_by_role("link", name="Reports").click()
    phone.wait_for_url("**/reports/")
    expect(phone.locator(".chart-bars svg rect.bar")).to_have_count(1)


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


def test_a_supervisor_assigns_past_a_full_agents_capacity_only_when_saying_so(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    """Issue 13 §2: the transfer picker shows each agent's load; a transfer to a full agent is
    refused with the reason and an "Assign anyway" button, which does it and says so."""
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    sofia = UserFactory(role="supervisor", name="Sofia", email="sofia.cap@example.com")
    bia = UserFactory(
        name="Bia Cheia", email="bia.cap@example.com", departments=[support], max_conversations=1
    )
    account = WhatsAppAccountFactory()
    hers = _customer_writes(
        account=account, department=support, name="Dela", body="oi", wa_id="5511900000301"
    )
    live_server_e2e.call(services.conversation_take_over, conversation=hers, actor=bia)
    waiting = _customer_writes(
        account=account, department=support, name="Na Fila", body="olá", wa_id="5511900000302"
    )
    page = open_console(sofia, f"/c/{waiting.pk}/")

    _open_popover(page, "#transfer-popover")
    expect(page.locator(f'#t-user option[value="{bia.pk}"]')).to_have_text("Bia Cheia (1 of 1)")
    page.select_option("#t-user", str(bia.pk))
    page.locator("#transfer-popover button[type=submit]").click()

    alert = page.locator("#conversation-pane .alert-error")
    expect(alert).to_contain_text("Bia Cheia already has 1 open conversation,")
    assert Conversation.objects.get(pk=waiting.pk).assigned_to_id is None
    alert.get_by_role("button", name="Assign anyway").click()
    expect(page.locator("#message-list")).to_contain_text(
        "Past the agent's capacity, by a supervisor's decision."
    )
    expect(page.locator("#conversation-header")).to_contain_text("with Bia Cheia")
    assert Conversation.objects.get(pk=waiting.pk).assigned_to_id == bia.pk


def test_an_agent_goes_away_and_back_and_gets_what_waited(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    """Issue 13 §2: the availability switch in the top bar; a round-robin queue keeps a
    customer waiting while its only agent is away, and gives it to her when she is back."""
    from playwright.sync_api import expect

    from departments.models import AssignmentMode

    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.ROUND_ROBIN)
    ana = UserFactory(name="Ana Agente", email="ana-away@example.com", departments=[support])
    account = WhatsAppAccountFactory()
    page = open_console(ana, "/?tab=inbox")
    switch = page.locator("#availability")
    expect(switch).to_have_attribute("data-availability", "available")

    page.locator("#availability button").click()
    expect(switch).to_have_attribute("data-availability", "away")
    expect(switch).to_contain_text("Away")
    _wait_for(lambda: type(ana).objects.filter(pk=ana.pk, availability="away").exists(), "away")
    conversation = live_server_e2e.call(
        _customer_writes,
        account=account,
        department=support,
        name="Cliente Espera",
        body="Preciso de ajuda",
        wa_id="5511987650077",
    )
    row = page.locator(f'.conversation-row[data-conversation-id="{conversation.pk}"]')
    expect(row).to_be_visible()  # in the queue, nobody's
    assert Conversation.objects.get(pk=conversation.pk).assigned_to_id is None

    page.locator("#availability button").click()
    expect(switch).to_have_attribute("data-availability", "available")
    _wait_for(
        lambda: Conversation.objects.filter(pk=conversation.pk, assigned_to=ana).exists(),
        "automatic assignment",
    )
    row.click()
    expect(page.locator(".system-assigned").last).to_contain_text(
        "Assigned automatically to Ana Agente"
    )


def test_slash_opens_the_quick_replies_and_the_keyboard_inserts_one_filled_in(
    live_server_e2e: LiveServer, open_console: Any
) -> None:
    """Typing "/" opens the list (ARIA listbox), what follows filters it, arrows move, Enter
    inserts the reply with the customer's name filled in (and does not send), Escape closes it;
    the "/" button and a click do the same; the header's name opens the contact's page."""
    from playwright.sync_api import expect

    from conversations.models import QuickReply

    # given: Ana has a customer's conversation, a shared reply, a department's and her own
    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana.quick@example.com", departments=[support])
    conversation = _customer_writes(
        account=WhatsAppAccountFactory(),
        department=support,
        name="Joana <b>Dias</b>",
        body="oi",
        wa_id="5511900000201",
    )
    live_server_e2e.call(services.conversation_take_over, conversation=conversation, actor=ana)
    greeting = QuickReply.objects.create(
        shortcut="ola", title="Saudação", body="Olá {{nome}}, aqui é {{agente}}."
    )
    deadline = QuickReply.objects.create(
        shortcut="prazo",
        title="Prazo",
        body="Entregamos em 3 dias (protocolo {{protocolo}}).",
        department=support,
    )
    QuickReply.objects.create(shortcut="obrigado", title="Obrigado", body="Obrigado!", owner=ana)
    page = open_console(ana, f"/c/{conversation.pk}/")
    body = page.locator("#composer-body")
    popup = page.locator("#quick-reply-popup")
    options = page.locator("#quick-reply-list [role=option]:visible")

    # when: "/" at the start opens the whole list, "pr" filters it, Escape closes it
    body.click()
    body.press_sequentially("/")
    expect(popup).to_be_visible()
    expect(page.locator("#quick-reply-list")).to_have_attribute("role", "listbox")
    expect(options).to_have_count(3)
    body.press_sequentially("pr")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("/prazo · Prazo")
    body.press("Escape")
    expect(popup).to_be_hidden()
    expect(body).to_have_value("/pr")

    # after a space, arrows down to the greeting, Enter inserts it in place of "/"
    body.fill("")
    body.press_sequentially("Oi! /")
    expect(options).to_have_count(3)  # by title: Obrigado, Prazo, Saudação
    body.press("ArrowDown")
    body.press("ArrowDown")
    expect(page.locator(f"#quick-reply-{greeting.pk}")).to_have_attribute("aria-selected", "true")
    expect(body).to_have_attribute("aria-activedescendant", f"quick-reply-{greeting.pk}")
    body.press("ArrowDown")  # wraps around to the first
    body.press("ArrowUp")
    body.press("Enter")
    expect(popup).to_be_hidden()
    expect(body).to_have_value("Oi! Olá Joana <b>Dias</b>, aqui é Ana Agente.")
    assert not Message.objects.filter(conversation=conversation, direction=Direction.OUT).exists()

    # then Enter with the list closed sends it, as text
    body.press("Enter")
    expect(page.locator("#message-list .msg").last).to_contain_text(
        "Oi! Olá Joana <b>Dias</b>, aqui é Ana Agente."
    )

    # (the send's answer has redrawn the pane, its composer empty)
    _wait_for(
        lambda: page.evaluate(
            "() => !document.querySelector('.htmx-request')"
            " && document.getElementById('composer-body').value === ''"
        ),
        "the pane redrawn after the send",
    )
    # the "/" button and a click insert one too (the protocol is the conversation's number)
    page.locator("#quick-reply-button").click()
    expect(popup).to_be_visible()
    page.locator(f"#quick-reply-{deadline.pk}").click()
    expect(page.locator("#composer-body")).to_have_value(
        f"Entregamos em 3 dias (protocolo {conversation.pk})."
    )
    # and Tab inserts the highlighted one
    page.locator("#composer-body").fill("")
    page.locator("#composer-body").press_sequentially("/obr")
    page.locator("#composer-body").press("Tab")
    expect(page.locator("#composer-body")).to_have_value("Obrigado!")

    # the customer's name in the header opens the contact's page
    page.locator("#conversation-header .contact-link").click()
    page.wait_for_url(f"**/contacts/{conversation.customer_id}/")
    expect(page.locator("#contact-title")).to_have_text("Joana <b>Dias</b>")


def test_the_contacts_pages_on_a_phone(live_server_e2e: LiveServer, open_console: Any) -> None:
    """390x844 in Portuguese: the list, a search, the contact's page with its conversations,
    notes saved, tags applied; nothing wider than the screen."""
    from playwright.sync_api import expect

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana.contacts@example.com", departments=[support])
    account = WhatsAppAccountFactory()
    vip = Tag.objects.create(name="Cliente muito importante de longa data", color="#dc2626")
    conversation = _customer_writes(
        account=account,
        department=support,
        name="Maria Aparecida dos Santos Oliveira Pereira da Silva",
        body="oi",
        wa_id="5511900000301",
    )
    for n in range(3):
        _customer_writes(
            account=account, department=support, name=f"Outro {n}", body="oi", wa_id=f"55119004{n}"
        )

    page = open_console(ana, "/", language="pt-br", viewport=PHONE)
    page.goto(f"{live_server_e2e.url}/contacts/")
    rows = page.locator(".contact-row")
    expect(rows).to_have_count(4)
    _no_horizontal_overflow(page)
    page.fill("#contact-q", "aparecida")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=aparecida"))
    page.fill("#contact-q", "ninguém mesmo")
    expect(page.locator(".contact-list .empty-state")).to_contain_text("Nenhum contato")
    page.fill("#contact-q", "")
    expect(rows).to_have_count(4)

    page.locator(f'.contact-row[data-contact-id="{conversation.customer_id}"]').click()
    page.wait_for_url(f"**/contacts/{conversation.customer_id}/")
    expect(page.locator("#contact-conversations a")).to_have_count(1)
    _no_horizontal_overflow(page)
    page.fill("#contact-notes", "Prefere <b>WhatsApp</b> à tarde")
    page.click("#contact-form button[type=submit]")
    expect(page.locator("#contact-form [role=status]")).to_have_text("Salvo.")
    expect(page.locator("#contact-notes")).to_have_value("Prefere <b>WhatsApp</b> à tarde")
    page.check(f'#contact-tags input[value="{vip.pk}"]')
    _reachable(page, "#contact-tags button[type=submit]")
    page.click("#contact-tags button[type=submit]")
    expect(page.locator("#contact-tags .current-tags .chip-tag")).to_have_text(vip.name)
    _no_horizontal_overflow(page)
    # its conversation opens in the console
    page.locator("#contact-conversations a").first.click()
    page.wait_for_url(f"**/c/{conversation.pk}/")
    expect(page.locator("#conversation-header")).to_be_visible()


BOLETO_COMPONENTS = [
    {"type": "HEADER", "format": "DOCUMENT"},
    {"type": "BODY", "text": "Olá {{1}}, seu boleto de {{2}} está anexo."},
    {
        "type": "BUTTONS",
        "buttons": [{"type": "URL", "text": "Pagar", "url": "https://loja.example.com/p/{{1}}"}],
    },
]


def test_a_new_conversation_from_a_phone(
    live_server_e2e: LiveServer, open_console: Any, fake_graph: Any
) -> None:
    """390x844 in Portuguese: "Nova conversa" -> the form -> a boleto template with its PDF, body
    and button fields -> the new conversation opens, and the template reached the Graph API."""
    from playwright.sync_api import expect

    from whatsapp.models import MessageTemplate

    support = DepartmentFactory(name="Suporte")
    ana = UserFactory(name="Ana Agente", email="ana-new@example.com", departments=[support])
    welcome = MessageTemplate.objects.create(
        account=fake_graph.account,
        name="boas_vindas",
        language="pt_BR",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Olá {{1}}!"}],
    )
    boleto = MessageTemplate.objects.create(
        account=fake_graph.account,
        name="boleto",
        language="pt_BR",
        status="APPROVED",
        components=BOLETO_COMPONENTS,
    )

    page = open_console(ana, "/", viewport=PHONE, language="pt-br")
    page.locator("#new-conversation").click()
    form = page.locator("#new-conversation-form")
    expect(form).to_be_visible()
    expect(page.locator(".conversation-list")).to_be_hidden()  # the form has the whole screen
    expect(page.locator(".pane-title")).to_have_text("Nova conversa")
    page.wait_for_url("**/new/")
    _no_horizontal_overflow(page)

    page.fill("#new-phone", "+55 11 98765-4321")
    page.fill("#new-name", "Maria Souza")
    # choosing the boleto shows its fields and hides (and disables) the other template's
    expect(page.locator(f'[data-template-fields="{welcome.pk}"]')).to_be_visible()
    page.select_option("#new-tpl", str(boleto.pk))
    fields = page.locator(f'[data-template-fields="{boleto.pk}"]')
    expect(fields).to_be_visible()
    expect(page.locator(f'[data-template-fields="{welcome.pk}"]')).to_be_hidden()
    fields.locator("input[name=header_file]").set_input_files(
        {"name": "boleto.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 boleto"}
    )
    body = fields.locator("input[name=body]")
    body.nth(0).fill("Maria")
    body.nth(1).fill("R$ 129,90")
    fields.locator("input[name=button_0]").fill("abc123")
    _no_horizontal_overflow(page)
    send = page.locator("#new-conversation-send")
    send.scroll_into_view_if_needed()
    _reachable(page, "#new-conversation-send")
    send.click()

    # the new conversation opens, assigned to Ana, with the template in its timeline
    expect(page.locator("#message-list")).to_contain_text("seu boleto de R$ 129,90 está anexo")
    conversation = _wait_for(
        lambda: Conversation.objects.filter(customer__wa_id="5511987654321").first(),
        "conversation",
    )
    page.wait_for_url(f"**/c/{conversation.pk}/")
    expect(page.locator("#conversation-header")).to_contain_text("Maria Souza")
    assert conversation.assigned_to_id == ana.pk
    sent = _wait_for(lambda: fake_graph.message_sends, "template sent")
    assert sent[0]["to"] == "5511987654321"
    header = sent[0]["template"]["components"][0]["parameters"][0]
    assert header["document"]["filename"] == "boleto.pdf"
    assert header["document"]["id"] == fake_graph.uploads[0]["id"]
    _no_horizontal_overflow(page)

    # a number that is not one is explained in the form, on the phone too
    page.locator(".back-link").click()
    page.locator("#new-conversation").click()
    page.fill("#new-phone", "123")
    page.locator(f'[data-template-fields="{welcome.pk}"] input[name=body]').fill("Rita")
    page.locator("#new-conversation-send").click()
    expect(page.locator("#new-conversation-form .alert-error")).to_contain_text(
        "não é um número de WhatsApp"
    )
    expect(page.locator("#new-phone")).to_have_value("123")
    _no_horizontal_overflow(page)
