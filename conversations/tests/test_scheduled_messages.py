"""Scheduled messages (contract §10): ``POST /messages {…, send_at}`` records ``scheduled``; the
beat task sends it at ``send_at`` through the usual outbound path (the fake Graph API on
127.0.0.1); a free-form one whose 24-hour window has closed by then fails with that reason, a
template still goes; ``DELETE /messages/:id`` cancels. The console schedules and cancels too."""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from conversations import services
from conversations.models import Message, MessageStatus, MessageType
from conversations.services import automate
from conversations.tasks import scheduled_messages_send
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer
from whatsapp.models import MessageTemplate
from whatsapp.tests.conftest import open_conversation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def _schedule(user: Any, conversation: Any, *, in_: timedelta, **data: Any) -> Any:
    send_at = (timezone.now() + in_).isoformat()
    return bearer(user).post(
        "/api/v1/messages",
        {"conversation": conversation.pk, "send_at": send_at, **data},
        format="json",
    )


def _beat(capture: Any) -> int:
    """One run of the beat entry, its consequences (the sender task) committed."""
    with capture(execute=True):
        return scheduled_messages_send.apply().get()


def test_a_scheduled_message_goes_at_send_at_through_the_sender(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        # when the agent schedules a message for in 10 minutes
        with django_capture_on_commit_callbacks(execute=True):
            response = _schedule(agent, conversation, in_=timedelta(minutes=10), body="Lembrete!")
        # then it is recorded as scheduled, and nothing reaches WhatsApp yet
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["status"] == "scheduled"
        assert body["send_at"] is not None
        assert fake_graph.message_sends == []
        traveller.shift(timedelta(minutes=9))
        assert _beat(django_capture_on_commit_callbacks) == 0
        assert fake_graph.message_sends == []
        # when its moment comes, the beat task sends it
        traveller.shift(timedelta(minutes=1, seconds=5))
        assert _beat(django_capture_on_commit_callbacks) == 1
    message = Message.objects.get(pk=body["id"])
    assert message.status == MessageStatus.SENT
    assert message.wa_message_id.startswith("wamid.FAKE")
    assert [s["text"]["body"] for s in fake_graph.message_sends] == ["Lembrete!"]
    # it stands in the timeline where it went, and the conversation's activity moved with it
    assert message.created_at >= start + timedelta(minutes=10)
    conversation.refresh_from_db()
    assert conversation.last_message_at == message.created_at
    # a second run sends nothing again
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        assert _beat(django_capture_on_commit_callbacks) == 0
    assert len(fake_graph.message_sends) == 1


def test_the_window_closed_by_then_fails_with_the_reason(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # the customer wrote 23 hours ago: the window closes in an hour
    conversation = open_conversation(fake_graph, agent, support, inbound_ago=timedelta(hours=23))
    response = _schedule(agent, conversation, in_=timedelta(hours=2), body="Ainda aí?")
    assert response.status_code == 201, response.content
    with time_machine.travel(timezone.now() + timedelta(hours=2, minutes=1), tick=False):
        assert _beat(django_capture_on_commit_callbacks) == 1
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == MessageStatus.FAILED
    assert "24 hours" in message.error
    assert message.error_data == {"code": "window_closed"}
    assert fake_graph.message_sends == []


def test_a_scheduled_template_still_goes_after_the_window(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    MessageTemplate.objects.create(
        account=fake_graph.account,
        name="lembrete_boleto",
        language="pt_BR",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Olá {{1}}, seu boleto vence amanhã."}],
    )
    conversation = open_conversation(fake_graph, agent, support, inbound_ago=timedelta(hours=23))
    template = {"name": "lembrete_boleto", "language": "pt_BR", "parameters": ["Maria"]}
    response = _schedule(agent, conversation, in_=timedelta(hours=3), template=template)
    assert response.status_code == 201, response.content
    assert response.json()["type"] == MessageType.TEMPLATE
    with time_machine.travel(timezone.now() + timedelta(hours=3, minutes=1), tick=False):
        assert _beat(django_capture_on_commit_callbacks) == 1
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == MessageStatus.SENT
    (sent,) = fake_graph.message_sends
    assert sent["type"] == "template"
    assert sent["template"]["name"] == "lembrete_boleto"


@pytest.mark.parametrize(
    ("in_", "code"),
    [(timedelta(minutes=-1), "send_at_past"), (timedelta(days=400), "send_at_too_far")],
)
def test_send_at_in_the_past_or_too_far_is_a_400_on_the_field(
    fake_graph: Any, agent: Any, support: Any, in_: timedelta, code: str
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    response = _schedule(agent, conversation, in_=in_, body="Oi")
    body = assert_error_shape(response, 400, code)
    assert "send_at" in body["errors"], body
    assert not Message.objects.filter(conversation=conversation).exists()


def test_only_the_assignee_schedules(
    fake_graph: Any, agent: Any, support: Any, supervisor: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    assert_error_shape(_schedule(supervisor, conversation, in_=timedelta(hours=1), body="x"), 403)


def test_cancel_removes_a_scheduled_message_and_it_never_goes(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    created = _schedule(agent, conversation, in_=timedelta(minutes=30), body="Até já").json()
    response = bearer(agent).delete(f"/api/v1/messages/{created['id']}")
    assert response.status_code == 204, response.content
    assert not Message.objects.filter(pk=created["id"]).exists()
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        assert _beat(django_capture_on_commit_callbacks) == 0
    assert fake_graph.message_sends == []
    assert_error_shape(bearer(agent).delete(f"/api/v1/messages/{created['id']}"), 404)


def test_cancel_of_a_message_that_went_already_is_a_409(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    created = _schedule(agent, conversation, in_=timedelta(minutes=5), body="Oi").json()
    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=False):
        _beat(django_capture_on_commit_callbacks)
    response = bearer(agent).delete(f"/api/v1/messages/{created['id']}")
    assert_error_shape(response, 409, "not_scheduled")
    assert Message.objects.get(pk=created["id"]).status == MessageStatus.SENT


def test_cancel_is_a_404_for_who_may_not_see_the_conversation(
    fake_graph: Any, agent: Any, other_agent: Any, support: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    created = _schedule(agent, conversation, in_=timedelta(minutes=5), body="Oi").json()
    assert_error_shape(bearer(other_agent).delete(f"/api/v1/messages/{created['id']}"), 404)
    assert Message.objects.filter(pk=created["id"], status=MessageStatus.SCHEDULED).exists()


def test_a_conversation_closed_meanwhile_fails_its_scheduled_message(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    message = automate.message_schedule(
        conversation=conversation,
        actor=agent,
        send_at=timezone.now() + timedelta(minutes=5),
        body="Oi",
    )
    services.conversation_close(conversation=conversation, actor=agent)
    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=False):
        _beat(django_capture_on_commit_callbacks)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "closed" in message.error
    assert fake_graph.message_sends == []


# --- the console ---------------------------------------------------------------------------------


def test_the_console_schedules_shows_and_cancels(
    client: Any, fake_graph: Any, agent: Any, support: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    client.force_login(agent)
    moment = timezone.localtime() + timedelta(hours=2)
    response = client.post(
        f"/c/{conversation.pk}/send/",
        {"body": "Seu boleto vence amanhã", "send_at": moment.strftime("%Y-%m-%dT%H:%M")},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    message = Message.objects.get(conversation=conversation)
    assert message.status == MessageStatus.SCHEDULED
    assert timezone.localtime(message.send_at).strftime("%H:%M") == moment.strftime("%H:%M")
    html = response.content.decode()
    assert "msg-scheduled" in html
    assert "Scheduled for" in html
    assert f"/c/{conversation.pk}/m/{message.pk}/cancel/" in html
    assert fake_graph.message_sends == []
    # Cancel (the button asks for confirmation first)
    response = client.post(f"/c/{conversation.pk}/m/{message.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert not Message.objects.filter(pk=message.pk).exists()
    assert "msg-scheduled" not in response.content.decode()


def test_the_console_says_why_a_moment_is_refused(
    client: Any, fake_graph: Any, agent: Any, support: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    client.force_login(agent)
    past = timezone.localtime() - timedelta(hours=1)
    response = client.post(
        f"/c/{conversation.pk}/send/",
        {"body": "Oi", "send_at": past.strftime("%Y-%m-%dT%H:%M")},
        HTTP_HX_REQUEST="true",
    )
    assert "Choose a moment in the future." in response.content.decode()
    assert not Message.objects.filter(conversation=conversation).exists()
