"""Requests straight to the project's ASGI application (``supportdesk.asgi.application``), the
way daphne and uvicorn call it, for what only exists there (the webhook edge, async streaming).

Each request runs in a context of its own, as in a server: nothing of the test's own database
connection is shared with the request's, so tests using it need ``django_db(transaction=True)``.
"""

import contextvars
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator


@dataclass
class AsgiAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    parts: int  # how many http.response.body messages carried it


@dataclass
class AsgiRequest:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    chunks: list[bytes] | None = None  # the body sent in several messages


def asgi_call(request: AsgiRequest) -> AsgiAnswer:
    from supportdesk.asgi import application

    return contextvars.Context().run(async_to_sync(_call), application, request)


async def _call(app: Any, request: AsgiRequest) -> AsgiAnswer:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "https",  # as behind the TLS proxy in production
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            *((k.lower().encode(), v.encode()) for k, v in request.headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
    }
    communicator = ApplicationCommunicator(app, scope)
    parts = request.chunks if request.chunks is not None else [request.body]
    for i, part in enumerate(parts):
        await communicator.send_input(
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        )
    start = await communicator.receive_output(10)
    body, count = b"", 0
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        count += 1
        if not message.get("more_body"):
            break
    await communicator.wait(10)
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return AsgiAnswer(start["status"], headers, body, count)
