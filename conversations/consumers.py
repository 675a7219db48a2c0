"""The live console socket at ``/ws/`` (contract §6).

One connection per browser tab or API client. On connect the user joins the groups whose events it
may see (``common.realtime``): every conversation for admins and supervisors, each of their
departments' queues and their own ``user.<id>`` group for agents. Services broadcast
``{"type": "desk.event", "group": ..., "event": ..., "data": ...}`` to those groups after commit;
this consumer forwards them as ``{"type": event, "data": data}`` frames.

A socket joins its groups through the process's :class:`ConsoleSockets`: one channel of the layer
(``common.realtime.GroupHub``) receives every group's broadcasts once for all the sockets of the
process, each frame is serialised once, and each socket applies the checks below and sends it.

Visibility: a conversation can change department or assignee between the moment a service picks
the audience groups and the moment this consumer forwards the event (a transfer also notifies the
*old* audience so admins of the old queue hear about it). Group membership alone would therefore
leak events to an agent who just lost sight of a conversation, so for agents every
conversation-scoped event is re-checked right before it is forwarded, against the conversation's
current department and assignee and the socket's departments (re-read on every heartbeat, like its
groups) — the rule of ``selectors.conversation_visibility_q``. The state comes from the events
themselves (``conversation_update`` carries it, ``conversation_transferred`` and
``conversation_assigned`` carry the change; events reach the process's hub in the order they were
sent), else from one query; what the process knows is shared by its sockets and trusted for
``STATE_TTL_SECONDS``. A socket that leaves a group hears nothing more from it, at once.
Subscriptions and typing are checked through the selectors themselves. Admins and supervisors see
everything and skip the check.
"""

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts import presence
from accounts.authentication import token_is_current
from accounts.models import User, UserDepartment
from common import realtime

from . import selectors
from .handlers import assignment_request
from .models import Conversation

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_LAYER_LOST = 1011  # the channel layer failed: the console reconnects and catches up
CLOSE_TOO_SLOW = 1013  # "try again later": the console reconnects and catches up
# Frames queued for a socket whose sends have to wait before it is closed as too slow.
MAX_OUTBOX = 1000
HEARTBEAT_SECONDS = 30
# A socket in several audience groups (its department and its own user group, say) receives the
# same broadcast once per group; identical frames within this many seconds are sent once.
DUPLICATE_WINDOW_SECONDS = 2.0
MAX_RECENT_FRAMES = 64
# What a socket knows about a conversation's department and assignee (from the events themselves,
# which carry the new state of every change) is trusted this long before it asks the database.
STATE_TTL_SECONDS = 60.0
MAX_REMEMBERED = 5000

# Events about one conversation, and where in their data its id is. Any other event that names a
# conversation (``conversationId`` or a message's ``conversation``) is treated the same way, so a
# new event type added by a service is never forwarded unchecked.
_CONVERSATION_ID_KEYS = {
    "new_message": "conversation",
    "message_update": "conversation",
    "conversation_update": "id",
    "conversation_assigned": "conversationId",
    "conversation_transferred": "conversationId",
    "user_typing": "conversationId",
}
_NOT_CONVERSATION_SCOPED = frozenset({"online_status"})


def _conversation_id(event: str, data: dict[str, Any]) -> int | None:
    if event in _NOT_CONVERSATION_SCOPED:
        return None
    key = _CONVERSATION_ID_KEYS.get(event)
    value = data.get(key) if key else (data.get("conversationId") or data.get("conversation"))
    if isinstance(value, dict):
        value = value.get("id")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@database_sync_to_async
def _user_from_token(raw: str) -> User | None:
    try:
        token = AccessToken(raw)  # type: ignore[arg-type]
    except TokenError:
        return None
    user_id = token.get(api_settings.USER_ID_CLAIM)
    if user_id is None:
        return None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    # The API's rule: a token issued before the user's last password change is revoked.
    if user is None or not token_is_current(token=token, user=user):
        return None
    return user


