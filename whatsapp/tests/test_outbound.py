# ruff: noqa: PLR0917 - pytest fixtures are positional
"""The sender, through our real client against the fake Graph API on 127.0.0.1."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from common.exceptions import ServiceError
from conversations import services
from conversations.models import MessageReaction, MessageStatus, MessageType, SenderKind
from conversations.tests.factories import MessageFactory
from whatsapp.models import ChannelError, ChannelErrorKind, MessageTemplate
from whatsapp.services.outbound import message_deliver

pytestmark = pytest.mark.django_db


def send(conversation, actor, capture, **kwargs):
    """What the API does: create the message; the sender runs when the transaction commits."""
    with capture(execute=True):
        message = services.message_create_outbound(conversation=conversation, actor=actor, **kwargs)
    message.refresh_from_db()
    return message


def test_text_is_sent_once_and_the_wamid_recorded(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks
):
    message = send(conversation, agent, django_capture_on_commit_callbacks, body="Olá, Maria!")
    assert message.status == MessageStatus.SENT
    assert message.wa_message_id.startswith("wamid.FAKE")
    assert fake_graph.message_sends == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987650002",
            "type": "text",
            "text": {"preview_url": False, "body": "Olá, Maria!"},
        }
    ]
    # a redelivered task (acks_late, worker restart) never sends twice
    message_deliver(message_id=message.pk)
    assert len(fake_graph.message_sends) == 1
    assert fake_graph.requests[0][2]["Authorization"] == f"Bearer {fake_graph.token}"


def test_reply_context_is_sent(fake_graph, conversation, agent, django_capture_on_commit_callbacks):
    quoted = MessageFactory(conversation=conversation, wa_message_id="wamid.QUOTED")
    send(conversation, agent, django_capture_on_commit_callbacks, body="Sim", reply_to=quoted)
    assert fake_graph.message_sends[0]["context"] == {"message_id": "wamid.QUOTED"}


@pytest.mark.parametrize("code", [130429, 131000, 131016])
def test_retryable_codes_are_retried_then_succeed(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, code
):
    fake_graph.fail_next(code, times=2)
    message = send(conversation, agent, django_capture_on_commit_callbacks, body="Oi")
    assert message.status == MessageStatus.SENT
    assert len(fake_graph.message_sends) == 3
    assert message.send_attempts == 3
    assert [h["status"] for h in message.status_history] == ["retry", "retry", "sent"]


def test_pair_rate_limit_backs_off_then_succeeds(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks
):
    fake_graph.fail_next(131056)
    message = send(conversation, agent, django_capture_on_commit_callbacks, body="Oi")
    assert message.status == MessageStatus.SENT
    assert len(fake_graph.message_sends) == 2


def test_retries_are_bounded(fake_graph, conversation, agent, django_capture_on_commit_callbacks):
    fake_graph.fail_next(130429, times=20)
    message = send(conversation, agent, django_capture_on_commit_callbacks, body="Oi")
    assert message.status == MessageStatus.FAILED
    assert message.error_code == 130429
    assert len(fake_graph.message_sends) == 6


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (131047, "24 hours"),
        (131026, "undeliverable"),
        (100, "Invalid parameter"),
    ],
)
def test_non_retryable_codes_fail_with_metas_code_and_reason(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, code, text
):
    fake_graph.fail_next(code)
    message = send(conversation, agent, django_capture_on_commit_callbacks, body="Oi")
    assert message.status == MessageStatus.FAILED
    assert message.error_code == code
    assert text.lower() in message.error.lower()
    assert len(fake_graph.message_sends) == 1


def test_token_errors_fail_and_alert_admins(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, mailoutbox, settings
):
    settings.ADMINS = ["admin@suporte.com"]
    fake_graph.fail_next(190)
    message = send(conversation, agent, django_capture_on_commit_callbacks, body="Oi")
    assert message.status == MessageStatus.FAILED
    assert message.error_code == 190
    alert = ChannelError.objects.get(kind=ChannelErrorKind.TOKEN)
    assert alert.code == 190
    assert "access token" in mailoutbox[0].subject


def test_media_is_uploaded_then_sent_by_id(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("boleto.pdf", b"%PDF-1.4 fake", content_type="application/pdf")
    message = send(
        conversation,
        agent,
        django_capture_on_commit_callbacks,
        body="Segue o boleto",
        type=MessageType.DOCUMENT,
        media_file=upload,
        media_mime_type="application/pdf",
        media_filename="boleto.pdf",
    )
    assert message.status == MessageStatus.SENT
    assert len(fake_graph.uploads) == 1
    assert b"%PDF-1.4 fake" in fake_graph.uploads[0]["content"]
    sent = fake_graph.message_sends[0]
    assert sent["type"] == "document"
    assert sent["document"] == {
        "id": fake_graph.uploads[0]["id"],
        "caption": "Segue o boleto",
        "filename": "boleto.pdf",
    }


def test_interactive_buttons_are_sent_as_given(
    fake_graph, conversation, django_capture_on_commit_callbacks
):
    interactive = {
        "type": "button",
        "body": {"text": "Escolha o setor"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "dept-1", "title": "Suporte"}},
                {"type": "reply", "reply": {"id": "dept-2", "title": "Vendas"}},
            ]
        },
    }
    message = send(
        conversation,
        None,
        django_capture_on_commit_callbacks,
        body="Escolha o setor",
        type=MessageType.INTERACTIVE,
        raw_payload={"interactive": interactive},
    )
    assert message.status == MessageStatus.SENT
    assert message.sender == SenderKind.BOT
    assert fake_graph.message_sends[0]["interactive"] == interactive


@pytest.mark.parametrize(
    ("interactive", "error"),
    [
        (
            {
                "type": "button",
                "body": {"text": "x"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": str(i), "title": f"B{i}"}}
                        for i in range(4)
                    ]
                },
            },
            "1 to 3 buttons",
        ),
        (
            {
                "type": "button",
                "body": {"text": "x"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "1", "title": "x" * 21}}]},
            },
            "longer than 20",
        ),
        (
            {
                "type": "list",
                "body": {"text": "x"},
                "action": {
                    "button": "Ver opções",
                    "sections": [
                        {"title": "A", "rows": [{"id": str(i), "title": "r"} for i in range(11)]}
                    ],
                },
            },
            "1 to 10 rows",
        ),
        (
            {
                "type": "list",
                "body": {"text": "x"},
                "action": {
                    "button": "Ver opções",
                    "sections": [
                        {"title": "A", "rows": [{"id": "1", "title": "r", "description": "d" * 73}]}
                    ],
                },
            },
            "72 characters",
        ),
    ],
)
def test_interactive_limits_are_validated_with_clear_errors(
    fake_graph, conversation, interactive, error
):
    with pytest.raises(ServiceError, match=error):
        services.message_create_outbound(
            conversation=conversation,
            actor=None,
            body="x",
            type=MessageType.INTERACTIVE,
            raw_payload={"interactive": interactive},
        )
    assert not conversation.messages.exists()


def test_free_form_outside_the_24_hour_window_is_refused(fake_graph, conversation, agent):
    conversation.last_inbound_at = timezone.now() - timedelta(hours=25)
    conversation.save()
    with pytest.raises(ServiceError, match="24 hours") as refused:
        services.message_create_outbound(conversation=conversation, actor=agent, body="Oi")
    assert refused.value.code == "window_closed"
    assert not conversation.messages.exists()
    assert fake_graph.sends == []


def test_templates_are_allowed_outside_the_window(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks
):
    conversation.last_inbound_at = timezone.now() - timedelta(days=3)
    conversation.save()
    MessageTemplate.objects.create(
        account=fake_graph.account,
        name="retomar_atendimento",
        language="pt_BR",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Olá {{1}}, podemos continuar?"}],
    )
    template = {
        "name": "retomar_atendimento",
        "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}],
    }
    message = send(
        conversation,
        agent,
        django_capture_on_commit_callbacks,
        body="Olá Maria, podemos continuar?",
        type=MessageType.TEMPLATE,
        raw_payload={"template": template},
    )
    assert message.status == MessageStatus.SENT
    assert fake_graph.message_sends[0]["template"] == template


def test_agent_reaction_is_recorded_and_sent(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks
):
    target = MessageFactory(conversation=conversation, wa_message_id="wamid.CUSTOMER1")
    with django_capture_on_commit_callbacks(execute=True):
        services.message_react(message=target, sender=SenderKind.AGENT, emoji="👍", actor=agent)
    assert MessageReaction.objects.get(message=target, sender=SenderKind.AGENT).emoji == "👍"
    assert fake_graph.message_sends[0]["reaction"] == {
        "message_id": "wamid.CUSTOMER1",
        "emoji": "👍",
    }


def test_opening_the_conversation_marks_it_read_on_whatsapp(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks
):
    MessageFactory(conversation=conversation, wa_message_id="wamid.IN1", read_at=None)
    latest = MessageFactory(conversation=conversation, wa_message_id="wamid.IN2", read_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_mark_read(conversation=conversation, actor=agent)
    assert fake_graph.sends == [
        {"messaging_product": "whatsapp", "status": "read", "message_id": latest.wa_message_id}
    ]


def test_sandbox_transport_without_an_access_token(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks, settings
):
    settings.WHATSAPP_ACCESS_TOKEN = ""
    message = send(conversation, agent, django_capture_on_commit_callbacks, body="Oi")
    assert message.status == MessageStatus.SENT
    assert message.wa_message_id.startswith("wamid.SANDBOX.")
    assert fake_graph.sends == []


def test_a_send_interrupted_midway_is_never_repeated(
    fake_graph, conversation, agent, django_capture_on_commit_callbacks
):
    # given a message whose worker died after claiming it (the request may have reached Meta)
    message = services.message_create_outbound(conversation=conversation, actor=agent, body="Oi")
    message.sending_since = timezone.now() - timedelta(minutes=10)
    message.save(update_fields=["sending_since"])
    # when the task is redelivered
    message_deliver(message_id=message.pk)
    # then nothing is sent again and the agent sees why
    message.refresh_from_db()
    assert fake_graph.sends == []
    assert message.status == MessageStatus.FAILED
    assert "may or may not" in message.error
