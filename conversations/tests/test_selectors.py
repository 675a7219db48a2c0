"""Who sees which conversation (contract §4 "Roles"), for all three roles."""

import pytest

from accounts.tests.factories import UserFactory
from conversations import selectors
from conversations.models import Conversation, ConversationStatus
from conversations.tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(agent, other_agent, support, sales):  # type: ignore[no-untyped-def]
    """One conversation in each interesting place."""
    return {
        "support_queue": ConversationFactory(department=support, status=ConversationStatus.PENDING),
        "support_mine": ConversationFactory(
            department=support, assigned_to=agent, status=ConversationStatus.OPEN
        ),
        "sales_queue": ConversationFactory(department=sales, status=ConversationStatus.PENDING),
        "sales_but_assigned_to_ana": ConversationFactory(
            department=sales, assigned_to=agent, status=ConversationStatus.OPEN
        ),
        "bot": ConversationFactory(department=None, status=ConversationStatus.BOT),
        "support_closed": ConversationFactory(department=support, status=ConversationStatus.CLOSED),
    }


def _visible(user) -> set[int]:  # type: ignore[no-untyped-def]
    return set(selectors.conversation_list_visible_to(user=user).values_list("pk", flat=True))


def test_admin_sees_everything(board, admin_user) -> None:
    assert _visible(admin_user) == {c.pk for c in board.values()}


def test_supervisor_sees_everything(board, supervisor) -> None:
    assert _visible(supervisor) == {c.pk for c in board.values()}


def test_agent_sees_own_departments_and_own_assignments(board, agent) -> None:
    expected = {"support_queue", "support_mine", "sales_but_assigned_to_ana", "support_closed"}
    assert _visible(agent) == {board[name].pk for name in expected}


def test_agent_of_another_department(board, other_agent) -> None:
    assert _visible(other_agent) == {board["sales_queue"].pk, board["sales_but_assigned_to_ana"].pk}


def test_inactive_users_see_nothing(board, support) -> None:
    gone = UserFactory(role="admin", is_active=False, departments=[support])
    assert _visible(gone) == set()


def test_get_visible_hides_other_departments(board, other_agent) -> None:
    with pytest.raises(Conversation.DoesNotExist):
        selectors.conversation_get_visible(user=other_agent, pk=board["support_queue"].pk)


@pytest.mark.parametrize(
    "name", ["support_queue", "support_mine", "sales_queue", "bot", "support_closed"]
)
def test_is_visible_agrees_with_the_list(board, agent, other_agent, supervisor, name) -> None:
    conversation = board[name]
    for user in (agent, other_agent, supervisor):
        assert selectors.conversation_is_visible_to(user=user, conversation=conversation) == (
            conversation.pk in _visible(user)
        )


def test_the_list_costs_one_query_whatever_its_size(
    agent, support, django_assert_num_queries
) -> None:
    ConversationFactory.create_batch(15, department=support, status=ConversationStatus.PENDING)
    with django_assert_num_queries(1):
        rows = list(selectors.conversation_list_visible_to(user=agent))
        names = [(c.customer.name, c.department and c.department.name, c.assigned_to) for c in rows]
    assert len(names) == 15


def test_reply_rights(board, agent, supervisor, admin_user) -> None:
    mine, queue = board["support_mine"], board["support_queue"]
    assert selectors.user_can_reply(user=agent, conversation=mine)
    assert not selectors.user_can_reply(user=agent, conversation=queue)
    assert not selectors.user_can_reply(user=supervisor, conversation=mine)
    assert selectors.user_can_reply(user=admin_user, conversation=mine)
    assert not selectors.user_can_reply(user=admin_user, conversation=board["support_closed"])
