"""The console's search ignores accents: PostgreSQL's ``unaccent`` extension (SQLite gets a Python
function of the same name on each connection, see ``conversations.apps``)."""

from typing import Any

from django.db import migrations


def create_unaccent(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS unaccent")


class Migration(migrations.Migration):
    dependencies = [("conversations", "0007_csat")]

    operations = [
        migrations.RunPython(create_unaccent, migrations.RunPython.noop, elidable=False),
    ]
