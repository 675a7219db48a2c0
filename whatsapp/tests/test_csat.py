"""Customer satisfaction over WhatsApp: the survey goes out through the fake Graph API when an
agent's conversation is closed, and the customer's replies come back as real signed webhooks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import services
from conversations.events import CsatReceived
from conversations.models import Conversation, ConversationStatus, CsatStatus, CsatSurvey
from supportdesk.tests.api_support import api_env  # noqa: F401 - fixture
from whatsapp.services import sandbox as wa
from whatsapp.services.inbound import webhook_event_process
from whatsapp.services.intake import webhook_receive
from whatsapp.tests.conftest import open_conversation
from whatsapp.tests.fake_graph import signed_webhook

pytestmark = pytest.mark.django_db(transaction=True)

MARIA = "5511987650002"


def reply(message: dict) -> None:
    """The customer's message as Meta delivers it: signed, stored, processed."""
    body, headers = signed_webhook(
        wa.delivery(contacts=[wa.contact(wa_id=MARIA, name="Maria")], messages=[message])
    )
    event = webhook_receive(raw_body=body, signature=headers["X-Hub-Signature-256"])
    webhook_event_process(event_id=event.pk)


def tap(score: int) -> dict:
    return wa.message(
        wa_id=MARIA,
        type="interactive",
        content={"type": "list_reply", "list_reply": {"id": f"csat:{score}", "title": "x"}},
    )


def text(body: str) -> dict:
    return wa.message(wa_id=MARIA, content={"body": body})


@pytest.fixture
def received(settings):
    """Every ``csat.received`` event dispatched (a handler of our own, from settings)."""
    seen.clear()
    settings.DOMAIN_EVENT_HANDLERS = [*settings.DOMAIN_EVENT_HANDLERS, f"{__name__}.Recorder"]
    return seen


seen: list[CsatReceived] = []


class Recorder:
    def on_commit(self, events):
        seen.extend(e for e in events if isinstance(e, CsatReceived))


