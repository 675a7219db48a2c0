"""What the stats read on the roll-ups and segments instead of joining or distinct-counting
(migration 0003): the conversation's status on its roll-up, kept through every change of state
by the live handler and restored by the rebuild; each agent's first segment in a conversation."""

import io
from typing import Any

import pytest
from django.core.management import call_command

from accounts.tests.factories import UserFactory
from conversations import services
from conversations.models import Conversation
from conversations.tests.factories import CustomerFactory
from reports.models import ConversationMetrics, Segment, SegmentKind
from whatsapp.tests.factories import WhatsAppAccountFactory

pytestmark = pytest.mark.django_db


def status_kept(conversation: Conversation) -> str:
    """The roll-up's status, after checking it is the conversation's."""
    conversation.refresh_from_db()
    kept = ConversationMetrics.objects.get(pk=conversation.pk).status
    assert kept == conversation.status
    return kept


def test_the_status_follows_every_change_of_state(
    support: Any, sales: Any, agent: Any, supervisor: Any
) -> None:
    c, _ = services.conversation_open_for_customer(
        customer=CustomerFactory(), whatsapp_account_id=WhatsAppAccountFactory().pk
    )
    services.message_record_inbound(conversation=c, body="oi")
    assert status_kept(c) == "bot"
    services.conversation_route_to_department(conversation=c, department=support)
    assert status_kept(c) == "pending"
    services.conversation_take_over(conversation=c, actor=agent)
    assert status_kept(c) == "open"
    services.message_create_outbound(conversation=c, actor=agent, body="Olá")  # no change
    assert status_kept(c) == "open"
    services.conversation_transfer(conversation=c, actor=agent, to_department=sales)
    assert status_kept(c) == "pending"
    seller = UserFactory(role="agent", name="Vera Vendas", departments=[sales])
    services.conversation_assign(conversation=c, actor=supervisor, to_user=seller)
    assert status_kept(c) == "open"
    services.conversation_close(conversation=c, actor=seller)
    assert status_kept(c) == "closed"
    services.conversation_reopen(conversation=c, actor=seller)
    assert status_kept(c) == "open"
    services.conversation_close(conversation=c, actor=seller)
    assert status_kept(c) == "closed"


def test_each_agent_s_first_segment_is_marked(
    lived: Conversation, agent: Any, agent_b: Any
) -> None:
    # the scenario: A, then B (transferred), closed, reopened back to B
    firsts = list(
        Segment.objects.filter(kind=SegmentKind.AGENT)
        .order_by("started_at")
        .values_list("agent", "agent_first")
    )
    assert firsts == [(agent.pk, True), (agent_b.pk, True), (agent_b.pk, False)]
    assert not Segment.objects.exclude(kind=SegmentKind.AGENT).filter(agent_first=True).exists()


def test_the_rebuild_restores_the_status_and_the_first_segments(lived: Conversation) -> None:
    # given rows gone wrong
    before = list(Segment.objects.order_by("started_at").values_list("kind", "agent_first"))
    ConversationMetrics.objects.filter(pk=lived.pk).update(status="bot")
    Segment.objects.update(agent_first=False)
    # when
    call_command("reports_rebuild", stdout=io.StringIO())
    # then
    assert status_kept(lived) == "closed"
    after = list(Segment.objects.order_by("started_at").values_list("kind", "agent_first"))
    assert after == before


def test_the_migration_fills_what_the_timeline_would_have_set(lived: Conversation) -> None:
    """0003's data steps, on rows from before it (status "bot", no first segment marked)."""
    from importlib import import_module

    from django.db import connection

    migration = import_module("reports.migrations.0003_stats_columns")
    before = list(Segment.objects.order_by("started_at").values_list("kind", "agent_first"))
    ConversationMetrics.objects.update(status="bot")
    Segment.objects.update(agent_first=False)
    with connection.cursor() as cursor:
        cursor.execute(migration.FILL)
        cursor.execute(migration.FILL_AGENT_FIRST)
    assert status_kept(lived) == "closed"
    assert list(Segment.objects.order_by("started_at").values_list("kind", "agent_first")) == before
