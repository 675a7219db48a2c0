"""Who sees which conversation (contract §4 "Roles"), for all three roles."""

import pytest

from accounts.tests.factories import UserFactory
from conversations import selectors
from conversations.models import Conversation, ConversationStatus
from conversations.tests.factories import ConversationFactory, MessageFactory

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


# --- the inbox ----------------------------------------------------------------------------------


def _counts(user) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {tab.key: tab.count for tab in selectors.conversation_tab_counts(user=user)}


def test_tab_counts_of_an_agent_never_include_other_departments(board, agent, sales) -> None:
    # given: busy queues in a department the agent does not work in
    ConversationFactory.create_batch(4, department=sales, status=ConversationStatus.PENDING)
    ConversationFactory.create_batch(2, department=sales, status=ConversationStatus.BOT)
    ConversationFactory(department=sales, status=ConversationStatus.CLOSED)
    # then: only Suporte's and what is assigned to them (the sales conversation assigned to Ana)
    assert _counts(agent) == {
        "inbox": 3,  # support queue + support mine + sales assigned to Ana
        "mine": 2,
        "queue": 1,
        "bot": 0,  # the bot's conversation has no department: not theirs
        "all": 3,
        "closed": 1,
    }


def test_tab_counts_of_a_supervisor_include_every_department(board, supervisor, sales) -> None:
    ConversationFactory.create_batch(4, department=sales, status=ConversationStatus.PENDING)
    assert _counts(supervisor) == {
        "inbox": 6,  # every queue (nothing is assigned to the supervisor)
        "mine": 0,
        "queue": 6,
        "bot": 1,
        "all": 9,
        "closed": 1,
    }


def test_the_inbox_counts_a_conversation_in_the_queue_and_theirs_once(agent, support) -> None:
    """The Inbox is counted as the queue plus theirs outside it: one in both is counted once,
    and so is its unread badge; theirs without a department (out of every queue) still counts."""
    ConversationFactory(
        department=support, status=ConversationStatus.PENDING, assigned_to=agent, unread_count=2
    )
    ConversationFactory(department=None, status=ConversationStatus.PENDING, assigned_to=agent)
    ConversationFactory(department=support, status=ConversationStatus.PENDING, unread_count=1)
    summary = selectors.conversation_tab_summary(user=agent)
    counts = {tab.key: tab.count for tab in summary.tabs}
    assert (counts["inbox"], counts["mine"], counts["queue"]) == (3, 2, 2)
    assert summary.unread == 2
    page = selectors.conversation_list_inbox(user=agent, query=selectors.InboxQuery())
    assert len(page.conversations) == counts["inbox"]  # the count is what the list shows


def test_tab_counts_cost_one_query(board, agent, django_assert_num_queries) -> None:
    with django_assert_num_queries(1):
        counts = selectors.conversation_tab_counts(user=agent)
    assert [tab.key for tab in counts] == [tab.key for tab in selectors.TABS]


def _inbox(user, **query) -> list[int]:  # type: ignore[no-untyped-def]
    page = selectors.conversation_list_inbox(user=user, query=selectors.InboxQuery(**query))
    return [c.pk for c in page.conversations]


def test_inbox_tabs_filters_and_search(board, agent, supervisor, sales) -> None:
    assert set(_inbox(agent)) == {
        board["support_queue"].pk,
        board["support_mine"].pk,
        board["sales_but_assigned_to_ana"].pk,
    }
    assert _inbox(agent, tab="queue") == [board["support_queue"].pk]
    assert _inbox(agent, tab="closed") == [board["support_closed"].pk]
    assert _inbox(supervisor, tab="all", department=sales.pk, status="open") == [
        board["sales_but_assigned_to_ana"].pk
    ]
    assert _inbox(supervisor, tab="all", agent=agent.pk, department=sales.pk) == [
        board["sales_but_assigned_to_ana"].pk
    ]
    # the search never reaches past what the user may see
    hidden = board["sales_queue"]
    MessageFactory(conversation=hidden, body="segunda via do boleto")
    assert _inbox(supervisor, tab="all", q="boleto") == [hidden.pk]
    assert _inbox(agent, tab="all", q="boleto") == []


