"""Outbound messages left ``queued`` by a broker outage go out again, exactly once."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations import services
from conversations.models import Message, MessageStatus
from conversations.tests.factories import MessageFactory
from whatsapp import tasks
from whatsapp.services.outbound import outbound_requeue_stuck

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down(monkeypatch):
    """The broker refuses every publish of ``message_send`` until the test calls ``restore()``."""

    class Outage:
        def __init__(self) -> None:
            self.original = tasks.message_send.delay
            monkeypatch.setattr(tasks.message_send, "delay", self.refuse)

        @staticmethod
        def refuse(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

        def restore(self) -> None:
            monkeypatch.setattr(tasks.message_send, "delay", self.original)

    return Outage()


def _age(message: Message, *, minutes: float) -> None:
    Message.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )


def _queued_during_outage(conversation, agent, capture, broker_down):
    assert broker_down is not None  # the fixture refuses the publish
    with capture(execute=True):
        message = services.message_create_outbound(
            conversation=conversation, actor=agent, body="Olá, Maria!"
        )
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED  # the publish on commit failed
    return message


def test_a_message_queued_while_the_broker_was_down_is_sent_once_by_the_sweeper(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, broker_down
):
    # given a reply written while the broker refused the publish
    message = _queued_during_outage(
        conversation, agent, django_capture_on_commit_callbacks, broker_down
    )
    assert fake_graph.message_sends == []
    _age(message, minutes=3)
    # when the broker is back and the sweeper runs (twice, as beat would)
    broker_down.restore()
    with django_capture_on_commit_callbacks(execute=True):
        first = outbound_requeue_stuck()
    with django_capture_on_commit_callbacks(execute=True):
        second = outbound_requeue_stuck()
    # then the customer gets it exactly once
    assert [m.pk for m in first] == [message.pk]
    assert second == []
    assert [s["text"]["body"] for s in fake_graph.message_sends] == ["Olá, Maria!"]
    assert fake_graph.message_sends[0]["to"] == "5511987650002"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.wa_message_id.startswith("wamid.FAKE")
    assert [h["status"] for h in message.status_history] == ["requeued", "sent"]


def test_the_beat_task_requeues(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, broker_down
):
    message = _queued_during_outage(
        conversation, agent, django_capture_on_commit_callbacks, broker_down
    )
    _age(message, minutes=3)
    broker_down.restore()
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.outbound_requeue_stuck.delay().get() == 1
    assert len(fake_graph.message_sends) == 1


def test_a_fresh_queued_message_is_left_to_its_task(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, broker_down
):
    message = _queued_during_outage(
        conversation, agent, django_capture_on_commit_callbacks, broker_down
    )
    _age(message, minutes=1)
    broker_down.restore()
    with django_capture_on_commit_callbacks(execute=True):
        assert outbound_requeue_stuck() == []
    assert fake_graph.message_sends == []


def test_sent_failed_and_inbound_messages_are_not_touched(
    fake_graph, conversation, django_capture_on_commit_callbacks
):
    old = timezone.now() - timedelta(hours=1)
    for status in (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.DELIVERED):
        MessageFactory(
            conversation=conversation,
            direction="out",
            sender="agent",
            status=status,
            wa_message_id=None if status == MessageStatus.FAILED else f"wamid.{status}",
        )
    inbound = MessageFactory(conversation=conversation, status=MessageStatus.RECEIVED)
    Message.objects.update(created_at=old)
    with django_capture_on_commit_callbacks(execute=True):
        assert outbound_requeue_stuck() == []
    assert fake_graph.message_sends == []
    inbound.refresh_from_db()
    assert inbound.status_history == []


def test_a_message_in_a_retry_backoff_is_left_to_its_retry(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, broker_down
):
    # given a message Meta throttled a minute ago (its retry is scheduled in Celery)
    message = _queued_during_outage(
        conversation, agent, django_capture_on_commit_callbacks, broker_down
    )
    broker_down.restore()
    _age(message, minutes=10)
    Message.objects.filter(pk=message.pk).update(
        send_attempts=1,
        status_history=[
            {
                "status": "retry",
                "at": (timezone.now() - timedelta(minutes=1)).isoformat(),
                "applied": False,
                "note": "130429: rate limit",
            }
        ],
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert outbound_requeue_stuck() == []
    # but once no retry can still be on its way, it goes out
    Message.objects.filter(pk=message.pk).update(
        status_history=[
            {"status": "retry", "at": (timezone.now() - timedelta(hours=1)).isoformat()}
        ]
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert len(outbound_requeue_stuck()) == 1
    assert len(fake_graph.message_sends) == 1


def test_a_claim_left_by_a_dead_worker_fails_instead_of_being_sent_again(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, broker_down
):
    message = _queued_during_outage(
        conversation, agent, django_capture_on_commit_callbacks, broker_down
    )
    broker_down.restore()
    Message.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(minutes=20),
        sending_since=timezone.now() - timedelta(minutes=15),
        send_attempts=1,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert len(outbound_requeue_stuck()) == 1
    message.refresh_from_db()
    assert fake_graph.message_sends == []
    assert message.status == MessageStatus.FAILED
    assert "may or may not" in message.error


def test_requeue_outbound_command(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, broker_down
):
    message = _queued_during_outage(
        conversation, agent, django_capture_on_commit_callbacks, broker_down
    )
    _age(message, minutes=5)
    broker_down.restore()

    out = StringIO()
    call_command("requeue_outbound", "--dry-run", stdout=out)
    assert f"message {message.pk} (conversation {conversation.pk}" in out.getvalue()
    assert "1 messages would be re-queued (dry run)" in out.getvalue()
    assert fake_graph.message_sends == []

    out = StringIO()
    call_command("requeue_outbound", "--older-than", "600", stdout=out)
    assert "0 messages re-queued" in out.getvalue()

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("requeue_outbound", "--older-than", "60", stdout=out)
    assert f"message {message.pk}" in out.getvalue()
    assert "re-queued" in out.getvalue()
    assert len(fake_graph.message_sends) == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
