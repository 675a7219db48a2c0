"""Who is online: a connection counter per user in the shared cache (Redis in production).

Every open console tab (WebSocket) counts one connection; a user is online while they have at least
one. Counters expire unless refreshed (``PRESENCE_TTL``), so a crashed server process cannot leave
someone online forever.
"""

from collections.abc import Iterable

from django.core.cache import cache

PRESENCE_TTL = 90  # seconds; consumers refresh it with a heartbeat


def _key(user_id: int) -> str:
    return f"presence:user:{user_id}"


def presence_connect(*, user_id: int) -> bool:
    """Count one more connection; True when the user just came online."""
    key = _key(user_id)
    if cache.add(key, 1, PRESENCE_TTL):
        return True
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, PRESENCE_TTL)
        return True
    cache.touch(key, PRESENCE_TTL)
    return count == 1


def presence_heartbeat(*, user_id: int) -> None:
    if not cache.touch(_key(user_id), PRESENCE_TTL):
        cache.add(_key(user_id), 1, PRESENCE_TTL)


def presence_heartbeat_many(*, user_ids: Iterable[int]) -> None:
    """:func:`presence_heartbeat` for every user of a process's open sockets (one beat)."""
    for user_id in user_ids:
        presence_heartbeat(user_id=user_id)


def presence_disconnect(*, user_id: int) -> bool:
    """Count one connection less; True when the user just went offline."""
    key = _key(user_id)
    try:
        count = cache.decr(key)
    except ValueError:
        return True
    if count <= 0:
        cache.delete(key)
        return True
    return False


def online_user_ids(*, candidates: Iterable[int]) -> set[int]:
    keys = {_key(uid): uid for uid in candidates}
    found = cache.get_many(list(keys))
    return {keys[k] for k, v in found.items() if v and int(v) > 0}


def is_online(*, user_id: int) -> bool:
    value = cache.get(_key(user_id))
    return bool(value and int(value) > 0)
