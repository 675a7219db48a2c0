"""Issue 13 §2: an agent's capacity (``max_conversations``) binds people as it binds automatic
assignment. An agent at the ceiling who takes one over, starts one, reopens one, or is handed
one by a colleague gets ``409 at_capacity`` with what to do; supervisors and admins go past it
only explicitly (``over_capacity`` in the API, "Assign anyway" in the console, a box in the back
office), and the history says so. The API, the console and the back office agree."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from common.exceptions import Conflict
from conversations import services
from conversations.models import Conversation, ConversationEvent, ConversationStatus, EventKind
from conversations.tests.factories import ConversationFactory
from departments.models import Department
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer
from whatsapp.models import MessageTemplate

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures(api_env.__name__)]

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"
    settings.CSAT_ENABLED = False


def _full(user: User, department: Department) -> list[Conversation]:
    """Give ``user`` as many open conversations as their capacity."""
    return [
        ConversationFactory(department=department, assigned_to=user, status=ConversationStatus.OPEN)
        for _ in range(user.max_conversations)
    ]


def _load(user: User) -> int:
    return Conversation.objects.filter(
        assigned_to=user, status__in=[ConversationStatus.OPEN, ConversationStatus.PENDING]
    ).count()


@pytest.fixture
def ana(support: Department) -> User:
    return UserFactory(role="agent", name="Ana Agente", departments=[support], max_conversations=2)


@pytest.fixture
def bia(support: Department) -> User:
    return UserFactory(role="agent", name="Bia Agente", departments=[support], max_conversations=2)


# --- API ------------------------------------------------------------------------------------------


def test_an_agent_at_capacity_cannot_take_one_over_and_is_told_why(
    ana: User, support: Department
) -> None:
    waiting = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    (first, _second) = _full(ana, support)

    refused = bearer(ana).post(f"/api/v1/conversations/{waiting.pk}/takeover")

    body = assert_error_shape(refused, 409, "at_capacity")
    assert "You already have 2 open conversations, your limit of 2" in body["detail"]
    waiting.refresh_from_db()
    assert (waiting.status, waiting.assigned_to_id) == (ConversationStatus.PENDING, None)
    assert not ConversationEvent.objects.filter(
        conversation=waiting, kind=EventKind.TAKEN_OVER
    ).exists()
    # with room again (one closed), the same take-over goes through
    services.conversation_close(conversation=first, actor=ana)
    taken = bearer(ana).post(f"/api/v1/conversations/{waiting.pk}/takeover")
    assert taken.status_code == 200, taken.content
    assert taken.json()["assigned_to"]["id"] == ana.pk
    assert _load(ana) == 2


def test_taking_over_ones_own_conversation_again_is_no_new_load(
    ana: User, support: Department
) -> None:
    (mine, _other) = _full(ana, support)
    again = bearer(ana).post(f"/api/v1/conversations/{mine.pk}/takeover")
    assert again.status_code == 200, again.content


def test_an_agent_cannot_hand_one_to_a_full_colleague_nor_ask_to_go_past(
    ana: User, bia: User, support: Department
) -> None:
    mine = ConversationFactory(department=support, assigned_to=ana, status=ConversationStatus.OPEN)
    _full(bia, support)
    client = bearer(ana)

    refused = client.post(
        f"/api/v1/conversations/{mine.pk}/transfer", {"to_user": bia.pk}, format="json"
    )
    forced = client.post(
        f"/api/v1/conversations/{mine.pk}/transfer",
        {"to_user": bia.pk, "over_capacity": True},
        format="json",
    )

    body = assert_error_shape(refused, 409, "at_capacity")
    assert "Bia Agente already has 2 open conversations" in body["detail"]
    assert "ask a supervisor" in body["detail"]
    assert_error_shape(forced, 403)
    mine.refresh_from_db()
    assert mine.assigned_to == ana
    # the department's queue is always open to them
    queued = client.post(
        f"/api/v1/conversations/{mine.pk}/transfer", {"to_department": support.pk}, format="json"
    )
    assert queued.status_code == 200, queued.content


def test_a_supervisor_goes_past_an_agents_capacity_only_explicitly(
    supervisor: User, bia: User, support: Department
) -> None:
    waiting = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    _full(bia, support)
    client = bearer(supervisor)

    refused = client.post(
        f"/api/v1/conversations/{waiting.pk}/transfer", {"to_user": bia.pk}, format="json"
    )
    body = assert_error_shape(refused, 409, "at_capacity")
    assert "assign it anyway" in body["detail"]
    assert _load(bia) == 2

    forced = client.post(
        f"/api/v1/conversations/{waiting.pk}/transfer",
        {"to_user": bia.pk, "over_capacity": True, "note": "cliente dela"},
        format="json",
    )

    assert forced.status_code == 200, forced.content
    assert forced.json()["assigned_to"]["id"] == bia.pk
    assert _load(bia) == 3
    event = ConversationEvent.objects.get(conversation=waiting, kind=EventKind.TRANSFERRED)
    assert event.after["over_capacity"] is True
    assert event.actor == supervisor


def test_supervisors_and_admins_are_not_bound_themselves(
    supervisor: User, support: Department
) -> None:
    supervisor.max_conversations = 1
    supervisor.save()
    ConversationFactory(department=support, assigned_to=supervisor, status=ConversationStatus.OPEN)
    waiting = ConversationFactory(department=support, status=ConversationStatus.PENDING)

    taken = bearer(supervisor).post(f"/api/v1/conversations/{waiting.pk}/takeover")

    assert taken.status_code == 200, taken.content


def test_reopening_gives_it_back_within_the_agents_capacity(
    ana: User, supervisor: User, support: Department
) -> None:
    closed = ConversationFactory(
        department=support, assigned_to=ana, status=ConversationStatus.CLOSED
    )
    _full(ana, support)

    refused = bearer(ana).post(f"/api/v1/conversations/{closed.pk}/reopen")
    by_supervisor = bearer(supervisor).post(f"/api/v1/conversations/{closed.pk}/reopen")
    assert_error_shape(refused, 409, "at_capacity")
    assert_error_shape(by_supervisor, 409, "at_capacity")
    closed.refresh_from_db()
    assert closed.status == ConversationStatus.CLOSED

    forced = bearer(supervisor).post(
        f"/api/v1/conversations/{closed.pk}/reopen", {"over_capacity": True}, format="json"
    )

    assert forced.status_code == 200, forced.content
    assert forced.json()["status"] == "open"
    event = ConversationEvent.objects.get(conversation=closed, kind=EventKind.REOPENED)
    assert event.after["over_capacity"] is True


def test_an_agent_at_capacity_starts_no_conversation(
    fake_graph: Any, ana: User, support: Department
) -> None:
    MessageTemplate.objects.create(
        account=fake_graph.account,
        name="boas_vindas",
        language="pt_BR",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Olá {{1}}!"}],
    )
    _full(ana, support)
    before = Conversation.objects.count()

    refused = bearer(ana).post(
        "/api/v1/conversations",
        {
            "phone": "+55 11 98765-4321",
            "template": {"name": "boas_vindas", "language": "pt_BR", "parameters": ["Maria"]},
        },
        format="json",
    )

    assert_error_shape(refused, 409, "at_capacity")
    assert Conversation.objects.count() == before
    assert fake_graph.message_sends == []


def test_the_service_assigns_past_capacity_only_for_a_supervisor_who_says_so(
    supervisor: User, bia: User, support: Department
) -> None:
    waiting = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    _full(bia, support)
    with pytest.raises(Conflict):
        services.conversation_assign(conversation=waiting, actor=supervisor, to_user=bia)
    services.conversation_assign(
        conversation=waiting, actor=supervisor, to_user=bia, over_capacity=True
    )
    event = ConversationEvent.objects.get(conversation=waiting, kind=EventKind.ASSIGNED)
    assert event.after["over_capacity"] is True


# --- console --------------------------------------------------------------------------------------


def _browser(user: User, settings: Any) -> Client:
    settings.SECURE_SSL_REDIRECT = False
    client = Client()
    client.force_login(user)
    return client


def test_the_console_tells_a_full_agent_why_it_cannot_take_over(
    settings: Any, ana: User, support: Department
) -> None:
    waiting = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    _full(ana, support)

    response = _browser(ana, settings).post(
        reverse("conversations:take_over", args=[waiting.pk]), **HTMX
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert "You already have 2 open conversations, your limit of 2" in content
    assert "Assign anyway" not in content  # an agent cannot go past it
    waiting.refresh_from_db()
    assert waiting.assigned_to_id is None


def test_the_console_shows_each_agents_load_and_lets_a_supervisor_assign_anyway(
    settings: Any, supervisor: User, bia: User, support: Department
) -> None:
    waiting = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    _full(bia, support)
    browser = _browser(supervisor, settings)

    pane = browser.get(reverse("conversations:detail", args=[waiting.pk]), **HTMX)
    assert f'<option value="{bia.pk}" data-at-capacity>Bia Agente (2 of 2)</option>' in (
        pane.content.decode()
    )

    url = reverse("conversations:transfer", args=[waiting.pk])
    refused = browser.post(url, {"to_user": bia.pk, "note": "é dela"}, **HTMX)
    content = refused.content.decode()
    assert "Bia Agente already has 2 open conversations" in content
    assert "Assign anyway" in content
    assert f'<input type="hidden" name="to_user" value="{bia.pk}">' in content
    assert '<input type="hidden" name="note" value="é dela">' in content
    waiting.refresh_from_db()
    assert waiting.assigned_to_id is None

    # the button posts the same transfer again, with over_capacity
    forced = browser.post(url, {"to_user": bia.pk, "note": "é dela", "over_capacity": "1"}, **HTMX)

    assert "Past the agent's capacity, by a supervisor's decision." in forced.content.decode()
    waiting.refresh_from_db()
    assert waiting.assigned_to == bia
    assert _load(bia) == 3


def test_the_back_office_transfer_goes_past_capacity_only_with_its_box(
    settings: Any, admin_user: User, bia: User, support: Department
) -> None:
    waiting = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    _full(bia, support)
    browser = _browser(admin_user, settings)

    def transfer(**extra: Any) -> list[str]:
        response = browser.post(
            reverse("admin:conversations_conversation_changelist"),
            {
                "action": "transfer_selected",
                "_selected_action": [waiting.pk],
                "apply": "Yes",
                "to_user": bia.pk,
                **extra,
            },
            follow=True,
        )
        return [str(m) for m in response.context["messages"]]

    refused = transfer()
    assert any("Bia Agente already has 2 open conversations" in m for m in refused)
    waiting.refresh_from_db()
    assert waiting.assigned_to_id is None

    assert "1 conversation transferred." in transfer(over_capacity="on")
    waiting.refresh_from_db()
    assert waiting.assigned_to == bia


def test_the_refusal_speaks_portuguese(settings: Any, ana: User, support: Department) -> None:
    settings.LANGUAGE_CODE = "pt-br"
    waiting = ConversationFactory(department=support, status=ConversationStatus.PENDING)
    _full(ana, support)

    refused = bearer(ana).post(f"/api/v1/conversations/{waiting.pk}/takeover")

    body = assert_error_shape(refused, 409, "at_capacity")
    assert body["detail"].startswith("Você já tem 2 conversas abertas, o seu limite de 2")
