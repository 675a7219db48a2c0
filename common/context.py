"""What a log line knows about the work it belongs to (contract §11): the request id, and where
known the user, the conversation and the webhook delivery.

One context variable holds those fields. The request middleware
(:class:`common.middleware.RequestObservabilityMiddleware`) sets the request id; services bind what
they learn (:func:`bound`); Celery carries the fields into the tasks a request queued, in a message
header (:func:`task_publish_carry`, :func:`task_prerun_bind`, connected by ``supportdesk.celery``),
so a task's log lines show the request id of the request that queued it. Everything here is
per-context (``contextvars``): threads, asyncio tasks and eager Celery tasks each see their own.
"""

import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from django.http import HttpRequest
from django.utils.functional import empty

#: The fields a log line may carry besides its message (``task_id``/``task`` inside a task).
FIELDS = ("request_id", "user_id", "conversation_id", "event_id")
#: The Celery message header that carries the fields into a task.
TASK_HEADER = "supportdesk_context"

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_fields: ContextVar[Mapping[str, Any]] = ContextVar("supportdesk_log_fields", default=_EMPTY)
_request: ContextVar[HttpRequest | None] = ContextVar("supportdesk_log_request", default=None)
# Inside a request or a task, whose end restores the fields as they were before it (bind()).
_scoped: ContextVar[bool] = ContextVar("supportdesk_log_scoped", default=False)

Tokens = tuple[Token[Any], ...]

# An X-Request-ID we accept as ours: what proxies and tracing tools generate (uuids, hex, base64).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def request_id_from_header(value: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a new one."""
    if value and _REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


def _request_user_id(request: HttpRequest | None) -> int | None:
    """The user of the current request, only if authentication already ran (a log line never
    makes a query): the session's lazy user once evaluated, or the user DRF authenticated."""
    if request is None:
        return None
    user = request.__dict__.get("user")
    if user is None:
        return None
    wrapped = getattr(user, "_wrapped", None)
    if wrapped is empty:
        return None
    if not getattr(user, "is_authenticated", False):
        return None
    pk = getattr(user, "pk", None)
    return int(pk) if pk is not None else None


def current() -> dict[str, Any]:
    """The fields known here and now (unknown ones left out)."""
    fields = dict(_fields.get())
    if "user_id" not in fields:
        user_id = _request_user_id(_request.get())
        if user_id is not None:
            fields["user_id"] = user_id
    return fields


def request_start(request: HttpRequest, request_id: str) -> Tokens:
    """A request begins: its id (and, once known, its user) go on every log line."""
    return (
        _fields.set(MappingProxyType({"request_id": request_id})),
        _request.set(request),
        _scoped.set(True),
    )


def request_end(tokens: Tokens) -> None:
    fields, request, scoped = tokens
    _scoped.reset(scoped)
    _request.reset(request)
    _fields.reset(fields)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add fields (``conversation_id=…``, ``event_id=…``) for the duration of a block."""
    known = {key: value for key, value in fields.items() if value is not None}
    token = _fields.set(MappingProxyType({**_fields.get(), **known}))
    try:
        yield
    finally:
        _fields.reset(token)


def bind(**fields: Any) -> None:
    """Add fields until the end of the current request or task (both restore what was before
    them when they end). Outside of one (a shell, a test calling a service) nothing would ever
    remove them, so nothing is added: use :func:`bound` there."""
    if not _scoped.get():
        return
    known = {key: value for key, value in fields.items() if value is not None}
    _fields.set(MappingProxyType({**_fields.get(), **known}))


# --- Celery: the fields travel with the tasks a request (or a task) queues ----------------------

_task_tokens: dict[str, Tokens] = {}


def task_publish_carry(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish``: put the current fields in the message's headers."""
    if headers is None or TASK_HEADER in headers:
        return
    fields = {key: value for key, value in current().items() if key in FIELDS}
    if fields:
        headers[TASK_HEADER] = fields


def _carried(task: Any) -> Mapping[str, Any]:
    request = getattr(task, "request", None)
    carried = getattr(request, TASK_HEADER, None)
    if carried is None:
        carried = (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    return carried if isinstance(carried, Mapping) else _EMPTY


def task_prerun_bind(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """``task_prerun``: the task's log lines carry what its publisher knew, plus its own id.
    An eager task (no message) inherits the fields of the code that called it."""
    carried = {key: value for key, value in _carried(task).items() if key in FIELDS}
    fields = {**_fields.get(), **carried, "task_id": task_id, "task": getattr(task, "name", None)}
    _task_tokens[str(task_id)] = (_fields.set(MappingProxyType(fields)), _scoped.set(True))


def task_postrun_unbind(task_id: str | None = None, **kwargs: Any) -> None:
    tokens = _task_tokens.pop(str(task_id), None)
    if tokens is not None:
        fields, scoped = tokens
        try:
            _scoped.reset(scoped)
            _fields.reset(fields)
        except ValueError:  # set in another context (a worker thread that changed): drop it
            _scoped.set(False)
            _fields.set(_EMPTY)
