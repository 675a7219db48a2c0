"""``SegmentRecorder``: registered, cheap for a batch of messages, committed or rolled back with
the change, and tolerant of conversations from before the reports (no rows yet)."""

from typing import Any

import pytest
from django.conf import settings
from django.db import transaction

from conversations import services
from conversations.events import MessageCreated
from conversations.serializers import conversation_payload, message_payload
from conversations.tests.factories import ConversationFactory, MessageFactory
from reports.models import ConversationMetrics, Segment, SegmentKind
from reports.services import segments_record

pytestmark = pytest.mark.django_db


def test_the_recorder_is_a_registered_handler() -> None:
    assert "reports.handlers.SegmentRecorder" in settings.DOMAIN_EVENT_HANDLERS


def _inbound_events(count: int, conversations: list[Any]) -> list[MessageCreated]:
    out = []
    for n in range(count):
        c = conversations[n % len(conversations)]
        message = MessageFactory(conversation=c)
        out.append(
            MessageCreated(conversation=conversation_payload(c), message=message_payload(message))
        )
    return out


def test_a_batch_of_messages_is_two_updates_whatever_its_size(
    support: Any, agent: Any, django_assert_num_queries: Any
) -> None:
    conversations = [ConversationFactory(department=support) for _ in range(3)]
    for c in conversations:
        services.conversation_take_over(conversation=c, actor=agent)
    for count in (5, 50):
        events = _inbound_events(count, conversations)
        with django_assert_num_queries(2):  # the open segments, the roll-ups
            segments_record(events=events)
    counts = sorted(ConversationMetrics.objects.values_list("messages_in", flat=True))
    assert counts == [1 + 16, 2 + 17, 2 + 17]
    assert sum(Segment.objects.values_list("messages_in", flat=True)) == 55


def test_the_segments_roll_back_with_the_change(support: Any, agent: Any) -> None:
    conversation = ConversationFactory(department=support)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.conversation_take_over(conversation=conversation, actor=agent)
        raise RuntimeError
    assert not Segment.objects.exists()
    assert not ConversationMetrics.objects.exists()


def test_a_conversation_from_before_the_reports_starts_its_rows_on_its_next_change(
    support: Any, agent: Any
) -> None:
    conversation = ConversationFactory(department=support)
    services.message_record_inbound(
        conversation=conversation, body="oi"
    )  # no rows: counted nowhere
    services.conversation_take_over(conversation=conversation, actor=agent)
    services.message_create_outbound(conversation=conversation, actor=agent, body="Olá")
    metrics = ConversationMetrics.objects.get(pk=conversation.pk)
    assert metrics.opened_at == conversation.created_at
    assert (metrics.agents, metrics.messages_out, metrics.department_id) == (
        [agent.pk],
        1,
        support.pk,
    )
    (segment,) = Segment.objects.all()
    assert (segment.kind, segment.agent_id, segment.ended_at) == (SegmentKind.AGENT, agent.pk, None)
    assert segment.first_reply_at is not None
