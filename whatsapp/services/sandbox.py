"""The customer simulator: Meta-shaped deliveries, signed like Meta signs them, sent to ourselves.

Used by the ``/sandbox/`` page, ``manage.py simulate_message`` and the tests. The deliveries go
through the real intake (signature check included): a newcomer sees the whole flow without a Meta
account.
"""

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

import requests
from django.db.models import Q, QuerySet

from conversations.models import Message
from whatsapp.identity import digits, wa_id_variants
from whatsapp.models import WebhookEvent

from .accounts import account_get_default, default_phone_number_id
from .intake import sign, webhook_receive


def new_wamid() -> str:
    return f"wamid.SIM{uuid.uuid4().hex.upper()}"


def delivery(
    *,
    phone_number_id: str | None = None,
    messages: Iterable[dict[str, Any]] = (),
    statuses: Iterable[dict[str, Any]] = (),
    contacts: Iterable[dict[str, Any]] = (),
    errors: Iterable[dict[str, Any]] = (),
    display_phone_number: str = "15550001111",
    waba_id: str = "102290129340398",
) -> dict[str, Any]:
    """One webhook delivery in Meta's shape (one entry, one ``messages`` change)."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id or default_phone_number_id(),
        },
    }
    for key, items in (
        ("contacts", contacts),
        ("messages", messages),
        ("statuses", statuses),
        ("errors", errors),
    ):
        listed = list(items)
        if listed:
            value[key] = listed
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": value}]}],
    }


def contact(*, wa_id: str = "", name: str = "", user_id: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {"profile": {"name": name}}
    if wa_id:
        found["wa_id"] = wa_id
    if user_id:
        found["user_id"] = user_id
    return found


def message(
    *,
    wa_id: str = "",
    type: str = "text",
    content: Any = None,
    wamid: str | None = None,
    timestamp: int | None = None,
    user_id: str = "",
    context_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One inbound message; ``content`` is the object under its type (``{"body": ...}`` etc.)."""
    found: dict[str, Any] = {
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp or int(time.time())),
        "type": type,
    }
    if wa_id:
        found["from"] = wa_id
    if user_id:
        found["from_user_id"] = user_id
    if content is not None:
        found[type] = content
    if context_id:
        found["context"] = {"from": "15550001111", "id": context_id}
    found.update(extra)
    return found


def status(
    *,
    wamid: str,
    status: str,
    recipient_id: str = "5511987650002",
    timestamp: int | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp or int(time.time())),
        "recipient_id": recipient_id,
    }
    if errors:
        found["errors"] = errors
    return found


def text_delivery(
    *, wa_id: str, body: str, name: str = "", wamid: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    return delivery(
        contacts=[contact(wa_id=wa_id, name=name)],
        messages=[message(wa_id=wa_id, content={"body": body}, wamid=wamid)],
        **kwargs,
    )


def encode(payload: dict[str, Any]) -> bytes:
    """Meta-like bytes (non-ASCII escaped, as Meta sends them)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def sandbox_deliver(*, payload: dict[str, Any], url: str = "") -> WebhookEvent | int:
    """Sign ``payload`` like Meta and deliver it: in-process through the intake, or POSTed to
    ``url`` (a running desk) — then the HTTP status is returned."""
    raw = encode(payload)
    signature = sign(raw)
    if url:
        response = requests.post(
            url,
            data=raw,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
            timeout=30,
        )
        return response.status_code
    return webhook_receive(raw_body=raw, signature=signature)


def sandbox_send_text(
    *, wa_id: str, text: str, name: str = "", url: str = "", wamid: str | None = None
) -> WebhookEvent | int:
    """The customer ``wa_id`` writes ``text`` to the default number."""
    account = account_get_default()
    payload = text_delivery(
        wa_id=digits(wa_id),
        body=text,
        name=name,
        phone_number_id=account.phone_number_id,
        wamid=wamid,
    )
    return sandbox_deliver(payload=payload, url=url)


def sandbox_transcript(
    *, wa_id: str, own_wamids: Iterable[str], limit: int = 100
) -> QuerySet[Message]:
    """What one visitor may see, oldest first: the conversations its own messages
    (``own_wamids``, sent from its browser) went to, from its first message on.

    Typing a number is not enough: whatever the desk said to that number before, or in other
    conversations, stays private."""
    variants = wa_id_variants(wa_id)
    wamids = [w for w in own_wamids if w]
    if not variants or not wamids:
        return Message.objects.none()
    own = Message.objects.filter(
        wa_message_id__in=wamids, conversation__customer__wa_id__in=variants
    ).values_list("conversation_id", "pk")
    # From the visitor's first message on, by row order: a message's created_at is Meta's
    # timestamp (whole seconds), earlier than a reply stored within the same second.
    since: dict[int, int] = {}
    for conversation_id, pk in own:
        since[conversation_id] = min(pk, since.get(conversation_id, pk))
    if not since:
        return Message.objects.none()
    visible = Q()
    for conversation_id, first in since.items():
        visible |= Q(conversation_id=conversation_id, pk__gte=first)
    latest = list(
        Message.objects.filter(visible)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)[:limit]
    )
    return Message.objects.filter(pk__in=latest).order_by("created_at", "id")
