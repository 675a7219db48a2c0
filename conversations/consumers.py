"""The live console socket at ``/ws/`` (contract §6).

One connection per browser tab or API client. On connect the user joins the groups whose events it
may see (``common.realtime``): every conversation for admins and supervisors, each of their
departments' queues and their own ``user.<id>`` group for agents. Services broadcast
``{"type": "desk.event", "event": ..., "data": ...}`` to those groups after commit; this consumer
forwards them as ``{"type": event, "data": data}`` frames.

Visibility: a conversation can change department or assignee between the moment a service picks
the audience groups and the moment this consumer forwards the event (a transfer also notifies the
*old* audience so admins of the old queue hear about it). Group membership alone would therefore
leak events to an agent who just lost sight of a conversation, so for agents every
conversation-scoped event is re-checked right before it is forwarded, against the conversation's
current department and assignee and the socket's departments (re-read on every heartbeat, like its
groups) — the rule of ``selectors.conversation_visibility_q``. The state comes from the events
themselves (``conversation_update`` carries it, ``conversation_transferred`` and
``conversation_assigned`` carry the change; events reach a socket in the order they were sent), else
from one query, shared by the sockets of the process that ask at the same moment and trusted for
``STATE_TTL_SECONDS``. Subscriptions and typing are checked through the selectors themselves. Admins
and supervisors see everything and skip the check.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts import presence
from accounts.authentication import token_is_current
from accounts.models import User
from common import realtime

from . import selectors
from .handlers import assignment_request
from .models import Conversation

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
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
    return list(user.departments.values_list("pk", flat=True))


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


# Sockets of one process that ask for the same conversation at the same moment (every agent of a
# department receiving one new message) share one query; nothing is kept once it has answered.
_pending_states: dict[int, "asyncio.Future[tuple[int | None, int | None] | None]"] = {}


async def _shared_conversation_state(conversation_id: int) -> tuple[int | None, int | None] | None:
    pending = _pending_states.get(conversation_id)
    if pending is not None and pending.get_loop() is asyncio.get_running_loop():
        return await asyncio.shield(pending)
    future: asyncio.Future[tuple[int | None, int | None] | None]
    future = asyncio.get_running_loop().create_future()
    _pending_states[conversation_id] = future
    try:
        state = await _conversation_state(conversation_id)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
        raise
    else:
        future.set_result(state)
        return state
    finally:
        if _pending_states.get(conversation_id) is future:
            del _pending_states[conversation_id]


@database_sync_to_async
def _heartbeat(user_id: int) -> tuple[User, list[int]] | None:
    """The user as they are now with their departments, and their presence kept alive; None
    when they were deactivated."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    presence.presence_heartbeat(user_id=user.pk)
    return user, _department_ids_of(user)