def test_closing_asks_for_a_score_then_a_comment_credited_to_the_agent(
    fake_graph, agent, support, received
):
    conversation = open_conversation(fake_graph, agent, support)

    services.conversation_close(conversation=conversation, actor=agent)

    question = fake_graph.message_sends[-1]
    assert question["type"] == "interactive"
    rows = question["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == ["csat:5", "csat:4", "csat:3", "csat:2", "csat:1"]
    assert question["interactive"]["body"]["text"] == "How would you rate our service?"

    reply(tap(4))

    survey = CsatSurvey.objects.get(conversation=conversation)
    assert (survey.score, survey.agent, survey.status) == (4, agent, CsatStatus.AWAITING_COMMENT)
    assert "comment" in fake_graph.message_sends[-1]["text"]["body"]
    assert [e.csat["score"] for e in received] == [4]
    assert received[0].csat["agent"] == {"id": agent.pk, "name": agent.name}

    reply(text("Atendimento excelente, obrigada!"))

    survey.refresh_from_db()
    assert (survey.comment, survey.status) == ("Atendimento excelente, obrigada!", "completed")
    assert fake_graph.message_sends[-1]["text"]["body"] == "Thank you for your feedback!"
    assert received[-1].csat["comment"] == "Atendimento excelente, obrigada!"
    # The answers stayed on the closed conversation: no new conversation was opened.
    assert Conversation.objects.filter(customer=conversation.customer).count() == 1
    assert conversation.events.filter(kind="csat_received").count() == 2


def test_a_plain_digit_counts_as_a_score(fake_graph, agent, support, received):
    conversation = open_conversation(fake_graph, agent, support)
    services.conversation_close(conversation=conversation, actor=agent)

    reply(text("5"))

    assert CsatSurvey.objects.get(conversation=conversation).score == 5


def test_an_unrelated_reply_is_no_score_and_starts_a_new_conversation(
    fake_graph, agent, support, received
):
    conversation = open_conversation(fake_graph, agent, support)
    services.conversation_close(conversation=conversation, actor=agent)

    reply(text("Preciso de ajuda com outro pedido"))

    survey = CsatSurvey.objects.get(conversation=conversation)
    assert (survey.score, survey.status) == (None, CsatStatus.EXPIRED)
    new = Conversation.objects.exclude(pk=conversation.pk).get(customer=conversation.customer)
    assert not new.is_closed  # with the bot, or already queued by it
    assert received == []
    reply(text("3"))  # the survey is gone: now just a message of the new conversation
    assert new.messages.filter(body="3").exists()


def test_a_late_reply_is_not_taken_as_a_score(fake_graph, agent, support, received, settings):
    conversation = open_conversation(fake_graph, agent, support)
    services.conversation_close(conversation=conversation, actor=agent)
    CsatSurvey.objects.update(created_at=timezone.now() - timedelta(hours=25))

    reply(text("4"))

    assert CsatSurvey.objects.get().score is None
    assert Conversation.objects.filter(customer=conversation.customer).count() == 2


def test_nothing_is_asked_outside_the_24_hour_window(fake_graph, agent, support):
    conversation = open_conversation(fake_graph, agent, support, inbound_ago=timedelta(hours=30))

    services.conversation_close(conversation=conversation, actor=agent)

    assert fake_graph.message_sends == []
    assert not CsatSurvey.objects.exists()


def test_nothing_is_asked_when_csat_is_off(fake_graph, agent, support, settings):
    settings.CSAT_ENABLED = False
    conversation = open_conversation(fake_graph, agent, support)

    services.conversation_close(conversation=conversation, actor=agent)

    assert fake_graph.message_sends == []


def test_nothing_is_asked_of_a_conversation_no_agent_handled(
    fake_graph, agent, support, supervisor
):
    conversation = open_conversation(fake_graph, agent, support)
    Conversation.objects.filter(pk=conversation.pk).update(
        assigned_to=None, status=ConversationStatus.PENDING
    )

    services.conversation_close(conversation=conversation, actor=supervisor)

    assert fake_graph.message_sends == []


def test_admins_edit_the_texts(fake_graph, agent, support, admin_user):
    from botflows.services import bot_config_set

    bot_config_set(key="csat_question", value="De 1 a 5, como foi?", actor=admin_user)
    conversation = open_conversation(fake_graph, agent, support)

    services.conversation_close(conversation=conversation, actor=agent)

    assert fake_graph.message_sends[-1]["interactive"]["body"]["text"] == "De 1 a 5, como foi?"


def test_an_answer_leaves_no_unread_badge_on_the_closed_conversation(fake_graph, agent, support):
    conversation = open_conversation(fake_graph, agent, support)
    services.conversation_close(conversation=conversation, actor=agent)

    reply(tap(3))

    conversation.refresh_from_db()
    assert (conversation.status, conversation.unread_count) == ("closed", 0)


def test_the_score_reaches_the_reports_credited_to_the_agent(
    fake_graph,
    agent,
    support,
    supervisor,
    api_env,  # noqa: F811 - the API tests' fixture
):
    from supportdesk.tests.api_support import bearer

    conversation = open_conversation(fake_graph, agent, support)
    services.conversation_take_over(conversation=conversation, actor=agent)
    services.conversation_close(conversation=conversation, actor=agent)
    reply(tap(4))
    reply(text("Muito bom"))

    day = timezone.localdate().isoformat()
    body = bearer(supervisor).get(f"/api/v1/conversations/stats?from={day}&to={day}").json()

    assert body["csat"] == {
        "average": 4.0,
        "responses": 1,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
    }
    (row,) = [a for a in body["by_agent"] if a["agent"]["id"] == agent.pk]
    assert row["csat"]["average"] == 4.0
    csv = bearer(supervisor).get(f"/api/v1/reports/conversations.csv?from={day}&to={day}")
    assert "Muito bom" in b"".join(csv.streaming_content).decode("utf-8-sig")
