from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _

from .text import text_unaccent


def _sqlite_unaccent(sender: Any, connection: Any, **kwargs: Any) -> None:
    """SQLite has no ``UNACCENT``: the search's Python one under the same name."""
    if connection.vendor != "sqlite":
        return
    connection.connection.create_function(
        "UNACCENT",
        1,
        lambda value: None if value is None else text_unaccent(str(value)),
        deterministic=True,
    )


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        connection_created.connect(_sqlite_unaccent, dispatch_uid="conversations-sqlite-unaccent")
