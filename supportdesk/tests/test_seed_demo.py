"""``manage.py seed_demo``: contract §3's demo desk, idempotent, never with DEBUG off."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import translation

from accounts.models import Role, User
from botflows.models import BotConfiguration, Flow
from conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    EventKind,
    Message,
)
from departments.models import Department
from whatsapp.models import WhatsAppAccount
from whatsapp.services.accounts import SANDBOX_PHONE_NUMBER_ID

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parents[2]

CONTRACT_USERS = [
    ("admin@suporte.com", "Admin@123", Role.ADMIN, {"Suporte", "Vendas", "Financeiro"}),
    ("supervisor@suporte.com", "Super@123", Role.SUPERVISOR, {"Suporte", "Vendas", "Financeiro"}),
    ("agente1@suporte.com", "Agente@123", Role.AGENT, {"Suporte"}),
    ("agente2@suporte.com", "Agente@123", Role.AGENT, {"Vendas"}),
]


@pytest.fixture(autouse=True)
def _debug(settings):  # type: ignore[no-untyped-def]
    settings.DEBUG = True
    settings.WHATSAPP_PHONE_NUMBER_ID = ""
    settings.WHATSAPP_ACCESS_TOKEN = ""
    settings.SECURE_SSL_REDIRECT = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users


def _seed(*args: str) -> str:
    out = StringIO()
    with translation.override("en"):
        call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        model._meta.label: model._default_manager.count()
        for app in ("accounts", "departments", "conversations", "botflows", "whatsapp")
        for model in apps.get_app_config(app).get_models()
    }


@pytest.mark.parametrize(("email", "password", "role", "departments"), CONTRACT_USERS)
def test_creates_the_contract_users_with_working_passwords(
    email, password, role, departments
) -> None:
    _seed()

    user = User.objects.get(email=email)
    assert user.role == role
    assert user.is_active
    assert {d.name for d in user.departments.all()} == departments
    assert Client().login(email=email, password=password)


def test_admin_logs_into_the_back_office_with_the_demo_password() -> None:
    _seed()
    client = Client()

    response = client.post(
        "/admin/login/",
        {"username": "admin@suporte.com", "password": "Admin@123", "next": "/admin/"},
    )

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_departments_number_and_bot_settings() -> None:
    _seed()

    assert set(Department.objects.values_list("name", flat=True)) == {
        "Suporte",
        "Vendas",
        "Financeiro",
    }
    # the number the sandbox simulator and WhatsApp intake use
    assert WhatsAppAccount.objects.get().phone_number_id == SANDBOX_PHONE_NUMBER_ID
    config = dict(BotConfiguration.objects.values_list("key", "value"))
    assert config["greeting"]
    menu = [(o["id"], o["label"]) for o in config["menu"]["options"]]
    assert menu == [("1", "Suporte"), ("2", "Vendas"), ("3", "Financeiro")]
    assert config["handoff_keywords"] == ["atendente", "humano", "falar com alguém"]


def test_the_bot_has_its_demo_flow() -> None:
    _seed()
    flow = Flow.objects.get(is_default=True)
    assert flow.start_node is not None


def test_no_demo_conversations_when_a_real_whatsapp_token_is_set(settings) -> None:
    settings.WHATSAPP_ACCESS_TOKEN = "EAAG-real-token"

    output = _seed()

    assert "demo conversations skipped" in output
    assert not Conversation.objects.exists()
    assert User.objects.filter(email="admin@suporte.com").exists()


def test_uses_the_configured_phone_number_id(settings) -> None:
    settings.WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
    _seed()
    assert WhatsAppAccount.objects.get().phone_number_id == "106540352242922"


def test_demo_conversations_in_every_state_built_through_services() -> None:
    _seed()

    by_status = {c.status: c for c in Conversation.objects.select_related("department")}
    assert set(by_status) == {"bot", "pending", "open", "closed"}

    assert by_status["bot"].department is None
    assert by_status["pending"].department.name == "Suporte"
    assert by_status["pending"].assigned_to is None
    assert by_status["open"].department.name == "Suporte"
    assert by_status["open"].assigned_to.email == "agente1@suporte.com"
    assert by_status["closed"].closed_at is not None

    for conversation in by_status.values():
        assert Message.objects.filter(conversation=conversation, direction="in").exists()
        assert Message.objects.filter(conversation=conversation, sender="bot").exists()
        assert ConversationEvent.objects.filter(
            conversation=conversation, kind=EventKind.CREATED
        ).exists()
    # the services wrote the history, as they would for a real customer
    open_conversation = by_status["open"]
    assert open_conversation.first_response_at is not None
    assert ConversationEvent.objects.filter(
        conversation=open_conversation, kind=EventKind.TAKEN_OVER
    ).exists()
    assert ConversationEvent.objects.filter(
        conversation=by_status["closed"], kind=EventKind.CLOSED
    ).exists()
    assert by_status["open"].unread_count > 0
    assert by_status["closed"].status == ConversationStatus.CLOSED


def test_running_twice_changes_nothing() -> None:
    first_output = _seed()
    before = _counts()
    hashes = dict(User.objects.values_list("email", "password"))

    second_output = _seed()

    assert _counts() == before
    assert dict(User.objects.values_list("email", "password")) == hashes
    assert "created" in first_output
    assert "nothing changed" in second_output


def test_a_changed_password_is_kept_unless_reset_is_asked() -> None:
    _seed()
    ana = User.objects.get(email="agente1@suporte.com")
    ana.set_password("Minha-Senha-Nova-1")
    ana.save()

    _seed()
    ana.refresh_from_db()
    assert ana.check_password("Minha-Senha-Nova-1")

    _seed("--reset-passwords")
    ana.refresh_from_db()
    assert ana.check_password("Agente@123")


def test_refuses_to_run_with_debug_off(settings) -> None:
    settings.DEBUG = False

    with pytest.raises(CommandError, match="refuses to run when DEBUG is off"):
        _seed()

    assert not User.objects.exists()
    assert not Department.objects.exists()


def test_refusal_exits_non_zero_from_the_command_line(tmp_path) -> None:
    env = {
        **os.environ,
        "DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings_test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'refused.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "DEBUG" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_sandbox_number_gets_an_approved_template_to_reopen_a_closed_window() -> None:
    from whatsapp.models import MessageTemplate
    from whatsapp.services.templates import template_check

    _seed()
    template = MessageTemplate.objects.get(name="retomar_atendimento")
    payload = {
        "name": "retomar_atendimento",
        "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Rita"}]}],
    }
    assert template_check(account_id=template.account_id, payload=payload) == template
    _seed()
    assert MessageTemplate.objects.count() == 1  # idempotent


@pytest.mark.django_db(transaction=True)
def test_the_scripted_stories_are_not_answered_again_by_the_live_bot() -> None:
    call_command("seed_demo", stdout=StringIO())

    waiting = Conversation.objects.get(status=ConversationStatus.BOT)
    bot_lines = list(waiting.messages.filter(sender="bot").values_list("body", flat=True))
    assert len(bot_lines) == len(set(bot_lines)) == 2  # the greeting and the menu, once each