class QueryStringTokenAuthMiddleware:
    """``/ws/?token=<access JWT>`` for API clients; a logged-in session still wins."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        user = scope.get("user")
        authenticated = bool(user is not None and getattr(user, "is_authenticated", False))
        if not authenticated:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            tokens = query.get("token")
            if tokens:
                found = await _user_from_token(tokens[0])
                scope = {**scope, "user": found or AnonymousUser()}
        return await self.inner(scope, receive, send)


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _ref_id(value: Any) -> int | None:
    return _as_int(value.get("id")) if isinstance(value, dict) else None


def _carries_state(data: dict[str, Any]) -> bool:
    """A conversation payload (contract §4) with its current department and assignee."""
    return (
        "department" in data
        and "assigned_to" in data
        and isinstance(data.get("department") or {}, dict)
        and isinstance(data.get("assigned_to") or {}, dict)
    )


def _department_ids_of(user: User) -> list[int]:
    return _department_ids_of_many([user.pk])[user.pk]


_department_ids = database_sync_to_async(_department_ids_of)


@database_sync_to_async
def _is_visible(user: User, conversation_id: int) -> bool:
    return (
        Conversation.objects.filter(pk=conversation_id)
        .filter(selectors.conversation_visibility_q(user=user))
        .exists()
    )


@database_sync_to_async
def _conversation_state(conversation_id: int) -> tuple[int | None, int | None] | None:
    """(department, assignee) of a conversation, None when it does not exist."""
    return (
        Conversation.objects.filter(pk=conversation_id)
        .values_list("department_id", "assigned_to_id")
        .first()
    )


def _department_ids_of_many(user_ids: Collection[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {pk: [] for pk in user_ids}
    rows = UserDepartment.objects.filter(user_id__in=found).values_list("user_id", "department_id")
    for user_id, department_id in rows:
        found[user_id].append(department_id)
    return found


@database_sync_to_async
def _heartbeat(user_ids: Collection[int]) -> dict[int, tuple[User, list[int]]]:
    """The users as they are now with their departments, their presence kept alive; those
    deactivated are missing. Two queries (users, departments) whatever their number, and a touch
    of each one's presence counter in the cache."""
    users = {user.pk: user for user in User.objects.filter(pk__in=user_ids, is_active=True)}
    departments = _department_ids_of_many(users)
    presence.presence_heartbeat_many(user_ids=users)
    return {pk: (user, departments[pk]) for pk, user in users.items()}


State = tuple[int | None, int | None]  # a conversation's (department, assignee)


class _Frame:
    """One event of a broadcast as the sockets of a process receive it: its text serialised once
    for all of them (the duplicate check's key and what is sent), and, for conversation-scoped
    events, the conversation's state at that point of the stream."""

    __slots__ = ("conversation_id", "data", "event", "message", "state", "text")

    def __init__(self, event: str, data: dict[str, Any]) -> None:
        self.event, self.data = event, data
        self.conversation_id = _conversation_id(event, data)
        self.state: State | None = None  # None: unknown or no such conversation (not visible)
        self.text = _frame(event, data)
        self.message = {"type": "websocket.send", "text": self.text}  # the same for every socket


