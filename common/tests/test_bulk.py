"""``common.bulk.rows_update``: each row gets its own values, the others are left alone."""

import pytest
from django.db import connection

from common.bulk import rows_update
from departments.models import Department

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's unnest"),
]


def test_each_row_gets_its_own_values_in_one_statement(django_assert_num_queries) -> None:
    first, second, untouched = (Department.objects.create(name=n) for n in ("A", "B", "C"))
    with django_assert_num_queries(1):
        rows_update(
            Department,
            ids=[second.pk, first.pk],
            columns={"name": ("text", ["Vendas", "Suporte"])},
            assignments="name = v.name, description = %s",
            params=["moved"],
        )
    rows = {d.pk: (d.name, d.description) for d in Department.objects.all()}
    assert rows[first.pk] == ("Suporte", "moved")
    assert rows[second.pk] == ("Vendas", "moved")
    assert rows[untouched.pk] == ("C", "")
