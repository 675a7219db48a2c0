"""Log records carry the context of their work (:mod:`common.context`); ``LOG_FORMAT=json``
writes each as one JSON object (python-json-logger, configured in ``settings.LOGGING``)."""

import logging

from . import context


class ContextFilter(logging.Filter):
    """Adds ``request_id`` (None outside a request or task) and, where known, ``user_id``,
    ``conversation_id``, ``event_id``, ``task_id`` and ``task`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = context.current()
        record.request_id = fields.pop("request_id", None)
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