class ConsoleSockets:
    """The console sockets of one process (one event loop) and what they share.

    - one :class:`common.realtime.GroupHub`: a broadcast is read once per process and each frame
      serialised once, then offered to every local socket of its group, which applies its own
      checks and sends it;
    - what the process knows of conversations' department and assignee (from the events
      themselves, or one query per conversation at most every ``STATE_TTL_SECONDS``), so the
      visibility check of 500 agents receiving one new message costs no query;
    - one heartbeat for all of them: every ``HEARTBEAT_SECONDS``, two queries re-read every
      connected user (closed with 4401 when deactivated or their password changed, groups
      following their departments) and keep their presence alive.
    """

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.hub = realtime.GroupHub(layer, self._deliver, on_lost=self._close_all)
        self.sockets: dict[DeskConsumer, None] = {}
        self.states: dict[int, tuple[float, State]] = {}
        self._beat: asyncio.Task[None] | None = None

    # --- sockets ------------------------------------------------------------------------------

    def register(self, socket: "DeskConsumer") -> None:
        self.sockets[socket] = None
        if self._beat is None:
            self._beat = asyncio.get_running_loop().create_task(self._beat_loop())

    def unregister(self, socket: "DeskConsumer") -> None:
        self.sockets.pop(socket, None)

    async def _close_all(self) -> None:
        """The layer failed under the hub: what it broadcast meanwhile never reached these
        sockets, so they are closed; their consoles reconnect and catch up."""
        for socket in list(self.sockets):
            with contextlib.suppress(Exception):
                await socket.close(code=CLOSE_LAYER_LOST)

    async def _beat_loop(self) -> None:
        try:
            while True:
                await asyncio.sleep(HEARTBEAT_SECONDS)
                sockets = list(self.sockets)
                if not sockets:
                    return
                try:
                    found = await _heartbeat({socket.user.pk for socket in sockets})
                except Exception:  # the heartbeat must survive a hiccup of the cache or database
                    logger.exception("websocket heartbeat failed for %s sockets", len(sockets))
                    continue
                for socket in sockets:
                    if socket in self.sockets:
                        try:
                            await socket.heartbeat(found.get(socket.user.pk))
                        except Exception:
                            logger.exception("heartbeat failed for user %s", socket.user.pk)
        finally:
            self._beat = None

    # --- what a conversation looks like now ---------------------------------------------------

    async def _state_at(self, conversation_id: int, frame: _Frame) -> State | None:
        """The conversation's state once ``frame`` happened. Cheap: events carry the new state.

        ``conversation_update`` has the department and assignee, ``conversation_transferred`` the
        target, ``conversation_assigned`` the new assignee: each updates what the process knows.
        Other events use what it knows (younger than ``STATE_TTL_SECONDS``) or one query.
        """
        event, data = frame.event, frame.data
        known = self.states.get(conversation_id)
        fresh = known is not None and time.monotonic() - known[0] < STATE_TTL_SECONDS
        state: State | None = None
        if event == "conversation_update" and _carries_state(data):
            state = (_ref_id(data.get("department")), _ref_id(data.get("assigned_to")))
        elif event == "conversation_transferred":
            state = (_as_int(data.get("toDepartmentId")), _as_int(data.get("toUserId")))
        elif event == "conversation_assigned" and fresh and known is not None:
            state = (known[1][0], _as_int(data.get("userId")))
        elif fresh and known is not None:
            state = known[1]
        if state is None:
            state = await _conversation_state(conversation_id)
            if state is None:
                return None
        if len(self.states) >= MAX_REMEMBERED:
            self.states.clear()
        self.states[conversation_id] = (time.monotonic(), state)
        return state

    async def _deliver(
        self, group: str, events: list[tuple[str, dict[str, Any]]], members: list[Any]
    ) -> None:
        frames = [_Frame(event, data) for event, data in events]
        if any(not member.user.sees_everything for member in members):
            for frame in frames:  # in order: each event's state is the one after it
                if frame.conversation_id is not None:
                    frame.state = await self._state_at(frame.conversation_id, frame)
            # a socket that left the group while the state was looked up hears nothing of it
            current = self.hub.members.get(group) or {}
            members = [member for member in members if member in current]
        for member in members:
            try:
                member.push(frames)
            except Exception:  # one socket's failure is not the others'
                logger.exception("could not forward frames to user %s", member.user.pk)


_consoles: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ConsoleSockets]"
_consoles = weakref.WeakKeyDictionary()


def console_sockets(layer: Any) -> ConsoleSockets:
    """The running event loop's :class:`ConsoleSockets` on ``layer``."""
    loop = asyncio.get_running_loop()
    found = _consoles.get(loop)
    if found is None or found.layer is not layer:
        found = _consoles[loop] = ConsoleSockets(layer)
    return found


