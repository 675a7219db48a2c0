"""The daily roll-ups filled from the conversations' roll-ups and segments already stored, by the
service the rebuild runs (on PostgreSQL: SQLite, the demo, does not use them). A few seconds for
100k conversations; ``manage.py reports_rebuild`` does the same (and more) again."""

from typing import Any

from django.db import migrations


def fill(apps: Any, schema_editor: Any) -> None:
    from reports import rollups  # noqa: PLC0415 - the service, on the tables of 0004

    if schema_editor.connection.vendor == "postgresql":
        rollups.refresh(conversation_ids=None)


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0004_daily_rollups"),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
