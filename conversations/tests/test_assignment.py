"""Issue 13 §2 "Assign": a department's queue gives its conversations to its agents by itself
(round robin or least busy), only to agents available, online and under their capacity; what
cannot be given waits and goes to the first agent who frees up. Written as an assignment (event
row with no actor, ``conversation.assigned`` ``how`` automatic); manual departments unchanged."""

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.utils import timezone

from accounts import presence
from accounts.models import Availability, User
from accounts.tests.factories import UserFactory
from common.events import DomainEvent
from conversations import services
from conversations.models import (
    AgentAssignmentState,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    EventKind,
    Priority,
)
from conversations.services import assignment
from conversations.tasks import assignment_sweep_task
from conversations.tests.factories import ConversationFactory
from departments.models import AssignmentMode, Department
from departments.services import department_update
from departments.tests.factories import DepartmentFactory
from supportdesk.tests.api_support import api_env, assert_error_shape, bearer

# Real commits: the handlers run after them, as in production (and the threads of the races).
pytestmark = pytest.mark.django_db(transaction=True)


class Recorder:
    """A domain-event handler that keeps what was emitted."""

    events: ClassVar[list[DomainEvent]] = []

    def in_transaction(self, events: Sequence[DomainEvent]) -> None:
        Recorder.events.extend(events)


@pytest.fixture
def emitted(settings: Any) -> list[DomainEvent]:
    Recorder.events = []
    settings.DOMAIN_EVENT_HANDLERS = [
        *settings.DOMAIN_EVENT_HANDLERS,
        "conversations.tests.test_assignment.Recorder",
    ]
    return Recorder.events


@pytest.fixture
def online() -> Iterator[Any]:
    """``online(user)``: the user has the console open (a presence connection) for the test."""
    connected: list[int] = []

    def connect(*users: User) -> None:
        for user in users:
            presence.presence_connect(user_id=user.pk)
            connected.append(user.pk)

    yield connect
    for user_id in connected:
        presence.presence_disconnect(user_id=user_id)


def _department(mode: str, name: str = "Suporte") -> Department:
    return DepartmentFactory(name=name, assignment=mode)


def _agents(department: Department, n: int, **fields: Any) -> list[User]:
    return [
        UserFactory(role="agent", name=f"Agent {i}", departments=[department], **fields)
        for i in range(n)
    ]


def _from_bot(department: Department, **fields: Any) -> Conversation:
    """A customer the bot hands to ``department`` (the menu choice), as the bot does it."""
    conversation = ConversationFactory(status=ConversationStatus.BOT, **fields)
    services.conversation_route_to_department(
        conversation=conversation, department=department, reason="menu"
    )
    conversation.refresh_from_db()
    return conversation


def _open_count(user: User) -> int:
    return Conversation.objects.filter(assigned_to=user, status=ConversationStatus.OPEN).count()


# --- entering a queue -------------------------------------------------------------------------


def test_the_bots_handover_goes_at_once_to_an_online_agent_and_is_written_as_an_assignment(
    online: Any, emitted: list[DomainEvent]
) -> None:
    support = _department(AssignmentMode.ROUND_ROBIN)
    (ana,) = _agents(support, 1)
    online(ana)

    conversation = _from_bot(support)

    assert conversation.status == ConversationStatus.OPEN
    assert conversation.assigned_to == ana
    event = ConversationEvent.objects.get(conversation=conversation, kind=EventKind.ASSIGNED)
    assert event.actor is None
    assert event.after == {
        "status": "open",
        "department": support.pk,
        "assigned_to": ana.pk,
        "assignment": "round_robin",
    }
    (assigned,) = [e for e in emitted if e.type == "conversation.assigned"]
    assert assigned.how == "automatic"  # type: ignore[attr-defined]
    assert assigned.user_id == ana.pk  # type: ignore[attr-defined]
    assert assigned.actor_id is None  # type: ignore[attr-defined]
    assert assigned.conversation["assigned_to"]["id"] == ana.pk  # type: ignore[attr-defined]


