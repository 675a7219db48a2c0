"""``manage.py reports_rebuild`` recomputes from the stored history what the live handler
recorded: the same figures, the same segments; CSAT answers already stored are kept."""

import io
from typing import Any

import pytest
from django.core.management import call_command

from conversations.events import CsatReceived
from conversations.models import Conversation
from conversations.serializers import conversation_payload
from conversations.tests.factories import CustomerFactory
from reports.models import ConversationMetrics, DailyAgentRollup, DailyRollup, Segment
from reports.services import segments_record
from supportdesk.tests.api_support import api_env, bearer

from .scenario import live_the_scenario

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

STATS = "/api/v1/conversations/stats?from=2026-11-23&to=2026-11-23"
CSV = "/api/v1/reports/conversations.csv?from=2026-11-23&to=2026-11-23"


def figures(user: Any) -> tuple[Any, ...]:
    client = bearer(user)
    return (
        client.get(STATS).json(),
        client.get(f"{STATS}&business_hours=true&bucket=hour").json(),
        b"".join(client.get(CSV).streaming_content),
        b"".join(client.get(f"{CSV}&business_hours=true").streaming_content),
    )


def segments() -> list[tuple[Any, ...]]:
    return list(
        Segment.objects.order_by("conversation", "started_at").values_list(
            "conversation",
            "kind",
            "agent",
            "department",
            "started_at",
            "ended_at",
            "ended_by",
            "first_reply_at",
            "messages_in",
            "messages_out",
            "seconds",
            "business_seconds",
            "first_reply_seconds",
            "business_first_reply_seconds",
        )
    )


def test_the_rebuild_gives_what_the_live_handler_gave(
    lived: Conversation, supervisor: Any, support: Any, agent: Any, agent_b: Any
) -> None:
    # given a second conversation, and a CSAT answer stored on the first
    other = CustomerFactory(name="Maria")
    live_the_scenario(customer=other, department=support, agent_a=agent_b, agent_b=agent)
    segments_record(
        events=[
            CsatReceived(
                conversation=conversation_payload(lived), csat={"score": 4, "comment": "Boa"}
            )
        ]
    )
    live, live_segments = figures(supervisor), segments()
    assert live[0]["csat"]["average"] == 4.0
    # when the reports' rows are lost and rebuilt, one conversation per transaction
    Segment.objects.all().delete()
    DailyRollup.objects.all().delete()
    DailyAgentRollup.objects.all().delete()
    ConversationMetrics.objects.filter(pk=other.conversations.get().pk).delete()
    out = io.StringIO()
    call_command("reports_rebuild", "--chunk-size", "1", stdout=out)
    # then
    assert out.getvalue().splitlines() == [
        "1/2 conversations",
        "2/2 conversations",
        "Rebuilt the figures of 2 conversations.",
    ]
    assert segments() == live_segments
    assert figures(supervisor) == live
    assert ConversationMetrics.objects.get(pk=lived.pk).csat_comment == "Boa"


def test_rebuilding_one_conversation_leaves_the_others(lived: Conversation) -> None:
    before = segments()
    call_command("reports_rebuild", "--conversation", str(lived.pk), stdout=io.StringIO())
    assert segments() == before
