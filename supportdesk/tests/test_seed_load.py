"""``manage.py seed_load`` on a small desk: what it makes is consistent (the fields the services
keep, one conversation in progress per customer), the search finds it, and it refuses a database
with real data unless told ``--i-know``."""

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Max, Min, Q

from conversations.models import Conversation, ConversationEvent, Customer, Message
from conversations.tests.factories import ConversationFactory, CustomerFactory

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_load", *args, stdout=out)
    return out.getvalue()


def test_a_small_desk_is_consistent() -> None:
    out = seed(
        "--conversations", "60", "--messages-per", "6", "--agents", "4", "--chunk-size", "25"
    )
    assert "60/60 conversations" in out and "Loaded 60 conversations, 360 messages" in out
    assert Conversation.objects.count() == 60
    assert Message.objects.count() == 360
    assert Customer.objects.count() == 36
    rows = Conversation.objects.annotate(
        last=Max("messages__created_at"),
        last_in=Max("messages__created_at", filter=Q(messages__direction="in")),
        first_agent=Min("messages__created_at", filter=Q(messages__sender="agent")),
    )
    for row in rows:
        if row.status == "closed":
            assert row.closed_at is not None and row.last_message_at == row.closed_at
            assert row.unread_count == 0
        else:
            assert row.closed_at is None and row.last_message_at == row.last
        assert row.last_inbound_at == row.last_in
        assert row.first_response_at == row.first_agent
        assert (row.assigned_to_id is not None) == (row.status in {"open", "closed"})
    # one conversation in progress per customer (the database's constraint held it too)
    busy = Conversation.objects.exclude(status="closed").values("customer").annotate(n=Count("pk"))
    assert all(row["n"] == 1 for row in busy)
    assert (
        ConversationEvent.objects.filter(kind="closed").count()
        == rows.filter(status="closed").count()
    )


def test_it_refuses_a_database_with_real_data() -> None:
    ConversationFactory(customer=CustomerFactory(name="Cliente de verdade"))
    with pytest.raises(CommandError, match="--i-know"):
        seed("--conversations", "5")
    assert Conversation.objects.count() == 1
    seed("--conversations", "5", "--i-know")
    assert Conversation.objects.count() == 6


def test_it_runs_again_on_its_own_rows(settings: Any) -> None:
    seed("--conversations", "10", "--messages-per", "3")
    seed("--conversations", "10", "--messages-per", "3")  # its own rows are no real data
    assert Conversation.objects.count() == 20
    assert Customer.objects.count() == 12