def test_round_robin_gives_each_agent_the_next_one_in_turn(online: Any) -> None:
    support = _department(AssignmentMode.ROUND_ROBIN)
    agents = _agents(support, 3)
    online(*agents)

    given = [_from_bot(support).assigned_to for _ in range(7)]

    by_id = sorted(agents, key=lambda a: a.pk)
    assert given == [*by_id, *by_id, by_id[0]]


def test_least_busy_picks_the_fewest_open_then_whoever_waited_longest(online: Any) -> None:
    support = _department(AssignmentMode.LEAST_BUSY)
    busy, idle_long, idle_recent = _agents(support, 3)
    online(busy, idle_long, idle_recent)
    ConversationFactory(department=support, assigned_to=busy, status=ConversationStatus.OPEN)
    now = timezone.now()
    AgentAssignmentState.objects.create(user=idle_long, last_assigned_at=now - timedelta(hours=2))
    AgentAssignmentState.objects.create(
        user=idle_recent, last_assigned_at=now - timedelta(minutes=1)
    )

    first = _from_bot(support).assigned_to
    second = _from_bot(support).assigned_to
    third = _from_bot(support).assigned_to

    assert first == idle_long  # none open, like idle_recent, and the longest without one
    assert second == idle_recent  # the only one left with none open
    assert third == busy  # all at one: busy was never given one automatically
    assert [_open_count(a) for a in (busy, idle_long, idle_recent)] == [2, 1, 1]


def test_away_and_offline_agents_are_never_chosen_and_the_conversation_waits(online: Any) -> None:
    support = _department(AssignmentMode.ROUND_ROBIN)
    away = UserFactory(role="agent", departments=[support], availability=Availability.AWAY)
    offline = UserFactory(role="agent", departments=[support])
    online(away)

    conversation = _from_bot(support)

    assert conversation.status == ConversationStatus.PENDING
    assert conversation.assigned_to is None
    assert not ConversationEvent.objects.filter(kind=EventKind.ASSIGNED).exists()

    online(offline)  # opens the console: the one who may take it now
    assignment.agent_assign_waiting(user_id=offline.pk)
    conversation.refresh_from_db()
    assert conversation.assigned_to == offline


def test_supervisors_and_inactive_members_are_not_given_conversations(online: Any) -> None:
    support = _department(AssignmentMode.LEAST_BUSY)
    supervisor = UserFactory(role="supervisor", departments=[support])
    gone = UserFactory(role="agent", departments=[support], is_active=False)
    online(supervisor, gone)

    assert _from_bot(support).assigned_to is None


def test_an_agent_at_capacity_is_skipped(online: Any) -> None:
    support = _department(AssignmentMode.ROUND_ROBIN)
    full, free = _agents(support, 2)
    full.max_conversations = 1
    full.save()
    online(full, free)
    ConversationFactory(department=support, assigned_to=full, status=ConversationStatus.OPEN)

    given = {_from_bot(support).assigned_to for _ in range(3)}

    assert given == {free}
    assert _open_count(full) == 1


def test_a_transfer_to_an_automatic_department_and_a_reopening_are_assigned(
    online: Any, agent: User
) -> None:
    sales = _department(AssignmentMode.ROUND_ROBIN, name="Vendas")
    (bruno,) = _agents(sales, 1)
    online(bruno)
    conversation = ConversationFactory(
        department=agent.departments.get(), assigned_to=agent, status=ConversationStatus.OPEN
    )

    services.conversation_transfer(conversation=conversation, actor=agent, to_department=sales)
    conversation.refresh_from_db()
    assert (conversation.department, conversation.assigned_to) == (sales, bruno)
    assert conversation.status == ConversationStatus.OPEN

    closed = ConversationFactory(department=sales, status=ConversationStatus.CLOSED)
    services.conversation_reopen(conversation=closed, actor=UserFactory(role="supervisor"))
    closed.refresh_from_db()
    assert closed.assigned_to == bruno


def test_a_manual_department_leaves_the_conversation_in_the_queue(online: Any) -> None:
    support = _department(AssignmentMode.MANUAL)
    agents = _agents(support, 2)
    online(*agents)

    conversation = _from_bot(support)

    assert conversation.status == ConversationStatus.PENDING
    assert conversation.assigned_to is None
    assert assignment.department_assign_waiting(department_id=support.pk) == []


