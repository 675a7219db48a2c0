"""Reads that may go to a PostgreSQL replica (``DATABASE_REPLICA_URL``, contract §11).

The heavy reads (search, the reports and their CSV, the supervisor board) run inside
:func:`replica_reads`; the router sends their queries to the ``replica`` alias. Everything else,
every write, and any read made while a write's transaction is open on the primary stays on
``default``: a replica lags a little, and a write must never read its own rows from it.

    with replica_reads():
        stats = report_stats(filters=filters)

Raw SQL asks :func:`read_alias` for its connection. Without ``DATABASE_REPLICA_URL`` all of this
reads the primary.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


def read_alias() -> str:
    """The database the reads made now go to: the replica inside :func:`replica_reads` when one
    is configured and no transaction is open on the primary, else the primary."""
    if (
        _replica_reads.get()
        and settings.READ_REPLICA
        and not connections[DEFAULT_DB_ALIAS].in_atomic_block
    ):
        return REPLICA
    return DEFAULT_DB_ALIAS


@contextmanager
def replica_reads() -> Iterator[None]:
    """The reads inside may be served by the replica (see the module's docstring)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


class PrimaryReplicaRouter:
    """``DATABASE_ROUTERS``: writes to the primary always (a row read from the replica is saved
    to the primary), reads where :func:`read_alias` says, related rows from where their
    instance came."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            return str(instance._state.db)
        return read_alias()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        same_data = {DEFAULT_DB_ALIAS, REPLICA}
        if obj1._state.db in same_data and obj2._state.db in same_data:
            return True
        return None
