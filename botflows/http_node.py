"""The bot's ``http`` node on the wire (contract §8): one signed POST out, one checked answer in.

Request: ``POST <url>`` with JSON ``{"conversation", "customer", "message", "collected"}`` (the §4
resources and what the flow collected), headers ``X-SupportDesk-Event: bot.http`` and, when the
node has a secret, ``X-SupportDesk-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.

Answer, within ``OUTGOING_WEBHOOK_TIMEOUT``: a 2xx JSON object ``{"reply": str|null, "handoff":
{"department": str}|null, "collected": {...}}`` (each key may be left out). Anything else is a
failure with a short reason; the engine then takes the node's fallback. Nothing here touches the
database: the engine calls :func:`http_node_call` with no transaction open, so no row stays
locked while the service thinks.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings

from integrations.addresses import UnsafeAddress, url_resolve_public
from integrations.signing import sign
from integrations.transport import post_pinned

logger = logging.getLogger(__name__)

EVENT = "bot.http"
MAX_ANSWER_BYTES = 256 * 1024
MAX_REPLY_CHARS = 4096


@dataclass(frozen=True)
class HttpNodeAnswer:
    """What the service said, or why it said nothing usable (``failure``)."""

    failure: str = ""
    reply: str | None = None
    department: str | None = None
    collected: dict[str, Any] = field(default_factory=dict)
    status_code: int | None = None
    latency_ms: int = 0

    @property
    def ok(self) -> bool:
        return not self.failure


def http_node_body(
    *,
    conversation: dict[str, Any],
    customer: dict[str, Any],
    message: dict[str, Any] | None,
    collected: dict[str, Any],
) -> bytes:
    payload = {
        "conversation": conversation,
        "customer": customer,
        "message": message,
        "collected": collected,
    }
    return json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":")).encode()


def http_node_headers(*, body: bytes, secret: str, now: float | None = None) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "SupportDesk-Bot/1",
        "X-SupportDesk-Event": EVENT,
    }
    if secret:
        headers["X-SupportDesk-Signature"] = sign(secret, body, int(now or time.time()))
    return headers


def parse_answer(raw: bytes) -> HttpNodeAnswer:
    """The answer's fields, or ``failure`` = ``invalid_json`` / ``malformed`` (wrong types)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return HttpNodeAnswer(failure="invalid_json")
    if not isinstance(data, dict):
        return HttpNodeAnswer(failure="malformed")
    reply = data.get("reply")
    handoff = data.get("handoff")
    collected = data.get("collected")
    if reply is not None and not isinstance(reply, str):
        return HttpNodeAnswer(failure="malformed")
    if handoff is not None and not (
        isinstance(handoff, dict) and isinstance(handoff.get("department"), str)
    ):
        return HttpNodeAnswer(failure="malformed")
    if collected is not None and not (
        isinstance(collected, dict) and all(isinstance(k, str) for k in collected)
    ):
        return HttpNodeAnswer(failure="malformed")
    return HttpNodeAnswer(
        reply=(reply.strip()[:MAX_REPLY_CHARS] or None) if reply is not None else None,
        department=handoff["department"].strip() if handoff is not None else None,
        collected=collected or {},
    )


def _read_limited(response: requests.Response) -> bytes | None:
    """The body, or None past ``MAX_ANSWER_BYTES`` (a service cannot fill the worker's memory)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=16 * 1024):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def http_node_call(*, url: str, secret: str, body: bytes) -> HttpNodeAnswer:
    """POST ``body`` to ``url`` and check the answer. Never raises for what the service does."""
    try:  # the same address rule as outgoing webhooks, connecting only to what was checked
        addresses = url_resolve_public(url)
    except UnsafeAddress:
        return HttpNodeAnswer(failure="private_url")
    timeout = float(settings.OUTGOING_WEBHOOK_TIMEOUT)
    started = time.monotonic()
    status_code: int | None = None
    try:
        with post_pinned(  # no redirect followed: it could lead anywhere, private addresses too
            url,
            addresses=addresses,
            data=body,
            headers=http_node_headers(body=body, secret=secret),
            timeout=timeout,
        ) as response:
            status_code = response.status_code
            raw = _read_limited(response) if 200 <= status_code < 300 else b""
    except requests.Timeout:
        answer = HttpNodeAnswer(failure="timeout")
    except requests.RequestException as exc:
        logger.info("bot http node: %s to %s failed: %s", EVENT, url, exc)
        answer = HttpNodeAnswer(failure="connection_error")
    else:
        if not 200 <= status_code < 300:
            answer = HttpNodeAnswer(failure=f"status_{status_code}")
        elif raw is None:
            answer = HttpNodeAnswer(failure="too_large")
        else:
            answer = parse_answer(raw)
    latency_ms = int((time.monotonic() - started) * 1000)
    return HttpNodeAnswer(
        failure=answer.failure,
        reply=answer.reply,
        department=answer.department,
        collected=answer.collected,
        status_code=status_code,
        latency_ms=latency_ms,
    )
