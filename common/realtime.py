"""Live updates: group names and the broadcast to them.

The realtime handler of the domain events (``conversations.handlers.RealtimeHandler``) sends a
committed batch with :func:`broadcast_many`; the few live updates that are no domain event use
:func:`broadcast_on_commit`. The WebSocket consumer (``conversations.consumers``) joins the groups
named here — through the process's :class:`GroupHub` — and forwards ``{"type": ..., "data": ...}``
frames to the browser.

Every message sent to a desk group names the group (:func:`group_message`): a process's sockets
share one channel of the layer, which is a member of every group one of them is in, and the group
in the message says whose sockets it is for.
"""

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# Admins and supervisors see every conversation: they share one group.
ALL_CONVERSATIONS_GROUP = "conversations.all"


def department_group(department_id: int) -> str:
    return f"department.{department_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def conversation_audience(
    *, department_id: int | None, assigned_to_id: int | None, extra_user_ids: Iterable[int] = ()
) -> list[str]:
    """Every group whose members may see a conversation with this department and assignee."""
    groups = [ALL_CONVERSATIONS_GROUP]
    if department_id:
        groups.append(department_group(department_id))
    user_ids = {uid for uid in (assigned_to_id, *extra_user_ids) if uid}
    groups.extend(user_group(uid) for uid in sorted(user_ids))
    return groups


