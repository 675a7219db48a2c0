"""End to end: the supervisors' board in Chromium follows the desk live (contract §6, issue 12)."""

from typing import Any

import pytest

from accounts.tests.factories import UserFactory
from conversations import services
from conversations.tests.factories import CustomerFactory
from conversations.tests.test_e2e_console import (  # noqa: F401 - fixtures
    LiveServer,
    browser,
    live_server_e2e,
    open_console,
)
from departments.tests.factories import DepartmentFactory
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_board_counts_move_live_and_show_conversations_with_no_department(
    live_server_e2e: LiveServer,  # noqa: F811 - the console tests' fixture
    open_console: Any,  # noqa: F811
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