def test_inbox_rows_carry_their_last_message_and_pages_hold_25(
    agent, support, django_assert_num_queries
) -> None:
    conversations = ConversationFactory.create_batch(27, department=support)
    MessageFactory(conversation=conversations[0], body="first")
    MessageFactory(conversation=conversations[0], body="last one")
    MessageFactory(conversation=conversations[0], body="👍", type="reaction")
    with django_assert_num_queries(3):  # the rows, their tags, their contacts' tags
        first = selectors.conversation_list_inbox(
            user=agent, query=selectors.InboxQuery(tab="queue")
        )
    assert (len(first.conversations), first.has_next, first.has_previous) == (25, True, False)
    second = selectors.conversation_list_inbox(
        user=agent, query=selectors.InboxQuery(tab="queue", page=2)
    )
    assert (len(second.conversations), second.has_next, second.has_previous) == (2, False, True)
    row = next(c for c in [*first.conversations, *second.conversations] if c == conversations[0])
    assert (row.last_body, row.last_type) == ("last one", "text")  # type: ignore[attr-defined]


def test_inbox_query_from_params_falls_back_to_defaults() -> None:
    query = selectors.InboxQuery.from_params(
        {"tab": "nope", "status": "lost", "department": "x", "page": "-3", "q": "  ana  "}
    )
    assert query == selectors.InboxQuery(q="ana")
    assert query.filtered
    parsed = selectors.InboxQuery.from_params({"tab": "closed", "agent": "7", "page": "2"})
    assert parsed.params() == "tab=closed&agent=7&page=2"
    assert parsed.params(page="") == "tab=closed&agent=7"


# --- the timeline -------------------------------------------------------------------------------


@pytest.fixture
def story(agent):  # type: ignore[no-untyped-def]
    """A conversation whose rows were written out of order, with ties across kinds."""
    from datetime import UTC, datetime, timedelta

    from conversations.models import ConversationEvent, ConversationNote, Message, MessageReaction

    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    conversation = ConversationFactory(department=agent.departments.get())
    rows = {
        "later": MessageFactory(conversation=conversation, body="later"),
        "hello": MessageFactory(conversation=conversation, body="hello"),
        "thumb": MessageFactory(conversation=conversation, body="👍", type="reaction"),
        "taken": ConversationEvent.objects.create(
            conversation=conversation, actor=agent, kind="taken_over"
        ),
        "read": ConversationEvent.objects.create(conversation=conversation, kind="read"),
        "transfer": ConversationEvent.objects.create(
            conversation=conversation, actor=agent, kind="transferred", after={"note": "Vendas"}
        ),
        "note": ConversationNote.objects.create(
            conversation=conversation, author=agent, body="VIP"
        ),
    }
    MessageReaction.objects.create(message=rows["hello"], sender="customer", emoji="❤️")
    when = {
        "later": t0 + timedelta(minutes=5),
        "hello": t0,
        "thumb": t0 + timedelta(minutes=1),
        "taken": t0 + timedelta(minutes=1),
        "read": t0 + timedelta(minutes=2),
        "transfer": t0 + timedelta(minutes=6),
        "note": t0 + timedelta(minutes=3),  # between two messages
    }
    for name, row in rows.items():
        type(row).objects.filter(pk=row.pk).update(created_at=when[name])
    assert Message.objects.filter(conversation=conversation).count() == 3
    return conversation, rows


def _names(items, rows) -> list[str]:  # type: ignore[no-untyped-def]
    by_key = {(type(row).__name__, row.pk): name for name, row in rows.items()}
    found = [item.message or item.event or item.note for item in items]
    return [by_key[type(row).__name__, row.pk] for row in found]