def group_message(group: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The channel-layer message of ``events`` (``{"event", "data"}`` each) for ``group``."""
    if len(events) == 1:
        return {"type": "desk.event", "group": group, **events[0]}
    return {"type": "desk.events", "group": group, "events": events}


# (event name, data, groups): one live update for :func:`broadcast_many`.
Event = tuple[str, dict[str, Any], Iterable[str]]


def broadcast_many(events: Iterable[Event]) -> None:
    """Send every event to its groups in one trip to the channel layer, in order per group.

    Several events for one group travel as one ``desk.events`` message (the consumer forwards
    them one by one, as the frames of contract §6): a batch of 100 inbound messages costs a few
    ``group_send`` calls instead of two hundred.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    by_group: dict[str, list[dict[str, Any]]] = {}
    for name, data, groups in events:
        for group in dict.fromkeys(groups):
            by_group.setdefault(group, []).append({"event": name, "data": data})
    if not by_group:
        return

    async def send_all() -> None:
        for group, items in by_group.items():
            try:
                await layer.group_send(group, group_message(group, items))
            except Exception:  # a broadcast must never undo a committed change
                logger.exception("broadcast of %s event(s) to %s failed", len(items), group)

    try:
        if _needs_caller_loop(layer):
            # One trip through async_to_sync for all groups (each trip costs a loop handoff).
            async_to_sync(send_all)()
        else:
            asyncio.run_coroutine_threadsafe(send_all(), _sender_loop()).result(SEND_TIMEOUT)
    except Exception:
        names = sorted({item["event"] for items in by_group.values() for item in items})
        logger.exception("broadcast of %s failed", ", ".join(names))


SEND_TIMEOUT = 10.0
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def _needs_caller_loop(layer: Any) -> bool:
    """The in-memory layer's queues belong to the server's event loop: send from there."""
    return isinstance(layer, InMemoryChannelLayer)


def _sender_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, in a daemon thread, for broadcasts from synchronous code.

    ``async_to_sync`` outside a server starts a new event loop per call, and channels-redis keeps
    its connections per loop: every broadcast from a Celery worker paid a new Redis connection.
    A long-lived loop keeps the layer's connection pool warm. Created lazily, and again after a
    fork (prefork workers), since threads do not survive ``fork``.
    """
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime-sender", daemon=True).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def broadcast_on_commit(*, event: str, data: dict[str, Any], groups: Iterable[str]) -> None:
    """Send ``event`` to ``groups`` once the surrounding transaction commits (at once if none);
    for live updates that are no domain event (the bot's context panel)."""
    frozen: list[Event] = [(event, data, list(groups))]
    transaction.on_commit(lambda: broadcast_many(frozen))


# --- the process's fan-out hub ------------------------------------------------------------------

# A group the hub's channel joined is joined again this often: channels-redis forgets a member
# after ``group_expiry`` (a day by default), and a hub lives as long as its process.
GROUP_REFRESH_SECONDS = 3600.0
RECEIVE_RETRY_SECONDS = 1.0  # after the channel could not be read

# What a hub hands its consumers: the group a message was for, its ``(event, data)`` pairs in
# order, and the members of that group in this process at that moment.
Deliver = Callable[[str, list[tuple[str, dict[str, Any]]], list[Any]], Awaitable[None]]


class GroupHub:
    """One channel of the layer for all the sockets of one process (one event loop).

    The hub's channel is in every group one of its local members is in: it joins a group when its
    first member joins it and leaves it when the last one leaves, so ``group_send`` writes one
    copy of a broadcast per process instead of one per socket, and the process reads it once.
    Each message names its group (:func:`group_message`); the hub decodes it once and passes its
    events to ``deliver`` with that group's local members, in the order the channel received them
    (a socket's frames keep the order they were sent in, whatever its groups). A message for a
    group without local members (a leave that crossed a broadcast) is dropped.

    Works with any channel layer: the in-memory one of ``make run`` and the tests as well as
    channels-redis.
    """

    def __init__(
        self,
        layer: Any,
        deliver: Deliver,
        on_lost: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.layer = layer
        self.deliver = deliver
        # Called when reading the channel failed (Redis unreachable): what was broadcast
        # meanwhile is lost, so the owner closes its sockets, whose consoles reconnect and catch up.
        self.on_lost = on_lost
        self.channel: str | None = None
        self.members: dict[str, dict[Any, None]] = {}  # group → its local members, in join order
        self._joined: set[str] = set()  # groups the channel is a member of on the layer
        self._changing: set[str] = set()  # groups with a join or leave in flight
        self._lock = asyncio.Lock()  # the layer's membership changes, one at a time
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    # --- membership ---------------------------------------------------------------------------

    async def join(self, group: str, member: Any) -> None:
        """``member`` receives ``group``'s messages once this returns."""
        self.members.setdefault(group, {})[member] = None
        if group in self._joined and group not in self._changing:
            return  # the usual case: another local socket is in the group already
        await self._sync(group)

    async def leave(self, group: str, member: Any) -> None:
        self.leave_now(group, member)
        await self._settle()

    def leave_now(self, group: str, member: Any) -> None:
        """Stop ``member``'s messages from ``group`` at once; the channel leaves the layer's
        group in the background when it was the last local member."""
        members = self.members.get(group)
        if members is None or member not in members:
            return
        del members[member]
        if not members:
            del self.members[group]
            self._spawn(self._sync(group))

    async def leave_all(self, member: Any) -> None:
        for group in [g for g, members in self.members.items() if member in members]:
            self.leave_now(group, member)
        await self._settle()

    def groups_of(self, member: Any) -> set[str]:
        return {group for group, members in self.members.items() if member in members}

    async def _settle(self) -> None:
        """Wait for the membership changes in flight (tests, and a tidy disconnect)."""
        while pending := [t for t in self._background if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        async def logged() -> None:
            with contextlib.suppress(Exception):  # _sync logged it
                await coroutine

        task = asyncio.get_running_loop().create_task(logged())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _sync(self, group: str) -> None:
        """Make the channel's membership of ``group`` follow its local members."""
        self._changing.add(group)
        try:
            async with self._lock:
                while (wanted := group in self.members) != (group in self._joined):
                    if wanted:
                        await self._start()
                        await self.layer.group_add(group, self.channel)
                        self._joined.add(group)
                    else:
                        await self.layer.group_discard(group, self.channel)
                        self._joined.discard(group)
                if not self._joined and not self.members:
                    self._stop()
        except Exception:
            logger.exception("could not change the hub's membership of %s", group)
            raise
        finally:
            self._changing.discard(group)

    async def _start(self) -> None:
        if self.channel is None:
            self.channel = await self.layer.new_channel()
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._receive_loop(), name="realtime-hub"),
                loop.create_task(self._refresh_loop(), name="realtime-hub-refresh"),
            ]

    def _stop(self) -> None:
        """Nobody left in this process: stop reading (started again by the next join)."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_SECONDS)
            try:
                await self._join_again()
            except Exception:
                logger.exception("could not refresh the hub's memberships")

    async def _join_again(self) -> None:
        """Every group the channel is in, joined again (a restarted Redis forgot them all)."""
        async with self._lock:
            for group in list(self._joined):
                await self.layer.group_add(group, self.channel)

    # --- messages -----------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        channel = self.channel
        while channel is not None:
            try:
                message = await self.layer.receive(channel)
            except Exception:
                await self._lost()
                continue
            try:
                await self.dispatch(message)
            except Exception:  # one bad message or consumer never stops the others' frames
                logger.exception("realtime hub could not deliver a message")

    async def _lost(self) -> None:
        logger.exception("realtime hub could not read its channel; its sockets are closed")
        try:
            if self.on_lost is not None:
                await self.on_lost()
        except Exception:
            logger.exception("realtime hub could not close its sockets")
        await asyncio.sleep(RECEIVE_RETRY_SECONDS)
        with contextlib.suppress(Exception):  # still down: the next receive fails and says so
            await self._join_again()

    async def dispatch(self, message: dict[str, Any]) -> None:
        group = message.get("group")
        members = self.members.get(group) if isinstance(group, str) else None
        if not members:
            if not isinstance(group, str):
                logger.warning("a desk message without its group: %s", message.get("type"))
            return
        items: list[Any]
        if message.get("type") == "desk.events":
            items = message.get("events") or []
        elif message.get("type") == "desk.event":
            items = [message]
        else:
            logger.warning("unknown desk message type %r", message.get("type"))
            return
        events = [
            (item["event"], item.get("data") or {})
            for item in items
            if isinstance(item, dict) and isinstance(item.get("event"), str)
        ]
        if events:
            await self.deliver(group, events, list(members))  # type: ignore[arg-type]