class DeskConsumer(AsyncJsonWebsocketConsumer):
    """Forwards desk events to one console tab and relays typing between agents."""

    user: User
    groups_joined: set[str]
    subscriptions: set[int]
    console: ConsoleSockets

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' ``AsyncConsumer.__call__`` without a channel of the socket's own: the
        process's hub receives for all its sockets (a thousand idle consoles wait on one channel
        of the layer, not on a thousand)."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        with contextlib.suppress(StopConsumer):
            await await_many_dispatch([receive], self.dispatch)

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.groups_joined = set()
        self.subscriptions = set()
        self._online = False
        self._open = False  # accepted and not closed: frames are sent, else they wait…
        self._closed = False  # …or, once it is closed (or closing), are dropped
        self._outbox: deque[dict[str, Any]] = deque()
        self._sending: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._recent: deque[tuple[float, str]] = deque()  # frames sent lately, oldest first
        self._recent_seen: set[str] = set()  # the same frames: a duplicate found in O(1)
        self.department_ids: frozenset[int] = frozenset()
        if user is None or not user.is_authenticated or not user.is_active:
            # Accept first: a close before the handshake is an HTTP 403 without our code.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.console = console_sockets(self.channel_layer)
        await self._join_audience_groups()
        await self.accept()
        self._open = True
        self._send_outbox()  # what its groups broadcast while it was being accepted
        self._online = True
        self.console.register(self)
        if await database_sync_to_async(presence.presence_connect)(user_id=user.pk):
            await self._broadcast_presence(online=True)
            await self._came_online()

    async def disconnect(self, code: int) -> None:
        self._open, self._closed = False, True
        self._outbox.clear()
        if not hasattr(self, "console"):
            return
        self.console.unregister(self)
        await self.console.hub.leave_all(self)
        self.groups_joined.clear()
        if self._online:
            self._online = False
            if await database_sync_to_async(presence.presence_disconnect)(user_id=self.user.pk):
                await self._broadcast_presence(online=False)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self._open, self._closed = False, True
        self._outbox.clear()
        await super().close(code=code, reason=reason)

    # --- groups -------------------------------------------------------------------------------

    async def _join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.console.hub.join(group, self)
            self.groups_joined.add(group)

    async def _leave(self, group: str) -> None:
        if group in self.groups_joined:
            self.groups_joined.discard(group)
            await self.console.hub.leave(group, self)

    def _audience_groups(self, department_ids: list[int]) -> set[str]:
        wanted = {realtime.user_group(self.user.pk)}
        if self.user.sees_everything:
            wanted.add(realtime.ALL_CONVERSATIONS_GROUP)
        wanted.update(realtime.department_group(pk) for pk in department_ids)
        return wanted

    async def _join_audience_groups(self, department_ids: list[int] | None = None) -> None:
        if department_ids is None:
            department_ids = await _department_ids(self.user)
        self.department_ids = frozenset(department_ids)
        wanted = self._audience_groups(department_ids)
        subscribed = {realtime.conversation_group(pk) for pk in self.subscriptions}
        for group in self.groups_joined - wanted - subscribed:
            await self._leave(group)
        for group in wanted:
            await self._join(group)

    async def _broadcast_presence(self, *, online: bool) -> None:
        event = {"event": "online_status", "data": {"userId": self.user.pk, "online": online}}
        department_ids = await _department_ids(self.user)
        groups = [realtime.ALL_CONVERSATIONS_GROUP]
        groups += [realtime.department_group(pk) for pk in department_ids]
        for group in groups:
            await self.channel_layer.group_send(group, realtime.group_message(group, [event]))

    async def _came_online(self) -> None:
        """An agent who comes online may get what waits in automatic queues (never fatal)."""
        try:
            await database_sync_to_async(assignment_request)(user_ids=[self.user.pk])
        except Exception:
            logger.exception("automatic assignment on connect failed for user %s", self.user.pk)

    async def heartbeat(self, beat: tuple[User, list[int]] | None) -> None:
        """The process's heartbeat (``ConsoleSockets``) found the user so: deactivated, or the
        password changed since the socket connected, and the token or session it connected with
        is revoked (as the API would say); else its groups follow the user's departments."""
        if beat is None or beat[0].password != self.user.password:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user, department_ids = beat
        await self._join_audience_groups(department_ids)

    # --- client → server ----------------------------------------------------------------------

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        data = content.get("data") or {}
        if not isinstance(data, dict):
            return
        try:
            conversation_id = int(data.get("conversationId"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            conversation_id = None
        if kind == "ping":
            await self.send_json({"type": "pong", "data": {}})
        elif kind == "subscribe:conversation" and conversation_id:
            if await self._may_see(conversation_id):
                self.subscriptions.add(conversation_id)
                await self._join(realtime.conversation_group(conversation_id))
        elif kind == "unsubscribe:conversation" and conversation_id:
            self.subscriptions.discard(conversation_id)
            await self._leave(realtime.conversation_group(conversation_id))
        elif kind == "typing" and conversation_id in self.subscriptions:
            if not await self._may_see(conversation_id):
                return
            group = realtime.conversation_group(conversation_id)
            typing = {
                "conversationId": conversation_id,
                "userId": self.user.pk,
                "name": self.user.get_short_name(),
                "isTyping": bool(data.get("isTyping", True)),
            }
            await self.channel_layer.group_send(
                group, realtime.group_message(group, [{"event": "user_typing", "data": typing}])
            )

    async def _may_see(self, conversation_id: int) -> bool:
        """Checked against the database through the selectors (subscriptions, typing)."""
        if self.user.sees_everything:
            return True
        return await _is_visible(self.user, conversation_id)

    def _sees(self, state: State | None) -> bool:
        # The one visibility rule, applied to a known (department, assignee) with this socket's
        # departments (re-read on every heartbeat).
        if state is None:
            return False
        department_id, assignee_id = state
        return selectors.conversation_state_visible_to(
            user=self.user,
            department_ids=self.department_ids,
            department_id=department_id,
            assigned_to_id=assignee_id,
        )

    # --- server → client ----------------------------------------------------------------------

    def push(self, frames: list[_Frame]) -> None:
        """Frames of one of this socket's groups, from the process's hub (``ConsoleSockets``),
        in the order they were broadcast; for agents, conversation-scoped ones carry the
        conversation's state at that point. Never waits: what passes the checks is queued."""
        if self._closed:
            return
        sees_everything = self.user.sees_everything
        out = []
        for frame in frames:
            event, data = frame.event, frame.data
            if event == "user_typing" and data.get("userId") == self.user.pk:
                continue  # nobody needs to see themselves typing
            cid = frame.conversation_id
            if cid is not None and not sees_everything and not self._sees(frame.state):
                if cid in self.subscriptions:
                    self.subscriptions.discard(cid)
                    group = realtime.conversation_group(cid)
                    self.groups_joined.discard(group)
                    self.console.hub.leave_now(group, self)
                if (
                    event == "conversation_transferred"
                    and data.get("fromUserId") == self.user.pk
                    and not self._is_duplicate(frame.text)
                ):
                    # It left its former assignee's view: only ids, so that every tab of theirs
                    # refreshes its list (and pane) at once instead of showing a stale row.
                    out.append(frame.message)
                continue
            if not self._is_duplicate(frame.text):
                out.append(frame.message)
        if out:
            self._outbox.extend(out)
            self._send_outbox()

    def _send_outbox(self) -> None:
        """Send what waits, without waiting: the servers' sends complete at once (the bytes wait
        in the socket's buffer), so this normally finishes here; a send that has to wait makes
        this socket's later frames wait behind it, never another socket's."""
        if self._closed or not self._outbox:
            return
        if len(self._outbox) > MAX_OUTBOX:
            # A socket that cannot keep up: closed, the console reconnects and catches up.
            self._outbox.clear()
            self._closed = True
            self._closing = asyncio.get_running_loop().create_task(self.close(code=CLOSE_TOO_SLOW))
            return
        if not self._open or self._sending is not None:
            return
        task = asyncio.eager_task_factory(asyncio.get_running_loop(), self._drain_outbox())
        if not task.done():
            self._sending = task

    async def _drain_outbox(self) -> None:
        try:
            while self._outbox and self._open:
                await self.base_send(self._outbox.popleft())
        except Exception:  # the socket went away under the send: its disconnect follows
            self._open, self._closed = False, True
            self._outbox.clear()
        finally:
            self._sending = None

    def _is_duplicate(self, frame: str) -> bool:
        """The same frame already sent within ``DUPLICATE_WINDOW_SECONDS`` (an event reaches a
        socket through each of its groups: its department's, its agent's…). The frame's text
        is its fingerprint: an event's data travels in the same key order through every group.
        """
        now = time.monotonic()
        recent, seen = self._recent, self._recent_seen
        while recent and (
            now - recent[0][0] > DUPLICATE_WINDOW_SECONDS or len(recent) >= MAX_RECENT_FRAMES
        ):
            seen.discard(recent.popleft()[1])
        if frame in seen:
            return True
        recent.append((now, frame))  # a frame is in ``recent`` once at most: it was not seen
        seen.add(frame)
        return False


def _frame(event: str, data: dict[str, Any]) -> str:
    """The text of one frame of contract §6, serialised once for both the check and the send."""
    return json.dumps({"type": event, "data": data})