class DeskConsumer(AsyncJsonWebsocketConsumer):
    """Forwards desk events to one console tab and relays typing between agents."""

    user: User
    groups_joined: set[str]
    subscriptions: set[int]

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.groups_joined = set()
        self.subscriptions = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._online = False
        self._recent: deque[tuple[float, str]] = deque()  # frames sent lately, oldest first
        self._recent_seen: set[str] = set()  # the same frames: a duplicate found in O(1)
        self.department_ids: frozenset[int] = frozenset()
        self._states: dict[int, tuple[float, tuple[int | None, int | None]]] = {}
        if user is None or not user.is_authenticated or not user.is_active:
            # Accept first: a close before the handshake is an HTTP 403 without our code.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        await self._join_audience_groups()
        await self.accept()
        self._online = True
        if await database_sync_to_async(presence.presence_connect)(user_id=user.pk):
            await self._broadcast_presence(online=True)
            await self._came_online()
        self._heartbeat = asyncio.create_task(self._beat())

    async def disconnect(self, code: int) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._heartbeat
        for group in list(self.groups_joined):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined.clear()
        if self._online:
            self._online = False
            if await database_sync_to_async(presence.presence_disconnect)(user_id=self.user.pk):
                await self._broadcast_presence(online=False)

    # --- groups -------------------------------------------------------------------------------

    async def _join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)

    async def _leave(self, group: str) -> None:
        if group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.groups_joined.discard(group)

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
        message = {
            "type": "desk.event",
            "event": "online_status",
            "data": {"userId": self.user.pk, "online": online},
        }
        department_ids = await _department_ids(self.user)
        groups = [realtime.ALL_CONVERSATIONS_GROUP]
        groups += [realtime.department_group(pk) for pk in department_ids]
        for group in groups:
            await self.channel_layer.group_send(group, message)

    async def _came_online(self) -> None:
        """An agent who comes online may get what waits in automatic queues (never fatal)."""
        try:
            await database_sync_to_async(assignment_request)(user_ids=[self.user.pk])
        except Exception:
            logger.exception("automatic assignment on connect failed for user %s", self.user.pk)

    async def _beat(self) -> None:
        """Keep the presence counter alive and follow department/role changes: one trip to a
        worker thread per beat (a thousand idle consoles make 33 beats a second)."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                beat = await _heartbeat(self.user.pk)
                # Deactivated, or the password changed since the socket connected: the
                # token or session it connected with is revoked (as the API would say).
                if beat is None or beat[0].password != self.user.password:
                    await self.close(code=CLOSE_UNAUTHENTICATED)
                    return
                self.user, department_ids = beat
                await self._join_audience_groups(department_ids)
            except Exception:  # the heartbeat must survive a hiccup of the cache or database
                logger.exception("websocket heartbeat failed for user %s", self.user.pk)

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
            await self.channel_layer.group_send(
                realtime.conversation_group(conversation_id),
                {
                    "type": "desk.event",
                    "event": "user_typing",
                    "data": {
                        "conversationId": conversation_id,
                        "userId": self.user.pk,
                        "name": self.user.get_short_name(),
                        "isTyping": bool(data.get("isTyping", True)),
                    },
                },
            )

    async def _may_see(self, conversation_id: int) -> bool:
        """Checked against the database through the selectors (subscriptions, typing)."""
        if self.user.sees_everything:
            return True
        return await _is_visible(self.user, conversation_id)

    def _sees_state(self, state: tuple[int | None, int | None]) -> bool:
        # The one visibility rule, applied to a known (department, assignee) with this socket's
        # departments (re-read on every heartbeat).
        department_id, assignee_id = state
        return selectors.conversation_state_visible_to(
            user=self.user,
            department_ids=self.department_ids,
            department_id=department_id,
            assigned_to_id=assignee_id,
        )

    def _remember(self, conversation_id: int, state: tuple[int | None, int | None]) -> None:
        if len(self._states) >= MAX_REMEMBERED:
            self._states.clear()
        self._states[conversation_id] = (time.monotonic(), state)

    async def _may_forward(self, event: str, conversation_id: int, data: dict[str, Any]) -> bool:
        """May this agent see the conversation *now*? Cheap: events carry the new state.

        ``conversation_update`` has the department and assignee, ``conversation_transferred`` the
        target, ``conversation_assigned`` the new assignee: each updates what this socket knows.
        Other events use what it knows (younger than ``STATE_TTL_SECONDS``) or one query.
        """
        if self.user.sees_everything:
            return True
        known = self._states.get(conversation_id)
        fresh = known is not None and time.monotonic() - known[0] < STATE_TTL_SECONDS
        state: tuple[int | None, int | None] | None = None
        if event == "conversation_update" and _carries_state(data):
            state = (_ref_id(data.get("department")), _ref_id(data.get("assigned_to")))
        elif event == "conversation_transferred":
            state = (_as_int(data.get("toDepartmentId")), _as_int(data.get("toUserId")))
        elif event == "conversation_assigned" and fresh and known is not None:
            state = (known[1][0], _as_int(data.get("userId")))
        elif fresh and known is not None:
            state = known[1]
        if state is None:
            state = await _shared_conversation_state(conversation_id)
            if state is None:
                return False
        self._remember(conversation_id, state)
        return self._sees_state(state)

    # --- server → client ----------------------------------------------------------------------

    async def desk_event(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        data = message.get("data") or {}
        if not isinstance(event, str):
            return
        if event == "user_typing" and data.get("userId") == self.user.pk:
            return  # nobody needs to see themselves typing
        conversation_id = _conversation_id(event, data)
        if conversation_id is not None and not await self._may_forward(
            event, conversation_id, data
        ):
            if conversation_id in self.subscriptions:
                self.subscriptions.discard(conversation_id)
                await self._leave(realtime.conversation_group(conversation_id))
            if (
                event == "conversation_transferred"
                and data.get("fromUserId") == self.user.pk
                and not self._is_duplicate(text := _frame(event, data))
            ):
                # It left its former assignee's view: only ids, so that every tab of theirs
                # refreshes its list (and pane) at once instead of showing a stale row.
                await self.send(text_data=text)
            return
        text = _frame(event, data)
        if self._is_duplicate(text):
            return
        await self.send(text_data=text)

    async def desk_events(self, message: dict[str, Any]) -> None:
        """Several events for this socket's group at once (``realtime.broadcast_many``)."""
        for item in message.get("events") or []:
            if isinstance(item, dict):
                await self.desk_event(item)

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
