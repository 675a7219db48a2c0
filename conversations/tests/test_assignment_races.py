"""Automatic assignment under concurrency, on separate database connections (PostgreSQL): many
conversations entering queues at the same moment, agents freed while others arrive. Nobody gets
a conversation twice, nobody goes past their capacity, round robin splits evenly, least busy
evens the loads."""

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from accounts import presence
from accounts.models import Availability, User
from accounts.tests.factories import UserFactory
from common.exceptions import Conflict
from conversations import services
from conversations.error_codes import ConversationErrorCode
from conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationStatus,
    EventKind,
    Priority,
)
from conversations.tests.factories import ConversationFactory
from departments.models import AssignmentMode, Department
from departments.tests.factories import DepartmentFactory
from supportdesk.tests.concurrency import errors_of, race

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="needs PostgreSQL (row locks, real concurrency)"
    ),
]


@pytest.fixture
def online() -> Iterator[Any]:
    connected: list[int] = []

    def connect(*users: User) -> None:
        for user in users:
            presence.presence_connect(user_id=user.pk)
            connected.append(user.pk)

    yield connect
    for user_id in connected:
        presence.presence_disconnect(user_id=user_id)


def _agents(department: Department, n: int, **fields: Any) -> list[User]:
    return [UserFactory(role="agent", departments=[department], **fields) for _ in range(n)]


def _with_bot(n: int) -> list[Conversation]:
    return [ConversationFactory(status=ConversationStatus.BOT) for _ in range(n)]


def _hand_over(conversation: Conversation, department: Department) -> None:
    services.conversation_route_to_department(conversation=conversation, department=department)


def _arrive_together(conversations: list[Conversation], department: Department) -> None:
    errors = errors_of(race(*[partial(_hand_over, c, department) for c in conversations]))
    assert errors == []


def _loads(agents: list[User]) -> list[int]:
    counts = Counter(
        Conversation.objects.filter(status=ConversationStatus.OPEN).values_list(
            "assigned_to_id", flat=True
        )
    )
    return [counts.get(a.pk, 0) for a in agents]


def _assert_each_assigned_once() -> None:
    per_conversation = Counter(
        ConversationEvent.objects.filter(kind=EventKind.ASSIGNED).values_list(
            "conversation_id", flat=True
        )
    )
    assert per_conversation, "nothing was assigned"
    assert set(per_conversation.values()) == {1}


def test_round_robin_splits_concurrent_arrivals_evenly(online: Any) -> None:
    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.ROUND_ROBIN)
    agents = _agents(support, 3)
    online(*agents)

    _arrive_together(_with_bot(9), support)

    assert _loads(agents) == [3, 3, 3]
    assert not Conversation.objects.filter(status=ConversationStatus.PENDING).exists()
    _assert_each_assigned_once()


def test_least_busy_evens_the_loads_of_concurrent_arrivals(online: Any) -> None:
    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.LEAST_BUSY)
    agents = _agents(support, 3)
    online(*agents)
    for agent, already in zip(agents, (0, 1, 2), strict=True):
        for _ in range(already):
            ConversationFactory(
                department=support, assigned_to=agent, status=ConversationStatus.OPEN
            )

    _arrive_together(_with_bot(6), support)

    assert _loads(agents) == [3, 3, 3]
    _assert_each_assigned_once()


def test_capacity_holds_when_more_arrive_than_agents_can_take(online: Any) -> None:
    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.ROUND_ROBIN)
    agents = _agents(support, 3, max_conversations=2)
    online(*agents)

    _arrive_together(_with_bot(10), support)

    assert _loads(agents) == [2, 2, 2]
    assert (
        Conversation.objects.filter(
            status=ConversationStatus.PENDING, assigned_to__isnull=True
        ).count()
        == 4
    )
    _assert_each_assigned_once()


def test_an_agent_of_two_busy_departments_never_goes_past_capacity(online: Any) -> None:
    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.ROUND_ROBIN)
    sales = DepartmentFactory(name="Vendas", assignment=AssignmentMode.LEAST_BUSY)
    ana = UserFactory(role="agent", departments=[support, sales], max_conversations=3)
    online(ana)
    to_support, to_sales = _with_bot(5), _with_bot(5)

    errors = errors_of(
        race(
            *[partial(_hand_over, c, support) for c in to_support],
            *[partial(_hand_over, c, sales) for c in to_sales],
        )
    )

    assert errors == []
    assert _loads([ana]) == [3]
    assert Conversation.objects.filter(status=ConversationStatus.PENDING).count() == 7
    _assert_each_assigned_once()


