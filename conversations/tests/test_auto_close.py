"""Auto-close per department (contract §10): a conversation idle ``auto_close_minutes`` while
waiting for the customer (our message was the last) is closed after the closing message, through
the close service; one whose customer wrote last never is."""

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from conversations import services
from conversations.models import (
    ConversationEvent,
    ConversationStatus,
    CsatSurvey,
    EventKind,
    Message,
    MessageStatus,
    SenderKind,
)
from conversations.services import automate
from conversations.tasks import auto_close_sweep
from supportdesk.tests.api_support import api_env, bearer
from whatsapp.tests.conftest import open_conversation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

CLOSING = "Encerramos por falta de resposta. É só escrever de novo!"


@pytest.fixture
def support(support: Any) -> Any:
    support.auto_close_minutes = 30
    support.auto_close_message = CLOSING
    support.save()
    return support


def _reply(conversation: Any, agent: Any, capture: Any, body: str = "Pode confirmar?") -> Any:
    with capture(execute=True):
        return services.message_create_outbound(conversation=conversation, actor=agent, body=body)


def _customer_writes(conversation: Any, body: str = "Só um instante") -> Any:
    return services.message_record_inbound(conversation=conversation, body=body)[0]


def _sweep(capture: Any) -> int:
    with capture(execute=True):
        return auto_close_sweep.apply().get()


def test_idle_while_waiting_for_the_customer_is_closed_after_the_message(
    fake_graph: Any,
    agent: Any,
    support: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.CSAT_ENABLED = True
    conversation = open_conversation(fake_graph, agent, support, inbound_ago=timedelta(minutes=5))
    _reply(conversation, agent, django_capture_on_commit_callbacks)
    with time_machine.travel(timezone.now() + timedelta(minutes=29), tick=False):
        assert _sweep(django_capture_on_commit_callbacks) == 0
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN
    with time_machine.travel(timezone.now() + timedelta(minutes=31), tick=False):
        assert _sweep(django_capture_on_commit_callbacks) == 1
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    # the closing message went first, then the close (history row, CSAT as for any close)
    bodies = [s.get("text", {}).get("body") for s in fake_graph.message_sends]
    assert bodies[:2] == ["Pode confirmar?", CLOSING]
    closing = Message.objects.get(conversation=conversation, body=CLOSING)
    assert closing.sender == SenderKind.BOT
    assert closing.status == MessageStatus.SENT
    event = ConversationEvent.objects.get(conversation=conversation, kind=EventKind.CLOSED)
    assert event.actor is None
    assert event.after["reason"] == "auto_close"
    assert CsatSurvey.objects.filter(conversation=conversation).exists()
    # idempotent: nothing more happens on the next sweep
    with time_machine.travel(timezone.now() + timedelta(minutes=40), tick=False):
        assert _sweep(django_capture_on_commit_callbacks) == 0


def test_never_closes_one_whose_customer_wrote_last(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support, inbound_ago=timedelta(minutes=5))
    _reply(conversation, agent, django_capture_on_commit_callbacks)
    _customer_writes(conversation)
    with time_machine.travel(timezone.now() + timedelta(hours=5), tick=False):
        assert _sweep(django_capture_on_commit_callbacks) == 0
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN
    assert not Message.objects.filter(body=CLOSING).exists()


def test_a_department_without_auto_close_keeps_its_conversations(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    support.auto_close_minutes = None
    support.save()
    conversation = open_conversation(fake_graph, agent, support)
    _reply(conversation, agent, django_capture_on_commit_callbacks)
    with time_machine.travel(timezone.now() + timedelta(days=3), tick=False):
        assert _sweep(django_capture_on_commit_callbacks) == 0
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN


def test_a_message_still_scheduled_keeps_it_open(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conversation = open_conversation(fake_graph, agent, support)
    _reply(conversation, agent, django_capture_on_commit_callbacks)
    automate.message_schedule(
        conversation=conversation,
        actor=agent,
        send_at=timezone.now() + timedelta(hours=2),
        body="Lembrete",
    )
    with time_machine.travel(timezone.now() + timedelta(minutes=45), tick=False):
        assert _sweep(django_capture_on_commit_callbacks) == 0
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.OPEN


def test_after_the_window_it_closes_without_the_message(
    fake_graph: Any, agent: Any, support: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """A free-form closing message cannot go outside the 24-hour window: closed all the same."""
    conversation = open_conversation(fake_graph, agent, support, inbound_ago=timedelta(hours=23))
    _reply(conversation, agent, django_capture_on_commit_callbacks)
    support.auto_close_minutes = 60 * 3
    support.save()
    with time_machine.travel(timezone.now() + timedelta(hours=3, minutes=1), tick=False):
        assert _sweep(django_capture_on_commit_callbacks) == 1
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert not Message.objects.filter(body=CLOSING).exists()


def test_admins_set_auto_close_through_the_api(admin_user: Any, support: Any) -> None:
    response = bearer(admin_user).patch(
        f"/api/v1/departments/{support.pk}",
        {"auto_close_minutes": 90, "auto_close_message": "Tchau!"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["auto_close_minutes"] == 90
    support.refresh_from_db()
    assert (support.auto_close_minutes, support.auto_close_message) == (90, "Tchau!")
    off = bearer(admin_user).patch(
        f"/api/v1/departments/{support.pk}", {"auto_close_minutes": None}, format="json"
    )
    assert off.json()["auto_close_minutes"] is None
    bad = bearer(admin_user).patch(
        f"/api/v1/departments/{support.pk}", {"auto_close_minutes": 0}, format="json"
    )
    assert bad.status_code == 400
    assert "auto_close_minutes" in bad.json()["errors"]


def test_admins_set_auto_close_in_the_back_office(
    client: Any, admin_user: Any, support: Any
) -> None:
    client.force_login(admin_user)
    response = client.post(
        f"/admin/departments/department/{support.pk}/change/",
        {
            "name": support.name,
            "description": "",
            "is_active": "on",
            "auto_close_minutes": "45",
            "auto_close_message": "Até logo!",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    support.refresh_from_db()
    assert (support.auto_close_minutes, support.auto_close_message) == (45, "Até logo!")
