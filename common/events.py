"""Domain events: one small typed object per fact, emitted by services inside their transaction
and handed, once it commits, to every handler named in ``settings.DOMAIN_EVENT_HANDLERS``.

The models are Zulip's ``send_event_on_commit`` (nothing leaves the process before the change is
durable) and saleor's plugin manager (handlers are loaded from settings with ``import_string``, so
the app that emits an event never imports the apps that react to it).

A handler is a class with either or both of:

- ``in_transaction(events)``: runs at emit time, inside the emitting transaction: for rows that
  must commit (or roll back) with the change itself, such as the outbox of outgoing webhook
  deliveries. It may raise: the change is then refused as a whole.
- ``on_commit(events)``: runs after the commit (at once when there is no transaction): live
  updates, queuing a send, the bot's turn. An exception here is logged, never raised: a committed
  change is never undone by one of its consequences.

Events travel as JSON (outgoing webhooks, Celery, the channel layer): every event type
round-trips through :meth:`DomainEvent.to_json` / :func:`event_from_json`.
"""

import dataclasses
import functools
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol, Self

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """One fact. Subclasses set ``type`` (``conversation.closed``) and add their fields, which
    must be JSON values (ids, strings, the §4 resources as dicts)."""

    type: ClassVar[str]
    #: Public events are the types of contract §8 (outgoing webhooks may subscribe to them);
    #: internal ones (a conversation read, a reaction) only drive the desk's own handlers.
    public: ClassVar[bool] = True

    occurred_at: str = dataclasses.field(default_factory=lambda: timezone.now().isoformat())

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def occurred(self) -> datetime:
        return datetime.fromisoformat(self.occurred_at)


_TYPES: dict[str, type[DomainEvent]] = {}


def event_type(cls: type[DomainEvent]) -> type[DomainEvent]:
    """Class decorator: register an event class under its ``type`` (one class per type)."""
    if cls.type in _TYPES and _TYPES[cls.type] is not cls:
        raise ValueError(f"two event classes for {cls.type!r}")
    _TYPES[cls.type] = cls
    return cls


def event_types(*, public_only: bool = False) -> list[str]:
    """Every registered event type, sorted (public ones only: contract §8's list)."""
    return sorted(t for t, cls in _TYPES.items() if cls.public or not public_only)


def event_from_json(data: dict[str, Any]) -> DomainEvent:
    return _TYPES[data["type"]].from_json(data)


class EventHandler(Protocol):  # pragma: no cover - a description of what handlers provide
    def on_commit(self, events: Sequence[DomainEvent]) -> None: ...


@functools.cache
def _load(paths: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(import_string(path)() for path in paths)


def handlers() -> tuple[Any, ...]:
    """The handler instances named in ``settings.DOMAIN_EVENT_HANDLERS``, loaded once."""
    return _load(tuple(settings.DOMAIN_EVENT_HANDLERS))


def emit(event: DomainEvent) -> None:
    """Emit one event (see :func:`emit_many`)."""
    emit_many([event])


def emit_many(events: Iterable[DomainEvent]) -> None:
    """Emit events from inside a service's transaction: ``in_transaction`` handlers run now,
    ``on_commit`` handlers once the transaction commits, all with the whole batch at once (a
    batch of inbound messages is one call per handler, not one per message)."""
    batch = list(events)
    if not batch:
        return
    current = handlers()  # those in force when the events happened, also at commit
    for handler in current:
        record = getattr(handler, "in_transaction", None)
        if record is not None:
            record(batch)
    transaction.on_commit(lambda: dispatch(batch, to=current))


def dispatch(events: Sequence[DomainEvent], *, to: Sequence[Any] | None = None) -> None:
    """Hand committed events to every ``on_commit`` handler (``to``: these instead of the
    configured ones); one failing never stops another."""
    for handler in handlers() if to is None else to:
        deliver = getattr(handler, "on_commit", None)
        if deliver is None:
            continue
        try:
            deliver(events)
        except Exception:
            logger.exception(
                "event handler %s failed on %s",
                type(handler).__qualname__,
                ", ".join(sorted({e.type for e in events})),
            )