# --- an agent frees up --------------------------------------------------------------------------


def _full_agent(department: Department, online: Any) -> tuple[User, Conversation]:
    (ana,) = _agents(department, 1, max_conversations=1)
    online(ana)
    current = ConversationFactory(
        department=department, assigned_to=ana, status=ConversationStatus.OPEN
    )
    return ana, current


def _waiting(department: Department, *, priority: str, minutes_ago: int) -> Conversation:
    return ConversationFactory(
        department=department,
        status=ConversationStatus.PENDING,
        priority=priority,
        last_inbound_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_an_agent_who_closes_one_gets_the_most_urgent_longest_waiting(online: Any) -> None:
    support = _department(AssignmentMode.ROUND_ROBIN)
    ana, current = _full_agent(support, online)
    old_normal = _waiting(support, priority=Priority.NORMAL, minutes_ago=60)
    urgent_recent = _waiting(support, priority=Priority.URGENT, minutes_ago=5)
    urgent_old = _waiting(support, priority=Priority.URGENT, minutes_ago=20)

    services.conversation_close(conversation=current, actor=ana)

    assert list(Conversation.objects.filter(assigned_to=ana, status="open")) == [urgent_old]
    services.conversation_close(conversation=urgent_old, actor=ana)
    assert list(Conversation.objects.filter(assigned_to=ana, status="open")) == [urgent_recent]
    old_normal.refresh_from_db()
    assert old_normal.status == ConversationStatus.PENDING


def test_an_agent_who_transfers_one_away_gets_the_next(online: Any, supervisor: User) -> None:
    support = _department(AssignmentMode.LEAST_BUSY)
    sales = _department(AssignmentMode.MANUAL, name="Vendas")
    ana, current = _full_agent(support, online)
    waiting = _waiting(support, priority=Priority.NORMAL, minutes_ago=3)

    services.conversation_transfer(conversation=current, actor=ana, to_department=sales)

    waiting.refresh_from_db()
    assert waiting.assigned_to == ana


@pytest.mark.usefixtures(api_env.__name__)
def test_an_agent_back_from_away_gets_what_waits(online: Any) -> None:
    support = _department(AssignmentMode.ROUND_ROBIN)
    (ana,) = _agents(support, 1, availability=Availability.AWAY)
    online(ana)
    waiting = _from_bot(support)
    assert waiting.assigned_to is None

    response = bearer(ana).patch("/api/v1/auth/me", {"availability": "available"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["availability"] == "available"
    waiting.refresh_from_db()
    assert waiting.assigned_to == ana


def test_switching_a_department_to_automatic_assigns_what_already_waits(
    online: Any, admin_user: User
) -> None:
    support = _department(AssignmentMode.MANUAL)
    agents = _agents(support, 2)
    online(*agents)
    waiting = [_from_bot(support) for _ in range(3)]
    assert all(c.assigned_to is None for c in waiting)

    department_update(department=support, actor=admin_user, assignment=AssignmentMode.ROUND_ROBIN)

    counts = sorted(_open_count(a) for a in agents)
    assert counts == [1, 2]


def test_the_sweep_assigns_what_waits_in_automatic_queues_only(online: Any) -> None:
    support = _department(AssignmentMode.LEAST_BUSY)
    manual = _department(AssignmentMode.MANUAL, name="Vendas")
    (ana,) = _agents(support, 1)
    ana.departments.add(manual)
    online(ana)
    lost = _waiting(support, priority=Priority.NORMAL, minutes_ago=1)  # its task was lost
    by_hand = _waiting(manual, priority=Priority.NORMAL, minutes_ago=1)

    assert assignment_sweep_task() == 1

    lost.refresh_from_db()
    by_hand.refresh_from_db()
    assert lost.assigned_to == ana
    assert by_hand.assigned_to is None


# --- PATCH /auth/me {availability} ----------------------------------------------------------------


@pytest.mark.usefixtures(api_env.__name__)
def test_me_shows_and_switches_availability(agent: User) -> None:
    client = bearer(agent)
    me = client.get("/api/v1/auth/me").json()
    assert me["availability"] == "available"
    assert me["max_conversations"] == 5

    response = client.patch("/api/v1/auth/me", {"availability": "away"}, format="json")

    assert response.status_code == 200
    assert response.json()["availability"] == "away"
    assert response.json()["email"] == agent.email
    agent.refresh_from_db()
    assert agent.availability == Availability.AWAY


@pytest.mark.usefixtures(api_env.__name__)
def test_me_refuses_an_unknown_availability_with_the_field(agent: User) -> None:
    response = bearer(agent).patch("/api/v1/auth/me", {"availability": "busy"}, format="json")

    body = assert_error_shape(response, 400)
    assert set(body["errors"]) == {"availability"}
    agent.refresh_from_db()
    assert agent.availability == Availability.AVAILABLE


@pytest.mark.usefixtures(api_env.__name__)
def test_departments_api_shows_and_changes_the_assignment_mode(admin_user: User) -> None:
    support = _department(AssignmentMode.MANUAL)
    client = bearer(admin_user)
    assert client.get(f"/api/v1/departments/{support.pk}").json()["assignment"] == "manual"

    response = client.patch(
        f"/api/v1/departments/{support.pk}", {"assignment": "least_busy"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["assignment"] == "least_busy"

    bad = client.patch(
        f"/api/v1/departments/{support.pk}", {"assignment": "lottery"}, format="json"
    )
    assert set(assert_error_shape(bad, 400)["errors"]) == {"assignment"}
    support.refresh_from_db()
    assert support.assignment == AssignmentMode.LEAST_BUSY


@pytest.mark.usefixtures(api_env.__name__)
def test_an_admin_sets_a_users_capacity_and_only_an_admin(admin_user: User, agent: User) -> None:
    response = bearer(admin_user).patch(
        f"/api/v1/users/{agent.pk}", {"max_conversations": 8}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["max_conversations"] == 8

    assert (
        bearer(agent)
        .patch(f"/api/v1/users/{agent.pk}", {"max_conversations": 50}, format="json")
        .status_code
        == 403
    )
    zero = bearer(admin_user).patch(
        f"/api/v1/users/{agent.pk}", {"max_conversations": 0}, format="json"
    )
    assert set(assert_error_shape(zero, 400)["errors"]) == {"max_conversations"}
    agent.refresh_from_db()
    assert agent.max_conversations == 8


def test_the_console_timeline_says_it_was_assigned_automatically(
    online: Any, client: Any, settings: Any
) -> None:
    settings.SECURE_SSL_REDIRECT = False
    settings.LANGUAGE_CODE = "en"
    support = _department(AssignmentMode.ROUND_ROBIN)
    (ana,) = _agents(support, 1)
    ana.name = "Ana Lima"
    ana.save()
    online(ana)
    conversation = _from_bot(support)
    client.force_login(ana)

    page = client.get(f"/c/{conversation.pk}/").content.decode()

    assert "Assigned automatically to Ana Lima" in page


def test_a_conversation_passed_back_to_the_queue_goes_to_someone_else(online: Any) -> None:
    support = _department(AssignmentMode.ROUND_ROBIN)
    ana, bruno = sorted(_agents(support, 2), key=lambda a: a.pk)
    online(ana, bruno)
    first = _from_bot(support)
    assert first.assigned_to == ana
    cursor = type(support).objects.get(pk=support.pk).assignment_cursor
    cursor.last_user = bruno  # round robin would pick ana next…
    cursor.save()

    services.conversation_transfer(conversation=first, actor=ana, to_department=support)

    first.refresh_from_db()
    assert first.assigned_to == bruno  # …but she just passed it on


def test_the_only_agent_gets_back_what_she_passed_on_when_nobody_else_may(online: Any) -> None:
    support = _department(AssignmentMode.LEAST_BUSY)
    (ana,) = _agents(support, 1)
    online(ana)
    first = _from_bot(support)

    services.conversation_transfer(conversation=first, actor=ana, to_department=support)

    first.refresh_from_db()
    assert first.assigned_to == ana
    assert first.status == ConversationStatus.OPEN