def test_agents_closing_while_customers_arrive_each_get_one_and_none_twice(online: Any) -> None:
    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.LEAST_BUSY)
    agents = _agents(support, 3, max_conversations=1)
    online(*agents)
    current = [
        ConversationFactory(department=support, assigned_to=a, status=ConversationStatus.OPEN)
        for a in agents
    ]
    arriving = _with_bot(6)

    errors = errors_of(
        race(
            *[
                partial(services.conversation_close, conversation=c, actor=a)
                for c, a in zip(current, agents, strict=True)
            ],
            *[partial(_hand_over, c, support) for c in arriving],
        )
    )

    assert errors == []
    assert _loads(agents) == [1, 1, 1]
    assert Conversation.objects.filter(status=ConversationStatus.PENDING).count() == 3
    _assert_each_assigned_once()


def test_concurrent_arrivals_skip_away_and_offline_agents(online: Any) -> None:
    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.ROUND_ROBIN)
    available = _agents(support, 2)
    away = _agents(support, 1, availability=Availability.AWAY)
    offline = _agents(support, 1)  # available, but no console open
    online(*available, *away)

    _arrive_together(_with_bot(6), support)

    assert _loads([*available, *away, *offline]) == [3, 3, 0, 0]
    _assert_each_assigned_once()


def test_agents_freed_at_once_get_the_most_urgent_longest_waiting(online: Any) -> None:
    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.LEAST_BUSY)
    agents = _agents(support, 2, max_conversations=1)
    online(*agents)
    current = [
        ConversationFactory(department=support, assigned_to=a, status=ConversationStatus.OPEN)
        for a in agents
    ]
    now = timezone.now()

    def waiting(priority: str, minutes_ago: int) -> Conversation:
        return ConversationFactory(
            department=support,
            status=ConversationStatus.PENDING,
            priority=priority,
            last_inbound_at=now - timedelta(minutes=minutes_ago),
        )

    normal_oldest = waiting(Priority.NORMAL, 90)
    urgent_recent = waiting(Priority.URGENT, 5)
    high = waiting(Priority.HIGH, 60)
    urgent_old = waiting(Priority.URGENT, 20)

    errors = errors_of(
        race(
            *[
                partial(services.conversation_close, conversation=c, actor=a)
                for c, a in zip(current, agents, strict=True)
            ]
        )
    )

    assert errors == []
    given = Conversation.objects.filter(status=ConversationStatus.OPEN, assigned_to__in=agents)
    assert set(given) == {urgent_old, urgent_recent}
    assert _loads(agents) == [1, 1]
    assert set(
        Conversation.objects.filter(status=ConversationStatus.PENDING).values_list("pk", flat=True)
    ) == {normal_oldest.pk, high.pk}
    _assert_each_assigned_once()


def _take_over(conversation: Conversation, user: User) -> Conversation:
    return services.conversation_take_over(conversation=conversation, actor=user)


def test_an_agent_taking_over_while_the_queue_assigns_never_goes_past_capacity(
    online: Any,
) -> None:
    """People and workers count the same capacity under the same lock: Ana takes over three
    customers of a manual queue while three more are handed to her round-robin queue."""
    support = DepartmentFactory(name="Suporte", assignment=AssignmentMode.ROUND_ROBIN)
    sales = DepartmentFactory(name="Vendas", assignment=AssignmentMode.MANUAL)
    ana = UserFactory(role="agent", departments=[support, sales], max_conversations=2)
    online(ana)
    in_sales = [
        ConversationFactory(department=sales, status=ConversationStatus.PENDING) for _ in range(3)
    ]

    results = race(
        *[partial(_take_over, c, ana) for c in in_sales],
        *[partial(_hand_over, c, support) for c in _with_bot(3)],
    )

    refusals = errors_of(results)
    assert all(
        isinstance(e, Conflict) and e.code == ConversationErrorCode.AT_CAPACITY for e in refusals
    ), refusals
    assert _loads([ana]) == [2]
    assert len(refusals) == 3 - sum(
        1 for c in in_sales if Conversation.objects.get(pk=c.pk).assigned_to_id == ana.pk
    )
    assert Conversation.objects.filter(status=ConversationStatus.PENDING).count() == 4
