"""Live updates: group names and the broadcast to them.

The realtime handler of the domain events (``conversations.handlers.RealtimeHandler``) sends a
committed batch with :func:`broadcast_many`; the few live updates that are no domain event use
:func:`broadcast_on_commit`. The WebSocket consumer (``conversations.consumers``) joins the groups
named here and forwards ``{"type": ..., "data": ...}`` frames to the browser.
"""

import asyncio
import logging
import os
import threading
from collections.abc import Iterable
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
            message = (
                {"type": "desk.event", **items[0]}
                if len(items) == 1
                else {"type": "desk.events", "events": items}
            )
            try:
                await layer.group_send(group, message)
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