def test_timeline_for_the_api_has_messages_and_events_in_order(
    story, django_assert_num_queries
) -> None:
    conversation, rows = story
    with django_assert_num_queries(2):  # messages, events
        items = selectors.conversation_timeline(conversation=conversation)
    # an event comes before a message of the same instant; "marked read" is not history
    assert _names(items, rows) == ["hello", "taken", "thumb", "later", "transfer"]
    assert [item.kind for item in items] == ["message", "event", "message", "message", "event"]


def test_timeline_for_the_console_has_notes_and_reactions_on_their_messages(
    story, django_assert_num_queries
) -> None:
    conversation, rows = story
    with django_assert_num_queries(3):  # messages, their reactions, notes
        items = selectors.conversation_timeline(
            conversation=conversation, notes=True, events=False, reactions_on_messages=True
        )
    assert _names(items, rows) == ["hello", "note", "later"]
    hello = items[0].message
    assert [r.emoji for r in hello.reaction_list] == ["❤️"]  # type: ignore[union-attr]


def test_timeline_query_count_does_not_grow(agent, django_assert_num_queries) -> None:
    from conversations.models import ConversationEvent, ConversationNote

    conversation = ConversationFactory(department=agent.departments.get())

    def grow(count: int) -> None:
        for _ in range(count):
            MessageFactory(conversation=conversation, sender_user=agent)
            ConversationEvent.objects.create(conversation=conversation, actor=agent, kind="queued")
            ConversationNote.objects.create(conversation=conversation, author=agent, body="n")

    for count in (3, 9):
        grow(count)
        with django_assert_num_queries(4):  # messages, reactions, events, notes
            items = selectors.conversation_timeline(
                conversation=conversation, notes=True, reactions_on_messages=True
            )
            for item in items:  # what the console and the API read from each item
                if item.message:
                    assert item.message.sender_user == agent
                    assert item.message.reply_to is None
                if item.event:
                    assert item.event.actor == agent
                if item.note:
                    assert item.note.author == agent
    assert len(items) == 36


# --- the board ----------------------------------------------------------------------------------


def test_board_counts_queues_and_load(board, supervisor, agent, support, sales) -> None:
    result = selectors.conversation_board(user=supervisor)
    departments = {d.name: d for d in result.departments}
    assert (departments["Suporte"].queued, departments["Suporte"].in_progress) == (1, 1)  # type: ignore[attr-defined]
    assert (departments["Vendas"].queued, departments["Vendas"].in_progress) == (1, 1)  # type: ignore[attr-defined]
    load = {a.pk: a.open_count for a in result.agents}  # type: ignore[attr-defined]
    assert load[agent.pk] == 2
    assert result.online_count == 0


def test_board_is_refused_to_agents(agent) -> None:
    from common.exceptions import NotPermitted

    with pytest.raises(NotPermitted):
        selectors.conversation_board(user=agent)


def test_board_costs_three_queries(board, supervisor, django_assert_num_queries) -> None:
    UserFactory.create_batch(5, role="agent")
    with django_assert_num_queries(3):  # agents with their load, departments, no department yet
        selectors.conversation_board(user=supervisor)


# --- rights -------------------------------------------------------------------------------------


@pytest.fixture
def everyone(agent, other_agent, supervisor, admin_user):  # type: ignore[no-untyped-def]
    return (agent, other_agent, supervisor, admin_user)


def test_rights_agree_with_each_user_can(board, everyone, django_assert_max_num_queries) -> None:
    for conversation in board.values():
        for user in everyone:
            with django_assert_max_num_queries(1):  # the agent's departments, once at most
                rights = selectors.conversation_rights(user=user, conversation=conversation)
            assert rights == selectors.ConversationRights(
                reply=selectors.user_can_reply(user=user, conversation=conversation),
                take_over=selectors.user_can_take_over(user=user, conversation=conversation),
                transfer=selectors.user_can_transfer(user=user, conversation=conversation),
                close=selectors.user_can_close(user=user, conversation=conversation),
                reopen=selectors.user_can_reopen(user=user, conversation=conversation),
            ), (user, conversation)
