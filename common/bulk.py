"""One UPDATE for many rows, each with its own values (PostgreSQL).

Django's ``bulk_update`` writes ``CASE WHEN id = … THEN …`` per field and row: for a batch of a
few hundred rows its SQL compilation cost more than the work the batch did. Here the values
travel as arrays and the database pairs them up: ``UPDATE <table> AS t SET … FROM unnest(ids,
…) AS v(id, …) WHERE t.id = v.id``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connection, models


def rows_update(
    model: type[models.Model],
    *,
    ids: Sequence[int],
    columns: Mapping[str, tuple[str, Sequence[Any]]],
    assignments: str,
    params: Sequence[Any] = (),
) -> None:
    """``UPDATE`` the rows ``ids`` of ``model`` in one statement.

    ``columns``: name → (PostgreSQL type, one value per id), readable as ``v.<name>`` in
    ``assignments`` (the ``SET`` list, where the row is ``t``); ``params`` fill the ``%s`` of
    ``assignments``. The SQL is the caller's constants; every value is a parameter.
    """
    names = ", ".join(columns)
    arrays = ", ".join(f"%s::{pg_type}[]" for pg_type, _values in columns.values())
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {model._meta.db_table} AS t SET {assignments} "  # noqa: S608 - our SQL
            f"FROM unnest(%s::bigint[], {arrays}) AS v(id, {names}) WHERE t.id = v.id",
            [*params, list(ids), *(list(values) for _pg_type, values in columns.values())],
        )
