from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone, translation

from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory


@pytest.fixture(autouse=True)
def _english():
    """Assertions read Meta's and our messages in English (the desk ships pt-BR too)."""
    with translation.override("en"):
        yield


def open_conversation(
    fake_graph: Any,
    agent: Any,
    support: Any,
    *,
    inbound_ago: timedelta = timedelta(hours=1),
    **fields: Any,
) -> Any:
    """Support's conversation on the fake Graph API's number, assigned to ``agent``, whose last
    customer message was ``inbound_ago`` (within the 24-hour window by default)."""
    if "customer" not in fields:
        fields.setdefault("customer__wa_id", "5511987650002")
    return ConversationFactory(
        whatsapp_account=fake_graph.account,
        department=support,
        assigned_to=agent,
        status=ConversationStatus.OPEN,
        last_inbound_at=timezone.now() - inbound_ago,
        **fields,
    )


@pytest.fixture
def conversation(fake_graph: Any, agent: Any, support: Any) -> Any:
    return open_conversation(fake_graph, agent, support)
