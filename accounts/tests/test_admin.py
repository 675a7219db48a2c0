"""The back office as each role meets it: who gets in, what loads, how users are managed."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from accounts.models import Role, User
from accounts.tests.factories import DEFAULT_PASSWORD
from botflows.models import BotConfiguration
from conversations.tests.factories import ConversationFactory, MessageFactory
from departments.tests.factories import DepartmentFactory
from whatsapp.models import WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings):  # type: ignore[no-untyped-def]
    settings.LANGUAGE_CODE = "en"
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users


def _client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_browser(admin_user) -> Client:  # type: ignore[no-untyped-def]
    return _client_for(admin_user)


@pytest.fixture
def supervisor_browser(supervisor) -> Client:  # type: ignore[no-untyped-def]
    return _client_for(supervisor)


@pytest.fixture
def some_of_everything(admin_user, agent, support):  # type: ignore[no-untyped-def]
    """One row of every model the back office shows, so change forms can be opened."""
    from conversations.models import ConversationNote, MessageReaction
    from whatsapp.models import ChannelError, MessageTemplate, PendingStatus

    conversation = ConversationFactory(department=support, assigned_to=agent, status="open")
    message = MessageFactory(
        conversation=conversation,
        raw_payload={"from": "5511"},
        error_data={"code": 131047, "title": "Re-engagement message"},
        status_history=[{"status": "sent"}, {"status": "failed"}],
    )
    MessageReaction.objects.create(message=message, sender="customer", emoji="👍")
    ConversationNote.objects.create(conversation=conversation, author=agent, body="nota")
    BotConfiguration.objects.create(key="greeting", value="Olá!")
    delivery = WebhookEvent.objects.create(raw_body='{"object": "whatsapp_business_account"}')
    ChannelError.objects.create(
        kind="token", account=conversation.whatsapp_account, code=190, data={"x": 1}
    )
    PendingStatus.objects.create(
        wa_message_id="wamid.X", payload={"status": "delivered"}, webhook_event=delivery
    )
    MessageTemplate.objects.create(
        account=conversation.whatsapp_account, name="hello_world", language="pt_BR"
    )
    from conversations import services

    services.conversation_transfer(
        conversation=conversation, actor=admin_user, to_department=support, note="fila"
    )


def _registered_models():  # type: ignore[no-untyped-def]
    return sorted(admin.site._registry, key=lambda m: m._meta.label)


@pytest.mark.usefixtures("some_of_everything")
@pytest.mark.parametrize("model", _registered_models(), ids=lambda m: m._meta.label)
def test_every_admin_page_loads_for_an_admin(admin_browser, model) -> None:  # type: ignore[no-untyped-def]
    info = model._meta.app_label, model._meta.model_name

    # the change list, with a search
    response = admin_browser.get(reverse("admin:{}_{}_changelist".format(*info)), {"q": "a"})
    assert response.status_code == 200
    response = admin_browser.get(reverse("admin:{}_{}_changelist".format(*info)))
    assert response.status_code == 200

    # the add form, where adding is allowed at all
    model_admin = admin.site._registry[model]
    request = response.wsgi_request
    if model_admin.has_add_permission(request):
        assert admin_browser.get(reverse("admin:{}_{}_add".format(*info))).status_code == 200

    # the change form of an existing row
    obj = model._default_manager.first()
    if obj is not None:
        url = reverse("admin:{}_{}_change".format(*info), args=[obj.pk])
        assert admin_browser.get(url).status_code == 200


def test_user_changelist_shows_roles_and_departments(admin_browser, agent) -> None:
    response = admin_browser.get(reverse("admin:accounts_user_changelist"))

    content = response.content.decode()
    assert agent.email in content
    assert "Suporte" in content  # the agent's department column
    assert "Agent" in content


def test_user_changelist_filters_by_role_and_department(
    admin_browser, agent, other_agent, sales
) -> None:
    url = reverse("admin:accounts_user_changelist")

    by_department = admin_browser.get(url, {"departments__id__exact": sales.pk}).content.decode()
    by_role = admin_browser.get(url, {"role__exact": "agent"}).content.decode()

    assert other_agent.email in by_department
    assert agent.email not in by_department
    assert agent.email in by_role and other_agent.email in by_role


def test_admin_creates_a_user_who_can_then_log_in(admin_browser, support, sales) -> None:
    response = admin_browser.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "Carla@Suporte.com",
            "name": "Carla Nova",
            "role": Role.AGENT,
            "member_of": [support.pk, sales.pk],
            "usable_password": "true",
            "password1": "Uma-Senha-Boa-42",
            "password2": "Uma-Senha-Boa-42",
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="carla@suporte.com")
    assert user.name == "Carla Nova"
    assert user.role == Role.AGENT
    assert set(user.departments.all()) == {support, sales}
    assert Client().login(email="carla@suporte.com", password="Uma-Senha-Boa-42")


def test_user_add_form_refuses_mismatched_passwords_and_duplicate_email(
    admin_browser, agent
) -> None:
    response = admin_browser.post(
        reverse("admin:accounts_user_add"),
        {
            "email": agent.email.upper(),
            "name": "Outra",
            "role": Role.AGENT,
            "usable_password": "true",
            "password1": "Uma-Senha-Boa-42",
            "password2": "Outra-Senha-Boa-42",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "email" in errors
    assert "password2" in errors
    assert User.objects.filter(email__iexact=agent.email).count() == 1


def test_admin_changes_role_departments_and_deactivates(admin_browser, agent, sales) -> None:
    url = reverse("admin:accounts_user_change", args=[agent.pk])
    form = admin_browser.get(url).context["adminform"].form
    assert list(form.initial["member_of"]) == list(agent.departments.all())

    response = admin_browser.post(
        url,
        {
            "email": agent.email,
            "name": agent.name,
            "role": Role.SUPERVISOR,
            "member_of": [sales.pk],
            # is_active left out: unchecked
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    agent.refresh_from_db()
    assert agent.role == Role.SUPERVISOR
    assert list(agent.departments.all()) == [sales]
    assert agent.is_active is False
    assert agent.check_password(DEFAULT_PASSWORD)  # the change form never touches the password


def test_admin_sets_a_new_password_on_the_password_page(admin_browser, agent) -> None:
    url = reverse("admin:auth_user_password_change", args=[agent.pk])
    assert admin_browser.get(url).status_code == 200

    response = admin_browser.post(
        url,
        {
            "usable_password": "true",
            "password1": "Nova-Senha-2026!",
            "password2": "Nova-Senha-2026!",
        },
    )

    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.check_password("Nova-Senha-2026!")


def _refresh_token_for(user: User) -> str:
    from rest_framework_simplejwt.tokens import RefreshToken

    return str(RefreshToken.for_user(user))


def _token_still_works(token: str) -> bool:
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import RefreshToken

    try:
        RefreshToken(token).check_blacklist()
    except TokenError:
        return False
    return True


def test_deactivating_in_the_admin_revokes_the_users_tokens(admin_browser, agent) -> None:
    token = _refresh_token_for(agent)
    url = reverse("admin:accounts_user_change", args=[agent.pk])

    admin_browser.post(url, {"email": agent.email, "name": agent.name, "role": Role.AGENT})

    agent.refresh_from_db()
    assert agent.is_active is False
    assert not _token_still_works(token)


def test_a_new_password_from_the_admin_revokes_the_users_tokens(admin_browser, agent) -> None:
    token = _refresh_token_for(agent)

    admin_browser.post(
        reverse("admin:auth_user_password_change", args=[agent.pk]),
        {
            "usable_password": "true",
            "password1": "Nova-Senha-2026!",
            "password2": "Nova-Senha-2026!",
        },
    )

    assert not _token_still_works(token)


def test_admins_cannot_demote_or_deactivate_themselves(admin_browser, admin_user) -> None:
    url = reverse("admin:accounts_user_change", args=[admin_user.pk])

    response = admin_browser.post(
        url,
        {"email": admin_user.email, "name": "Novo Nome", "role": Role.AGENT, "is_active": "on"},
        follow=True,
    )

    assert "You cannot change your own role or deactivate yourself." in [
        str(m) for m in response.context["messages"]
    ]
    admin_user.refresh_from_db()
    assert (admin_user.role, admin_user.name) == (Role.ADMIN, "Admin")


def test_change_form_never_shows_the_password_hash_as_editable(admin_browser, agent) -> None:
    content = admin_browser.get(reverse("admin:accounts_user_change", args=[agent.pk])).content
    assert b'name="password"' not in content
    assert b"../password/" in content


# --- who may enter -----------------------------------------------------------------------------


def test_admin_and_supervisor_log_in_with_email_and_password(supervisor) -> None:
    client = Client()
    response = client.post(
        reverse("admin:login"),
        {"username": supervisor.email, "password": DEFAULT_PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_agent_is_refused_from_the_admin(agent) -> None:
    client = Client()
    response = client.post(
        reverse("admin:login"),
        {"username": agent.email, "password": DEFAULT_PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 200  # the login form again, with an error
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session

    # even with a session from the console, the admin sends the agent to its login page
    client.force_login(agent)
    response = client.get("/admin/accounts/user/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_inactive_supervisor_is_refused(supervisor) -> None:
    supervisor.is_active = False
    supervisor.save()
    client = Client()
    response = client.post(
        reverse("admin:login"), {"username": supervisor.email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_supervisor_sees_conversations_but_manages_no_users_departments_or_bot(
    supervisor_browser, agent, support
) -> None:
    BotConfiguration.objects.create(key="greeting", value="Olá!")
    bot_row = BotConfiguration.objects.get()

    index = supervisor_browser.get("/admin/").content.decode()
    assert reverse("admin:conversations_conversation_changelist") in index
    assert reverse("admin:botflows_botconfiguration_changelist") not in index
    assert (
        supervisor_browser.get(reverse("admin:conversations_conversation_changelist")).status_code
        == 200
    )

    forbidden = [
        ("get", reverse("admin:accounts_user_add")),
        ("post", reverse("admin:accounts_user_change", args=[agent.pk])),
        ("get", reverse("admin:auth_user_password_change", args=[agent.pk])),
        ("get", reverse("admin:accounts_user_delete", args=[agent.pk])),
        ("get", reverse("admin:departments_department_add")),
        ("post", reverse("admin:departments_department_change", args=[support.pk])),
        ("get", reverse("admin:departments_department_delete", args=[support.pk])),
        ("get", reverse("admin:botflows_botconfiguration_changelist")),
        ("get", reverse("admin:botflows_botconfiguration_change", args=[bot_row.pk])),
    ]
    for method, url in forbidden:
        response = getattr(supervisor_browser, method)(url, {"name": "hacked", "email": "x@y.z"})
        assert response.status_code == 403, (method, url, response.status_code)

    agent.refresh_from_db()
    support.refresh_from_db()
    assert agent.name != "hacked"
    assert support.name == "Suporte"


def test_supervisor_may_look_up_users_read_only(supervisor_browser, agent) -> None:
    """``view_user`` is a supervisor permission (assignees, autocomplete): no save button."""
    response = supervisor_browser.get(reverse("admin:accounts_user_change", args=[agent.pk]))
    assert response.status_code == 200
    assert b'name="_save"' not in response.content


def test_departments_admin_lists_member_counts_and_edits_members(admin_browser, agent) -> None:
    DepartmentFactory(name="Financeiro")

    content = admin_browser.get(reverse("admin:departments_department_changelist")).content
    assert b"Financeiro" in content
    assert b"Suporte" in content


# --- language ----------------------------------------------------------------------------------


def test_admin_speaks_brazilian_portuguese(admin_browser, settings) -> None:
    settings.LANGUAGE_CODE = "pt-br"
    ConversationFactory()

    changelist = admin_browser.get(
        reverse("admin:conversations_conversation_changelist"), HTTP_ACCEPT_LANGUAGE="pt-BR"
    ).content.decode()
    user_form = admin_browser.get(
        reverse("admin:accounts_user_add"), HTTP_ACCEPT_LANGUAGE="pt-BR"
    ).content.decode()

    assert "Conversas" in changelist
    assert "Última atividade" in changelist
    assert "Assumir as conversas selecionadas" in changelist
    assert "Encerrar as conversas selecionadas" in changelist
    assert "Transferir as conversas selecionadas" in changelist
    assert "Perfil" in user_form  # the role field
    assert "Departamentos" in user_form


def test_admin_speaks_english_when_asked(admin_browser) -> None:
    ConversationFactory()
    changelist = admin_browser.get(
        reverse("admin:conversations_conversation_changelist"), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "Close selected conversations" in changelist


def test_the_admin_switches_language_and_remembers_it(admin_browser) -> None:
    page = admin_browser.get(reverse("admin:index")).content.decode()
    assert 'id="language-form"' in page

    response = admin_browser.post(
        reverse("accounts:language"), {"language": "pt-br", "next": reverse("admin:index")}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")

    index = admin_browser.get(reverse("admin:index")).content.decode()
    assert "Administração" in index  # the index title, now in Portuguese
    assert "Conversas" in index


def test_admin_sets_a_users_capacity_and_sees_their_availability(admin_browser, agent) -> None:
    url = reverse("admin:accounts_user_change", args=[agent.pk])
    page = admin_browser.get(url)
    assert 'name="max_conversations"' in page.content.decode()
    assert 'name="availability"' not in page.content.decode()  # the agent's own switch

    response = admin_browser.post(
        url,
        {
            "email": agent.email,
            "name": agent.name,
            "role": Role.AGENT,
            "is_active": "on",
            "member_of": [d.pk for d in agent.departments.all()],
            "max_conversations": "8",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    agent.refresh_from_db()
    assert agent.max_conversations == 8
    bad = admin_browser.post(
        url,
        {
            "email": agent.email,
            "name": agent.name,
            "role": Role.AGENT,
            "is_active": "on",
            "max_conversations": "0",
        },
    )
    assert "max_conversations" in bad.context["adminform"].form.errors
