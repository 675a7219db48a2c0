"""The live socket at /ws/ (contract §6), driven through the real ASGI application."""

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from conversations import consumers, services
from conversations.consumers import CLOSE_UNAUTHENTICATED
from conversations.models import ConversationStatus
from conversations.tests.factories import ConversationFactory
from supportdesk.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """A layer per test: each test has its own event loop, and channels_redis binds to it."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@database_sync_to_async
def _session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


async def _connect_session(user: Any) -> WebsocketCommunicator:
    cookie = await _session_cookie(user)
    communicator = WebsocketCommunicator(application, "/ws/", headers=[ORIGIN, (b"cookie", cookie)])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _frames(communicator: WebsocketCommunicator, timeout: float = 0.4) -> list[dict]:
    """Every frame that arrives until the socket stays quiet for ``timeout`` seconds."""
    frames = []
    # receive_nothing() waits without cancelling the application (a receive timeout would)
    while not await communicator.receive_nothing(timeout=timeout):
        frames.append(await communicator.receive_json_from(timeout=1))
    return frames


async def _frames_until(
    communicator: WebsocketCommunicator, kind: str, timeout: float = 10
) -> list[dict]:
    """Every frame until one of ``kind`` (included), for work that takes a while to reach the
    socket (a task, then the channel layer: Redis on a busy machine)."""
    frames: list[dict] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not any(f["type"] == kind for f in frames):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        if not await communicator.receive_nothing(timeout=min(left, 0.5)):
            frames.append(await communicator.receive_json_from(timeout=1))
    return frames


def _types(frames: list[dict]) -> list[str]:
    return [f["type"] for f in frames]


async def _settle(*communicators: WebsocketCommunicator) -> None:
    """Drop the presence frames that follow a connection."""
    for communicator in communicators:
        await _frames(communicator, timeout=0.2)


@database_sync_to_async
def _run(fn: Any, /, **kwargs: Any) -> Any:
    return fn(**kwargs)


# --- authentication -----------------------------------------------------------------------------


async def test_anonymous_socket_is_closed_with_4401() -> None:
    communicator = WebsocketCommunicator(application, "/ws/", headers=[ORIGIN])
    await communicator.connect()
    closing = await communicator.receive_output(timeout=1)
    assert closing == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


async def test_bad_token_is_closed_with_4401() -> None:
    communicator = WebsocketCommunicator(application, "/ws/?token=not-a-jwt", headers=[ORIGIN])
    await communicator.connect()
    closing = await communicator.receive_output(timeout=1)
    assert closing["code"] == CLOSE_UNAUTHENTICATED


async def test_inactive_users_token_is_refused(support) -> None:
    user = await database_sync_to_async(UserFactory)(is_active=False, departments=[support])
    token = str(AccessToken.for_user(user))
    communicator = WebsocketCommunicator(application, f"/ws/?token={token}", headers=[ORIGIN])
    await communicator.connect()
    assert (await communicator.receive_output(timeout=1))["code"] == CLOSE_UNAUTHENTICATED


async def test_token_issued_before_a_password_change_is_refused(agent) -> None:
    token = str(AccessToken.for_user(agent))

    def change_password() -> None:
        agent.set_password("Another-Secret-42")
        agent.save(update_fields=["password"])

    await database_sync_to_async(change_password)()
    communicator = WebsocketCommunicator(application, f"/ws/?token={token}", headers=[ORIGIN])
    await communicator.connect()
    assert (await communicator.receive_output(timeout=1))["code"] == CLOSE_UNAUTHENTICATED

    fresh = str(AccessToken.for_user(agent))  # a token for the new password connects
    communicator = WebsocketCommunicator(application, f"/ws/?token={fresh}", headers=[ORIGIN])
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


async def test_open_socket_is_closed_after_a_password_change(agent, monkeypatch) -> None:
    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 0.2)
    token = str(AccessToken.for_user(agent))
    communicator = WebsocketCommunicator(application, f"/ws/?token={token}", headers=[ORIGIN])
    connected, _ = await communicator.connect()
    assert connected
    await _settle(communicator)

    def change_password() -> None:
        agent.set_password("Another-Secret-42")
        agent.save(update_fields=["password"])

    await database_sync_to_async(change_password)()
    for _ in range(20):
        frame = await communicator.receive_output(timeout=2)
        if frame["type"] == "websocket.close":
            break
    assert frame == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


async def test_foreign_origin_is_rejected(agent) -> None:
    cookie = await _session_cookie(agent)
    communicator = WebsocketCommunicator(
        application, "/ws/", headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_session_user_receives_events_of_its_department(agent, support) -> None:
    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    communicator = await _connect_session(agent)
    await _settle(communicator)

    await _run(
        services.message_record_inbound, conversation=conversation, body="Olá", wa_message_id="w1"
    )

    frames = await _frames(communicator)
    assert _types(frames).count("new_message") == 1  # once, though it is in several groups
    message = next(f for f in frames if f["type"] == "new_message")["data"]
    assert message["body"] == "Olá"
    assert message["conversation"] == conversation.pk
    update = next(f for f in frames if f["type"] == "conversation_update")["data"]
    assert update["id"] == conversation.pk
    assert update["unread_count"] == 1
    await communicator.disconnect()


async def test_token_user_receives_events(agent, support) -> None:
    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    token = str(AccessToken.for_user(agent))
    communicator = WebsocketCommunicator(application, f"/ws/?token={token}", headers=[ORIGIN])
    connected, _ = await communicator.connect()
    assert connected
    await _settle(communicator)

    await _run(services.conversation_take_over, conversation=conversation, actor=agent)

    frames = await _frames(communicator)
    assert {
        "type": "conversation_assigned",
        "data": {"conversationId": conversation.pk, "userId": agent.pk},
    } in frames
    await communicator.disconnect()


# --- visibility ---------------------------------------------------------------------------------


async def test_agent_of_another_department_hears_nothing(agent, other_agent, support) -> None:
    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    outsider = await _connect_session(other_agent)
    await _settle(outsider)

    await _run(
        services.message_record_inbound,
        conversation=conversation,
        body="secret",
        wa_message_id="w2",
    )
    await _run(services.conversation_take_over, conversation=conversation, actor=agent)

    assert await _frames(outsider) == []
    await outsider.disconnect()


async def test_supervisor_hears_every_department(supervisor, support, sales) -> None:
    conversation = await database_sync_to_async(ConversationFactory)(department=sales)
    communicator = await _connect_session(supervisor)
    await _settle(communicator)

    await _run(
        services.message_record_inbound, conversation=conversation, body="oi", wa_message_id="w3"
    )

    assert "new_message" in _types(await _frames(communicator))
    await communicator.disconnect()


async def test_transfer_away_stops_events_for_the_old_department(
    agent, other_agent, support, sales
) -> None:
    colleague = await database_sync_to_async(UserFactory)(departments=[support])
    conversation = await database_sync_to_async(ConversationFactory)(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    old_side = await _connect_session(colleague)
    new_side = await _connect_session(other_agent)
    await _settle(old_side, new_side)

    # when: the conversation moves to Vendas, then the customer writes again
    await _run(
        services.conversation_transfer,
        conversation=conversation,
        actor=agent,
        to_department=sales,
        note="pedido de compra",
    )
    await _run(
        services.message_record_inbound, conversation=conversation, body="e aí?", wa_message_id="w4"
    )

    # then: Vendas hears the transfer and the message; Suporte's colleague hears nothing at all,
    # although the service also notified the old department's group.
    new_frames = await _frames(new_side)
    transferred = next(f for f in new_frames if f["type"] == "conversation_transferred")
    assert transferred["data"] == {
        "conversationId": conversation.pk,
        "fromUserId": agent.pk,
        "toUserId": None,
        "toDepartmentId": sales.pk,
    }
    assert "new_message" in _types(new_frames)
    assert await _frames(old_side) == []
    await old_side.disconnect()
    await new_side.disconnect()


async def test_the_former_assignee_hears_the_transfer_away_and_nothing_after(
    agent, support, sales
) -> None:
    conversation = await database_sync_to_async(ConversationFactory)(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    other_tab = await _connect_session(agent)
    await _settle(other_tab)

    await _run(
        services.conversation_transfer, conversation=conversation, actor=agent, to_department=sales
    )
    await _run(
        services.message_record_inbound, conversation=conversation, body="oi?", wa_message_id="w9"
    )

    frames = await _frames(other_tab)
    # the transfer itself (ids only), so that the list refreshes at once; nothing of what follows
    assert _types(frames) == ["conversation_transferred"]
    assert frames[0]["data"]["fromUserId"] == agent.pk
    await other_tab.disconnect()


async def test_transfer_to_an_agent_reaches_them_and_the_supervisor(
    agent, supervisor, support
) -> None:
    second = await database_sync_to_async(UserFactory)(departments=[support], name="Carla")
    conversation = await database_sync_to_async(ConversationFactory)(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    target = await _connect_session(second)
    boss = await _connect_session(supervisor)
    await _settle(target, boss)

    await _run(
        services.conversation_transfer, conversation=conversation, actor=agent, to_user=second
    )

    for communicator in (target, boss):
        frames = await _frames(communicator)
        transferred = [f for f in frames if f["type"] == "conversation_transferred"]
        assert len(transferred) == 1
        assert transferred[0]["data"]["toUserId"] == second.pk
        update = next(f for f in frames if f["type"] == "conversation_update")
        assert update["data"]["assigned_to"]["id"] == second.pk
        await communicator.disconnect()


async def test_cannot_subscribe_to_an_invisible_conversation(agent, other_agent, support) -> None:
    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    spy = await _connect_session(other_agent)
    writer = await _connect_session(agent)
    await _settle(spy, writer)

    await spy.send_json_to(
        {"type": "subscribe:conversation", "data": {"conversationId": conversation.pk}}
    )
    await writer.send_json_to(
        {"type": "subscribe:conversation", "data": {"conversationId": conversation.pk}}
    )
    await asyncio.sleep(0.1)
    await writer.send_json_to(
        {"type": "typing", "data": {"conversationId": conversation.pk, "isTyping": True}}
    )
    # the spy cannot even send typing into it
    await spy.send_json_to(
        {"type": "typing", "data": {"conversationId": conversation.pk, "isTyping": True}}
    )

    assert await _frames(spy) == []
    assert await _frames(writer) == []  # not its own typing, and nothing from the spy
    await spy.disconnect()
    await writer.disconnect()


# --- typing and presence ------------------------------------------------------------------------


async def test_typing_reaches_other_subscribers_only(agent, supervisor, support) -> None:
    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    typist = await _connect_session(agent)
    watcher = await _connect_session(supervisor)
    bystander = await _connect_session(await database_sync_to_async(UserFactory)(role="admin"))
    await _settle(typist, watcher, bystander)
    for communicator in (typist, watcher):
        await communicator.send_json_to(
            {"type": "subscribe:conversation", "data": {"conversationId": conversation.pk}}
        )
    await asyncio.sleep(0.1)

    await typist.send_json_to(
        {"type": "typing", "data": {"conversationId": conversation.pk, "isTyping": True}}
    )

    frames = await _frames(watcher)
    assert len(frames) == 1
    assert frames[0]["type"] == "user_typing"
    assert frames[0]["data"]["conversationId"] == conversation.pk
    assert frames[0]["data"]["userId"] == agent.pk
    assert frames[0]["data"]["isTyping"] is True
    assert await _frames(typist) == []
    assert await _frames(bystander) == []  # not subscribed to that conversation

    await watcher.send_json_to(
        {"type": "unsubscribe:conversation", "data": {"conversationId": conversation.pk}}
    )
    await asyncio.sleep(0.1)
    await typist.send_json_to(
        {"type": "typing", "data": {"conversationId": conversation.pk, "isTyping": False}}
    )
    assert await _frames(watcher) == []
    for communicator in (typist, watcher, bystander):
        await communicator.disconnect()


async def test_presence_counts_tabs_and_tells_the_supervisor(agent, supervisor) -> None:
    from django.core.cache import cache

    from accounts.presence import is_online

    # user ids repeat across test databases: forget counters another run left in a shared cache
    await database_sync_to_async(cache.delete_many)(
        [f"presence:user:{agent.pk}", f"presence:user:{supervisor.pk}"]
    )
    boss = await _connect_session(supervisor)
    await _settle(boss)

    first_tab = await _connect_session(agent)
    assert await _frames(boss) == [
        {"type": "online_status", "data": {"userId": agent.pk, "online": True}}
    ]
    second_tab = await _connect_session(agent)
    assert await _frames(boss) == []  # already online

    await first_tab.disconnect()
    assert await _frames(boss) == []  # still one tab open
    assert await database_sync_to_async(is_online)(user_id=agent.pk)

    await second_tab.disconnect()
    assert await _frames(boss) == [
        {"type": "online_status", "data": {"userId": agent.pk, "online": False}}
    ]
    assert not await database_sync_to_async(is_online)(user_id=agent.pk)
    await boss.disconnect()


async def test_close_and_reopen_updates_reach_the_assignee(agent, support) -> None:
    conversation = await database_sync_to_async(ConversationFactory)(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    communicator = await _connect_session(agent)
    await _settle(communicator)

    await _run(services.conversation_close, conversation=conversation, actor=agent)
    await _run(services.conversation_reopen, conversation=conversation, actor=agent)

    statuses = [
        f["data"]["status"]
        for f in await _frames(communicator)
        if f["type"] == "conversation_update"
    ]
    # The satisfaction survey sent after closing updates the closed conversation once more.
    changes = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert changes == ["closed", "open"]
    await communicator.disconnect()


async def test_delivery_ticks_reach_the_department_but_not_others(
    agent, other_agent, support
) -> None:
    from conversations.tests.factories import MessageFactory

    conversation = await database_sync_to_async(ConversationFactory)(
        department=support, assigned_to=agent, status=ConversationStatus.OPEN
    )
    message = await database_sync_to_async(MessageFactory)(
        conversation=conversation, direction="out", sender="agent", status="sent"
    )
    mine = await _connect_session(agent)
    outsider = await _connect_session(other_agent)
    await _settle(mine, outsider)

    await _run(services.message_update_status, message=message, status="delivered")

    updates = [f for f in await _frames(mine) if f["type"] == "message_update"]
    assert updates and updates[0]["data"]["status"] == "delivered"
    assert await _frames(outsider) == []
    await mine.disconnect()
    await outsider.disconnect()


async def test_unknown_events_naming_a_conversation_are_checked_too(
    other_agent, support, sales
) -> None:
    from channels.layers import get_channel_layer

    from common import realtime

    hidden = await database_sync_to_async(ConversationFactory)(department=support)
    outsider = await _connect_session(other_agent)
    await _settle(outsider)

    layer = get_channel_layer()
    group = realtime.department_group(sales.pk)
    for data in (
        {"conversationId": hidden.pk},
        {"conversation": hidden.pk, "x": 1},
        {"hello": "world"},
    ):
        message = realtime.group_message(group, [{"event": "something_new", "data": data}])
        await layer.group_send(group, message)

    assert await _frames(outsider) == [{"type": "something_new", "data": {"hello": "world"}}]
    await outsider.disconnect()


async def test_a_batch_of_inbound_messages_arrives_as_separate_frames_in_order(
    agent, other_agent, support, sales
) -> None:
    """``message_record_inbound_many`` sends one ``desk.events`` per group; each socket gets the
    frames of contract §6 one by one, and only for conversations it may see."""
    from conversations.services import InboundMessage, message_record_inbound_many

    mine = await database_sync_to_async(ConversationFactory)(department=support)
    theirs = await database_sync_to_async(ConversationFactory)(department=sales)
    inside, outsider = await _connect_session(agent), await _connect_session(other_agent)
    await _settle(inside, outsider)

    items = [
        InboundMessage(conversation=mine, body="um", wa_message_id="wb1"),
        InboundMessage(conversation=theirs, body="segredo", wa_message_id="wb2"),
        InboundMessage(conversation=mine, body="dois", wa_message_id="wb3"),
        InboundMessage(conversation=mine, body="três", wa_message_id="wb4"),
    ]
    await _run(message_record_inbound_many, items=items)

    frames = await _frames(inside)
    bodies = [f["data"]["body"] for f in frames if f["type"] == "new_message"]
    assert bodies == ["um", "dois", "três"]
    updates = [f["data"] for f in frames if f["type"] == "conversation_update"]
    assert [u["id"] for u in updates] == [mine.pk]
    assert updates[0]["unread_count"] == 3
    outsider_frames = await _frames(outsider)
    assert [f["data"]["body"] for f in outsider_frames if f["type"] == "new_message"] == ["segredo"]
    assert all(
        f["data"].get("conversation", f["data"].get("id")) != mine.pk for f in outsider_frames
    )
    await inside.disconnect()
    await outsider.disconnect()


# --- automatic assignment (issue 13 §2) ----------------------------------------------------------


async def test_an_agent_who_opens_the_console_gets_what_waits_in_an_automatic_queue() -> None:
    from departments.models import AssignmentMode
    from departments.tests.factories import DepartmentFactory

    support = await _run(DepartmentFactory, name="Suporte", assignment=AssignmentMode.ROUND_ROBIN)
    ana = await _run(UserFactory, role="agent", departments=[support])
    waiting = await _run(ConversationFactory, department=support, status=ConversationStatus.PENDING)

    communicator = await _connect_session(ana)  # comes online
    frames = await _frames_until(communicator, "conversation_assigned")
    frames += await _frames(communicator)  # and nothing more of the kind
    await communicator.disconnect()

    await database_sync_to_async(waiting.refresh_from_db)()
    assert waiting.assigned_to_id == ana.pk
    assert waiting.status == ConversationStatus.OPEN
    assigned = [f for f in frames if f["type"] == "conversation_assigned"]
    assert assigned == [
        {"type": "conversation_assigned", "data": {"conversationId": waiting.pk, "userId": ana.pk}}
    ]


# --- the process's hub (issue 15 §5) -------------------------------------------------------------


def _sockets() -> Any:
    from channels.layers import get_channel_layer

    return consumers.console_sockets(get_channel_layer())


def _socket_of(user: Any) -> Any:
    return next(s for s in _sockets().sockets if s.user.pk == user.pk)


async def _group_members_on_layer(group: str) -> set[str]:
    """The channels of ``group`` on the layer (in-memory or Redis) that belong to this process
    (a shared Redis may hold other runs' leftovers under the same name)."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if hasattr(layer, "groups"):  # InMemoryChannelLayer
        found = set(layer.groups.get(group, {}))
    else:
        connection = layer.connection(layer.consistent_hash(group))
        found = {c.decode() for c in await connection.zrange(layer._group_key(group), 0, -1)}
    return found & {_sockets().hub.channel}


async def test_the_sockets_of_a_process_share_one_membership_and_the_last_one_leaves_it(
    agent, support
) -> None:
    from common import realtime

    colleagues = [await database_sync_to_async(UserFactory)(departments=[support]) for _ in "ab"]
    tabs = [await _connect_session(user) for user in (agent, *colleagues)]
    await _settle(*tabs)
    group = realtime.department_group(support.pk)
    hub_channel = {_sockets().hub.channel}
    assert await _group_members_on_layer(group) == hub_channel  # one channel for three sockets

    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    await _run(
        services.message_record_inbound, conversation=conversation, body="oi", wa_message_id="h1"
    )
    for tab in tabs:
        assert _types(await _frames(tab)).count("new_message") == 1

    await tabs[0].disconnect()  # one leaves: the others still hear the department
    await _run(
        services.message_record_inbound, conversation=conversation, body="e aí", wa_message_id="h2"
    )
    for tab in tabs[1:]:
        assert _types(await _frames(tab)).count("new_message") == 1
    assert await _group_members_on_layer(group) == hub_channel

    for tab in tabs[1:]:
        await tab.disconnect()
    await _sockets().hub._settle()
    assert await _group_members_on_layer(group) == set()
    assert _sockets().sockets == {}


async def test_a_slow_socket_does_not_hold_up_the_others_and_keeps_its_order(
    agent, support
) -> None:
    colleague = await database_sync_to_async(UserFactory)(departments=[support])
    slow_tab, quick_tab = await _connect_session(agent), await _connect_session(colleague)
    await _settle(slow_tab, quick_tab)
    slow = _socket_of(agent)
    released = asyncio.Event()
    real_send = slow.base_send

    async def stuck_send(message: dict) -> None:
        await released.wait()  # a socket whose sends wait (a full buffer, say)
        await real_send(message)

    slow.base_send = stuck_send
    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    for i in range(3):
        await _run(
            services.message_record_inbound,
            conversation=conversation,
            body=f"m{i}",
            wa_message_id=f"s{i}",
        )

    quick = [f["data"]["body"] for f in await _frames(quick_tab) if f["type"] == "new_message"]
    assert quick == ["m0", "m1", "m2"]  # not held up by the stuck one
    assert await _frames(slow_tab) == []
    released.set()
    slow_frames = await _frames(slow_tab)
    assert [f["data"]["body"] for f in slow_frames if f["type"] == "new_message"] == quick
    await slow_tab.disconnect()
    await quick_tab.disconnect()


async def test_a_socket_too_far_behind_is_closed_to_catch_up(agent, support, monkeypatch) -> None:
    monkeypatch.setattr(consumers, "MAX_OUTBOX", 3)
    tab = await _connect_session(agent)
    await _settle(tab)
    socket = _socket_of(agent)
    released = asyncio.Event()
    real_send = socket.base_send

    async def stuck_send(message: dict) -> None:
        await released.wait()
        await real_send(message)

    socket.base_send = stuck_send
    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    for i in range(3):  # six frames: more than three wait behind the stuck one
        await _run(
            services.message_record_inbound,
            conversation=conversation,
            body=f"m{i}",
            wa_message_id=f"b{i}",
        )
    # The frames reach the socket through the layer (Redis on a busy machine): wait until they
    # have piled up behind the stuck send, or the send would be released before they came.
    deadline = asyncio.get_running_loop().time() + 10
    while not socket._closed and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert socket._closed  # more than MAX_OUTBOX waiting: closed while its send is stuck
    released.set()
    outputs = []
    for _ in range(10):
        outputs.append(await tab.receive_output(timeout=2))
        if outputs[-1]["type"] == "websocket.close":
            break
    assert outputs[-1] == {"type": "websocket.close", "code": consumers.CLOSE_TOO_SLOW}
    assert len(outputs) < 6  # what waited was dropped: the console catches up when it reconnects


async def test_a_socket_whose_send_fails_does_not_stop_the_others(agent, support) -> None:
    colleague = await database_sync_to_async(UserFactory)(departments=[support])
    broken_tab, fine_tab = await _connect_session(agent), await _connect_session(colleague)
    await _settle(broken_tab, fine_tab)

    async def gone(message: dict) -> None:
        raise OSError("the client went away")

    _socket_of(agent).base_send = gone
    conversation = await database_sync_to_async(ConversationFactory)(department=support)
    await _run(
        services.message_record_inbound, conversation=conversation, body="oi", wa_message_id="f1"
    )
    assert "new_message" in _types(await _frames(fine_tab))
    await broken_tab.disconnect()
    await fine_tab.disconnect()


async def test_a_deactivated_users_socket_is_closed_within_a_beat(agent, monkeypatch) -> None:
    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 0.2)
    communicator = await _connect_session(agent)
    await _settle(communicator)

    def deactivate() -> None:
        agent.is_active = False
        agent.save(update_fields=["is_active"])

    await database_sync_to_async(deactivate)()
    for _ in range(20):
        frame = await communicator.receive_output(timeout=2)
        if frame["type"] == "websocket.close":
            break
    assert frame == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


async def test_the_heartbeat_follows_a_change_of_departments(agent, sales, monkeypatch) -> None:
    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 0.2)
    conversation = await database_sync_to_async(ConversationFactory)(department=sales)
    communicator = await _connect_session(agent)
    await _settle(communicator)
    await database_sync_to_async(agent.departments.add)(sales)
    await asyncio.sleep(0.6)  # a beat or two
    await _settle(communicator)

    await _run(
        services.message_record_inbound, conversation=conversation, body="oi", wa_message_id="d1"
    )
    assert "new_message" in _types(await _frames(communicator))
    await communicator.disconnect()


async def test_a_heartbeat_costs_the_same_queries_for_one_user_or_many(
    django_assert_num_queries, support
) -> None:
    def beat() -> None:
        users = [UserFactory(departments=[support]) for _ in range(20)]
        inactive = UserFactory(is_active=False)
        with django_assert_num_queries(2):  # the users, their departments (presence: the cache)
            found = consumers._heartbeat.func([u.pk for u in users] + [inactive.pk])
        assert set(found) == {u.pk for u in users}
        assert all(departments == [support.pk] for _, departments in found.values())

    await database_sync_to_async(beat)()
