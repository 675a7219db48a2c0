"""End to end: an admin changes the bot's menu in the console editor (headless Chromium), publishes,
and the next customer writing through Meta's signed webhook gets the new menu (fake Graph API);
and creates a flow on /bot/ and deletes it from its editor.

The editor needs no WebSocket, so this runs on pytest-django's live server (a threaded WSGI
server sharing the test database) rather than the daphne server of the console tests, whose
Twisted reactor can run only once per process. It is started here, per module, after plain-HTTP
settings are in place (the security middleware reads them when the server builds its handler).
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import override_settings

from accounts.tests.factories import DEFAULT_PASSWORD
from botflows.models import Flow, FlowVersion
from conversations.models import Conversation, ConversationStatus
from whatsapp.services import sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
WAIT_MS = 10_000
WA_ID = "5511987650077"


@pytest.fixture(scope="module")
def live_server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Any]:
    from pytest_django.live_server_helper import LiveServer

    # Plain HTTP on 127.0.0.1: no HTTPS redirect, cookies without the Secure flag.
    overrides = override_settings(
        SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False
    )
    overrides.enable()
    server = LiveServer("127.0.0.1:0")
    yield server
    server.stop()
    overrides.disable()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not executable:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an event loop running in this thread, which Django's ORM guard
    # takes for an async context; the test's own ORM calls are plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def admin_page(chromium, live_server, admin_user) -> Iterator[Any]:
    """The admin, logged in through the console's form, in a browser context of their own."""
    context = chromium.new_context(locale="en-US")
    context.add_cookies([{"name": "django_language", "value": "en", "url": live_server.url}])
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.set_default_timeout(WAIT_MS)
    # expect() has its own 5 s default: the same patience as the page's on a busy machine
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page.goto(f"{live_server.url}/bot/")  # the login form, then back to the bot's page
    page.fill("input[name=username]", admin_user.email)
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/bot/")
    yield page
    context.close()
    assert problems == [], problems  # no script error, nothing refused by the CSP


def _webhook(live_server, signed_webhook, fake_graph, body: str) -> None:
    payload, headers = signed_webhook(
        sandbox.text_delivery(
            wa_id=WA_ID, name="Maria", body=body, phone_number_id=fake_graph.phone_number_id
        )
    )
    response = requests.post(
        f"{live_server.url}/api/v1/webhooks/whatsapp",
        data=payload,
        headers={**headers, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_admin_adds_a_menu_option_publishes_and_the_next_customer_gets_it(
    admin_page, live_server, demo_flow, fake_graph, signed_webhook
) -> None:
    from playwright.sync_api import expect

    page = admin_page
    page.goto(f"{live_server.url}/bot/")
    page.get_by_role("link", name="Edit nodes").click()
    expect(page.locator("#flow-editor h2")).to_contain_text("Main menu")
    menu = page.locator("article.flow-node", has=page.locator("h4", has_text="menu"))

    # when: the admin adds a fourth option that reaches a person...
    menu.get_by_role("link", name="Add option").click()
    form = page.get_by_role("form", name="New option of menu")
    form.get_by_label("Title").fill("Talk to a person")
    form.get_by_label("Action").select_option(label="Human")
    form.get_by_role("button", name="Add option").click()
    expect(page.locator("#flow-editor")).to_contain_text("Option 4 added to menu.")

    # ...removes Financeiro (after confirming) and publishes
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="Financeiro").get_by_role("button", name="Delete").click()
    expect(page.locator("#flow-editor")).to_contain_text("Option “Financeiro” deleted.")
    options = page.locator("table.menu-options tbody tr")
    expect(options).to_have_count(3)
    expect(options.nth(2)).to_contain_text("Talk to a person")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#flow-editor")).to_contain_text("version 2 is live for new conversations")
    assert FlowVersion.objects.filter(flow=demo_flow).count() == 2

    # then: a customer writing now gets the new menu through the Graph API...
    _webhook(live_server, signed_webhook, fake_graph, "Oi")
    greeting, menu_sent = fake_graph.message_sends[-2:]
    assert greeting["text"]["body"] == "Hello! Welcome to our customer service."
    buttons = menu_sent["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Suporte", "Vendas", "Talk to a person"]

    # ...and typing its number reaches the human queue
    _webhook(live_server, signed_webhook, fake_graph, "3")
    conversation = Conversation.objects.get(customer__wa_id=WA_ID)
    assert conversation.status == ConversationStatus.PENDING


def test_admin_creates_a_flow_from_the_bot_page_and_deletes_it_from_its_editor(
    admin_page, live_server, demo_flow
) -> None:
    from playwright.sync_api import expect

    page = admin_page
    page.goto(f"{live_server.url}/bot/")

    # a new flow (htmx form) opens in its editor
    form = page.get_by_role("form", name="New flow")
    form.get_by_label("Name").fill("Natal")
    form.get_by_role("button", name="Create flow").click()
    page.wait_for_url("**/bot/flows/*/")
    expect(page.locator("#flow-editor h2")).to_contain_text("Natal")
    expect(page.locator("#flow-editor")).to_contain_text("Flow Natal created: add its first node.")

    # deleting it (after confirming) goes back to the bot's page
    page.get_by_text("Flow settings", exact=True).click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete flow").click()
    page.wait_for_url("**/bot/")
    expect(page.locator("#bot-settings")).to_contain_text("Flow Natal deleted.")
    assert list(Flow.objects.values_list("name", flat=True)) == ["Main menu"]
