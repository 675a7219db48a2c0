"""The console's bot pages: admins' settings page, hand-off context and AI drafts."""

import pytest
from django.urls import reverse

from botflows import selectors
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
    assert "1. Suporte" in html and 'id="setting-handoff_keywords"' in html


def test_agents_and_supervisors_do_not_administer_the_bot(client, agent, supervisor, demo_flow):
    for user in (agent, supervisor):
        client.force_login(user)
        assert client.get(reverse("botflows:settings")).status_code == 403
        response = client.post(reverse("botflows:settings_save"), _settings_post())
        assert response.status_code == 403
    assert not BotConfiguration.objects.exists()


def test_anonymous_visitors_go_to_the_login_form(client):
    response = client.get(reverse("botflows:settings"))
    assert response.status_code == 302 and "login" in response["Location"]


def _settings_post(**changes):
    """What the /bot/ page's form posts when the admin changes only ``changes``."""
    data = {
        "handoff_keywords": "atendente\r\nhumano\r\nfalar com alguém\r\nhuman\r\nagent",
        "handoff_department": "",
        "max_invalid_attempts": "3",
        "ai_enabled": "on",
        "ai_system_prompt": selectors.CONFIG_DEFAULTS["ai_system_prompt"][0],
        "ai_min_confidence": "0.6",
        "ai_max_turns": "5",
        "ai_timeout_seconds": "20",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_the_settings_are_fields_of_their_kind(client, admin_user, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.LANGUAGE_CODE = "en"
    client.force_login(admin_user)

    html = client.get(reverse("botflows:settings")).content.decode()

    assert 'type="checkbox" name="ai_enabled"' in html
    assert 'type="number" name="max_invalid_attempts" value="3" min="1" max="20"' in html
    assert '<textarea name="handoff_keywords"' in html and "humano\nfalar com alguém" in html
    assert '<select name="handoff_department"' in html and "The general queue" in html
    assert "Values are JSON" not in html


def test_admin_saves_settings_from_the_form(client, admin_user, support, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.LANGUAGE_CODE = "en"
    client.force_login(admin_user)

    page = client.post(
        reverse("botflows:settings_save"),
        _settings_post(
            handoff_keywords="gerente\r\n  humano \r\n\r\n",
            handoff_department="Suporte",
            max_invalid_attempts="5",
            ai_enabled=None,  # unchecked
            message_handoff="Já chamo alguém!\r\nUm momento.",
            csat_options="Péssimo\nRuim\nOk\nBom\nÓtimo",
        ),
        follow=True,
    )

    assert "Settings saved." in page.content.decode()
    stored = dict(BotConfiguration.objects.values_list("key", "value"))
    assert stored["handoff_keywords"] == ["gerente", "humano"]
    assert stored["handoff_department"] == "Suporte"
    assert stored["max_invalid_attempts"] == 5
    assert stored["ai_enabled"] is False
    assert stored["message_handoff"] == "Já chamo alguém!\nUm momento."
    assert stored["csat_options"] == ["Péssimo", "Ruim", "Ok", "Bom", "Ótimo"]
    # what was left as it was is not stored: it keeps following the defaults
    assert "ai_max_turns" not in stored and "message_retry" not in stored
    assert selectors.bot_config_values()["handoff_keywords"] == ["gerente", "humano"]


def test_wrong_values_are_refused_next_to_their_field(client, admin_user, settings):
    settings.OPENAI_API_KEY = "sk-test"
    settings.LANGUAGE_CODE = "en"
    client.force_login(admin_user)

    page = client.post(
        reverse("botflows:settings_save"),
        _settings_post(
            max_invalid_attempts="99",
            ai_min_confidence="abc",
            csat_options="Ruim\nBom",
            handoff_department="Nenhum",
        ),
    )

    assert page.status_code == 400
    html = page.content.decode()
    assert "The settings were not saved" in html

    def error_of(name: str) -> str:
        block = html.split(f'id="field-{name}"')[1].split("</div>\n")[0]
        return block.split('class="field-error" role="alert">')[1] if "field-error" in block else ""

    assert "less than or equal to 20" in error_of("max_invalid_attempts")
    assert "Enter a number" in error_of("ai_min_confidence")
    assert "exactly five titles" in error_of("csat_options")
    assert "Select a valid choice" in error_of("handoff_department")
    assert error_of("ai_max_turns") == ""
    # the admin's input is kept for fixing
    assert "Ruim\nBom</textarea>" in html
    assert not BotConfiguration.objects.exists()


def test_without_an_openai_key_ai_is_shown_off_and_cannot_be_switched_on(
    client, admin_user, settings
):
    settings.OPENAI_API_KEY = ""
    settings.LANGUAGE_CODE = "en"
    client.force_login(admin_user)
    BotConfiguration.objects.create(key="ai_enabled", value=True)

    html = client.get(reverse("botflows:settings")).content.decode()
    checkbox = (
        html.split('name="ai_enabled"')[0].rsplit("<input", 1)[1]
        + html.split('name="ai_enabled"')[1].split(">")[0]
    )
    assert "checked" not in checkbox and "disabled" in checkbox
    assert "AI is unavailable: no OpenAI key is configured" in html

    # posting it on anyway changes nothing
    client.post(
        reverse("botflows:settings_save"), _settings_post(ai_enabled="on", ai_max_turns="7")
    )
    assert BotConfiguration.objects.get(key="ai_enabled").value is True
    assert BotConfiguration.objects.get(key="ai_max_turns").value == 7


def test_the_bot_page_is_linked_for_admins_and_shows_no_live_indicator(client, admin_user, agent):
    client.force_login(admin_user)
    console = client.get("/").content.decode()
    assert f'href="{reverse("botflows:settings")}"' in console
    assert 'id="connection"' in console  # the console connects; its indicator is there
    assert 'id="connection"' not in client.get(reverse("botflows:settings")).content.decode()

    client.force_login(agent)
    assert f'href="{reverse("botflows:settings")}"' not in client.get("/").content.decode()


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
