"""The console's bot pages: admins' settings page, hand-off context and AI drafts."""

import pytest
from django.urls import reverse

from botflows.models import BotConfiguration, BotSession
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


def test_admins_see_flows_and_settings(client, admin_user, demo_flow):
    client.force_login(admin_user)

    page = client.get(reverse("botflows:settings"))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Main menu" in html and "version 1 live" in html
    assert "1. Suporte" in html and "handoff_keywords" in html


def test_agents_and_supervisors_do_not_administer_the_bot(client, agent, supervisor, demo_flow):
    for user in (agent, supervisor):
        client.force_login(user)
        assert client.get(reverse("botflows:settings")).status_code == 403
        response = client.post(
            reverse("botflows:setting_save", args=["ai_enabled"]), {"value": "false"}
        )
        assert response.status_code == 403
    assert not BotConfiguration.objects.exists()


def test_anonymous_visitors_go_to_the_login_form(client):
    response = client.get(reverse("botflows:settings"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_admin_saves_a_setting_as_json(client, admin_user):
    client.force_login(admin_user)

    page = client.post(
        reverse("botflows:setting_save", args=["handoff_keywords"]),
        {"value": '["gerente", "humano"]'},
        follow=True,
    )

    assert "handoff_keywords saved." in page.content.decode()
    assert BotConfiguration.objects.get(key="handoff_keywords").value == ["gerente", "humano"]

    page = client.post(
        reverse("botflows:setting_save", args=["max_invalid_attempts"]),
        {"value": "[oops"},
        follow=True,
    )
    assert "not valid JSON" in page.content.decode()
    page = client.post(
        reverse("botflows:setting_save", args=["max_invalid_attempts"]),
        {"value": "99"},
        follow=True,
    )
    assert "must be a number between" in page.content.decode()
    assert not BotConfiguration.objects.filter(key="max_invalid_attempts").exists()


def test_admin_publishes_from_the_console(client, admin_user, demo_flow):
    client.force_login(admin_user)
    demo_flow.nodes.filter(key="greeting").update(text="Oi de novo!")

    page = client.post(reverse("botflows:flow_publish", args=[demo_flow.pk]), follow=True)

    assert "version 2 is live" in page.content.decode()
    assert demo_flow.versions.count() == 2


def test_the_agent_sees_what_the_bot_collected(client, agent, support):
    conversation = ConversationFactory(status=ConversationStatus.PENDING, department=support)
    BotSession.objects.create(
        conversation=conversation,
        collected={"order": "12345"},
        summary="Quer saber do pedido 12345.",
        state="handed_off",
    )
    client.force_login(agent)

    html = client.get(reverse("botflows:context", args=[conversation.pk])).content.decode()

    assert "Quer saber do pedido 12345." in html and "order" in html and "12345" in html


def test_context_of_an_invisible_conversation_is_404(client, other_agent, support):
    conversation = ConversationFactory(status=ConversationStatus.PENDING, department=support)
    client.force_login(other_agent)

    assert client.get(reverse("botflows:context", args=[conversation.pk])).status_code == 404


def test_the_assignee_gets_an_ai_draft(client, agent, support, fake_openai):
    conversation = ConversationFactory(
        status=ConversationStatus.OPEN, department=support, assigned_to=agent
    )
    fake_openai.reply("Olá! Já verifico para você.")
    client.force_login(agent)

    response = client.post(reverse("botflows:draft", args=[conversation.pk]))

    assert response.status_code == 200
    assert "Olá! Já verifico para você." in response.content.decode()
    assert not conversation.messages.exists()


def test_drafts_without_ai_say_so(client, agent, support):
    conversation = ConversationFactory(
        status=ConversationStatus.OPEN, department=support, assigned_to=agent
    )
    client.force_login(agent)

    response = client.post(reverse("botflows:draft", args=[conversation.pk]))

    assert "AI answers are off." in response.content.decode()


def test_no_draft_for_someone_elses_conversation(client, agent, support, admin_user):
    conversation = ConversationFactory(
        status=ConversationStatus.OPEN, department=support, assigned_to=admin_user
    )
    client.force_login(agent)

    assert client.post(reverse("botflows:draft", args=[conversation.pk])).status_code == 403
