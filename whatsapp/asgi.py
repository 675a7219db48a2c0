"""The webhook's deliveries answered at the ASGI edge, ahead of Django's request handling.

Meta posts every message and status to ``/api/v1/webhooks/whatsapp``: it is the desk's hottest
path by far, and the work it must do is small (the HMAC, a JSON check, one INSERT, see
:func:`whatsapp.services.intake.webhook_accept`). Through Django's ASGI handler that work costs a
fraction of the request: the handler gives every request a thread of its own for sync code and
runs the whole middleware chain (sessions, locale, CSRF, authentication, messages, …), none of
which a signed machine-to-machine delivery uses. :class:`WebhookIntake` answers those POSTs
itself, running the same :func:`webhook_accept` as the Django view on a small shared thread pool;
everything else (the verification ``GET``, every other URL) goes on to Django unchanged.

Measured on this project's 2-core machine (``bench/webhook_ingest.py``, docs/whatsapp.md), the
ASGI server spends 0.7-1.7 ms of CPU per delivery here, against 3.1-5.3 ms for a bare Django view
doing the same HMAC and INSERT.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from celery import current_app
from django.db import connections

from whatsapp.apis import max_body
from whatsapp.metrics import webhook_delivery_counted
from whatsapp.services.intake import IntakeAnswer, webhook_accept

PATHS = frozenset({"/api/v1/webhooks/whatsapp", "/api/v1/webhooks/whatsapp/"})
# Deliveries stored at once per server process. Each holds a pooled database connection for one
# INSERT, so keep it at or below DB_POOL_MAX_SIZE; the work is short and mostly waits on commit.
THREADS = 8

Scope = dict[str, Any]


def _accept(raw_body: bytes, signature: str) -> IntakeAnswer:
    try:
        return webhook_accept(raw_body=raw_body, signature=signature)
    finally:
        # What Django's request_finished does: the connection goes back to the pool.
        connections.close_all()


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


class _ClientGoneError(Exception):
    """The client disconnected before its body arrived: nothing to store, nobody to answer."""


async def _read(receive: Any, limit: int) -> bytes | None:
    """The request body up to ``limit`` bytes; None when it is larger."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class WebhookIntake:
    """ASGI middleware: POSTs to the WhatsApp webhook are stored here; the rest goes to ``app``."""

    def __init__(self, app: Any, *, threads: int = THREADS) -> None:
        self.app = app
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self._accept_in_context = sync_to_async(
            _accept, thread_sensitive=False, executor=self._executor
        )

    async def _store(self, raw_body: bytes, signature: str) -> IntakeAnswer:
        if current_app.conf.task_always_eager:
            # Embedded mode processes the delivery at once, and its live updates must reach this
            # server's event loop: asgiref's hop carries the way back to it.
            return await self._accept_in_context(raw_body, signature)
        # A plain executor call keeps each thread in its own context, so Django keeps one
        # connection wrapper per thread (its connection goes back to the pool after every
        # delivery) instead of building one per request; the per-request wrappers' reference
        # cycles cost a collection every few hundred requests, and the hop itself costs more.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _accept, raw_body, signature)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        limit = max_body()
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            webhook_delivery_counted("too_large")
            await _answer(send, 413, "payload too large")
            return
        try:
            raw_body = await _read(receive, limit)
        except _ClientGoneError:
            return
        if raw_body is None:
            webhook_delivery_counted("too_large")
            await _answer(send, 413, "payload too large")
            return
        answer = await self._store(raw_body, _header(scope, b"x-hub-signature-256"))
        await _answer(send, answer.status, answer.text)
